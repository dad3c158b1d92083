/**
 * The key CLI's audit chain: every `custody-keys` action (generate, import, list, public, set-state,
 * verify, with or without --pkcs11), whatever its outcome, is one `keytool` line in the file named by
 * `--audit-file` or $CUSTODY_KEYS_AUDIT_FILE. That file is the CLI's own chain, never custody's
 * CUSTODY_AUDIT_FILE: a chain has one writer (src/custody/audit/sink.ts). Concurrent CLI runs take turns
 * through a lock file, so each reads the head the previous one wrote.
 *
 * The line records who (OS user, the sudo user behind it, host, pid), the command, its options from an
 * allowlist (paths, names, states; never --uri, which can carry a PIN, and never file contents) and what
 * the command reported doing (io.record: fingerprints, files, states). It is written before the command's
 * output is printed.
 */
import { hostname, userInfo } from "node:os";
import { AuditSink, lockChainFile } from "../audit/sink.js";

type Values = Record<string, string | boolean | undefined>;

/** Options written as given; any other option is left out of the line. */
const RECORDED_OPTIONS = [
  "dir",
  "name",
  "bits",
  "state",
  "key",
  "format",
  "from",
  "label",
  "pkcs11",
  "json",
  "state-dir",
  "passphrase-file",
  "from-passphrase-file",
] as const;

export function auditFileOf(values: Values): string | undefined {
  return (values["audit-file"] as string | undefined) ?? (process.env.CUSTODY_KEYS_AUDIT_FILE || undefined);
}

export interface OpenTrail {
  write(fields: Record<string, unknown>): void;
  close(): void;
}

/** Locks and opens the CLI's chain; throws AuditFileError when it cannot be used. */
export async function openKeyToolTrail(file: string): Promise<OpenTrail> {
  const release = await lockChainFile(file);
  let sink: AuditSink;
  try {
    sink = AuditSink.open(file, { writer: "custody-keys" });
  } catch (err) {
    release();
    throw err;
  }
  return {
    write: (fields) => sink.append("keytool", fields),
    close: () => {
      sink.close();
      release();
    },
  };
}

export function keyToolLine(
  command: string,
  values: Values,
  did: Record<string, string | number | boolean>,
  outcome: { ok: true } | { ok: false; error: string },
): Record<string, unknown> {
  const options: Record<string, string | boolean> = {};
  for (const name of RECORDED_OPTIONS) {
    const value = values[name];
    if (value !== undefined) options[name] = value;
  }
  if (options.dir === undefined && !values.pkcs11 && process.env.CUSTODY_KEY_DIR) {
    options.dir = process.env.CUSTODY_KEY_DIR;
  }
  const user = userInfo();
  return {
    command,
    options,
    ...did,
    outcome: outcome.ok ? "ok" : "error",
    ...(outcome.ok ? {} : { error: outcome.error }),
    user: user.username,
    uid: user.uid,
    ...(process.env.SUDO_USER ? { sudo_user: process.env.SUDO_USER } : {}),
    host: hostname(),
    pid: process.pid,
  };
}
