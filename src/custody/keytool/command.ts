/**
 * The shape of one key CLI command. Each command is its own small module registered in commands/index.ts,
 * so a key store with other needs (the PKCS#11 token) adds its commands without touching these.
 */
import type { ParseArgsConfig } from "node:util";

export interface KeyToolIo {
  out(line: string): void;
  err(line: string): void;
  /**
   * What the command did, for its audit line (fingerprints, files, states, counts): public values only,
   * never key material or passphrases. Merged into the one `keytool` line run.ts writes.
   */
  record?(fields: Record<string, string | number | boolean>): void;
}

export interface KeyToolCommand {
  readonly name: string;
  readonly summary: string;
  /** Usage line after the command name, e.g. "--dir DIR --name NAME [--bits 2048]". */
  readonly usage: string;
  readonly options: NonNullable<ParseArgsConfig["options"]>;
  /** Takes words after the options (`audit verify FILE`); others refuse any. */
  readonly positionals?: boolean;
  /** Not a key action: run.ts writes no audit line for it (the `audit` command itself). */
  readonly unaudited?: boolean;
  run(
    values: Record<string, string | boolean | undefined>,
    io: KeyToolIo,
    positionals: readonly string[],
  ): Promise<void>;
}

/** Options most commands share: the key directory and the passphrase of encrypted keys in it. */
export const DIR_OPTIONS = {
  dir: { type: "string" },
  "passphrase-file": { type: "string" },
} as const;
