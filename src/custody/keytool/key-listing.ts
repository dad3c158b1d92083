/**
 * How `list` shows keys, the same for the key directory and the token: JSON rows with `--json`, else
 * one line per key (where it lives last) and one line per alias form.
 */
import type { KeyToolIo } from "./command.js";

export interface KeyListingRow {
  readonly fingerprint: string;
  readonly aliases: readonly string[];
  readonly state: string;
  readonly bits: number;
  readonly created?: string | undefined;
}

export function printKeyListing<T extends KeyListingRow>(
  rows: readonly T[],
  json: boolean,
  where: (row: T) => string,
  io: KeyToolIo,
): void {
  if (json) {
    io.out(JSON.stringify(rows, null, 2));
    return;
  }
  for (const k of rows) {
    io.out(`${k.fingerprint}  ${k.state}  ${k.bits} bits  created ${k.created ?? "?"}  ${where(k)}`);
    for (const alias of k.aliases) io.out(`    alias ${alias}`);
  }
}
