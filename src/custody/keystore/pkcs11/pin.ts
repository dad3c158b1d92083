/**
 * Reads the token user PIN from where the config says it is. The PIN is read again at every login
 * (start-up and each recovery), so it is not kept in the store between logins and an operator can
 * rotate the file without a restart.
 *
 * A PIN file is read into a Buffer that is zeroed as soon as C_Login has returned. One copy escapes
 * that: pkcs11js's C_Login takes the PIN only as a JS string (its native side refuses anything but
 * napi_string), so for the duration of the login the PIN also exists as an immutable string, which
 * stays in the heap until the collector reuses its memory. That string is made at the last moment and
 * referenced by nothing afterwards. An `env:` source is worse (the value sits in the environment block
 * for the life of the process, in /proc/<pid>/environ and in every child), which is why custody's
 * config refuses it in production (src/custody/config.ts).
 */
import { readFileSync, statSync } from "node:fs";
import { KeyStoreError } from "../errors.js";
import type { Pkcs11StoreConfig } from "./config.js";
import { login, type PKCS11 } from "./module.js";

export class PinSourceError extends KeyStoreError {
  readonly code = "PKCS11_PIN_SOURCE_INVALID";
}

/** Reads a whole file into a fresh Buffer the caller owns (and wipes); replaceable in tests. */
export type PinFileReader = (path: string) => Buffer;

/**
 * The PIN file's bytes, `pin` without its trailing newline as a view into `bytes`; the caller zeroes
 * `bytes` once the PIN has been used.
 */
function readPinFile(file: string, read: PinFileReader): { bytes: Buffer; pin: Buffer } {
  let bytes: Buffer;
  try {
    if ((statSync(file).mode & 0o077) !== 0) {
      throw new PinSourceError(`PIN file ${file} is accessible to group or others; chmod 600 it`);
    }
    bytes = read(file);
  } catch (err) {
    if (err instanceof PinSourceError) throw err;
    throw new PinSourceError(`PIN file ${file} cannot be read (${(err as NodeJS.ErrnoException).code})`);
  }
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d)) end--;
  if (end === 0) throw new PinSourceError(`PIN file ${file} is empty`);
  return { bytes, pin: bytes.subarray(0, end) };
}

function envPin(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") throw new PinSourceError(`environment variable ${name} is empty`);
  return value;
}

/** Logs the application in on `session`; a PIN file's bytes are zeroed whether the login worked or not. */
export function loginWithPin(
  lib: PKCS11,
  session: Buffer,
  source: Pkcs11StoreConfig["pin"],
  read: PinFileReader = readFileSync,
): void {
  if ("env" in source) {
    login(lib, session, envPin(source.env));
    return;
  }
  const { bytes, pin } = readPinFile(source.file, read);
  try {
    login(lib, session, pin.toString("utf8"));
  } finally {
    bytes.fill(0);
  }
}

/** The PIN as a string, for tools that hand it to something other than C_Login (token set-up). */
export function readPin(source: Pkcs11StoreConfig["pin"]): string {
  if ("env" in source) return envPin(source.env);
  const { bytes, pin } = readPinFile(source.file, readFileSync);
  try {
    return pin.toString("utf8");
  } finally {
    bytes.fill(0);
  }
}
