/**
 * Reading one PKCS#8 PEM private key file, with the checks a security review expects before the key is
 * used: file not accessible to group or others, PKCS#8 only (optionally encrypted), RSA of 2048 to 4096
 * bits. Errors name the file and the rule, never key material.
 *
 * The PEM stays in the one Buffer it was read into and is parsed from there; the Buffer is zeroed
 * afterwards, whether the key loaded or not. It is never turned into a JS string: strings are immutable,
 * cannot be wiped, and stay in the heap (and in a core or heap dump) until the collector reuses them.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { KeyStoreError } from "../errors.js";

export const MIN_KEY_BITS = 2048;
export const MAX_KEY_BITS = 4096;

export class KeyFileError extends KeyStoreError {
  readonly code = "KEY_FILE_INVALID";
}

export interface LoadedPrivateKey {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly modulusBits: number;
  readonly mtime: Date;
}

const PKCS8_BEGIN = Buffer.from("-----BEGIN PRIVATE KEY-----");
const ENCRYPTED_PKCS8_BEGIN = Buffer.from("-----BEGIN ENCRYPTED PRIVATE KEY-----");

/** Reads the whole file into a fresh Buffer the caller owns (and wipes); replaceable in tests. */
export type PemReader = (path: string) => Buffer;

export function readPrivateKeyFile(
  path: string,
  passphrase: Buffer | undefined,
  read: PemReader = readFileSync,
): LoadedPrivateKey {
  const stat = statSync(path);
  if (!stat.isFile()) throw new KeyFileError(`${path} is not a regular file`);
  if ((stat.mode & 0o077) !== 0) {
    throw new KeyFileError(
      `${path} is accessible to group or others (mode ${(stat.mode & 0o777).toString(8)}); chmod 600 it`,
    );
  }
  const pem = read(path);
  try {
    const encrypted = pem.includes(ENCRYPTED_PKCS8_BEGIN);
    if (!encrypted && !pem.includes(PKCS8_BEGIN)) {
      throw new KeyFileError(`${path} is not a PKCS#8 PEM private key (BEGIN PRIVATE KEY)`);
    }
    if (encrypted && passphrase === undefined) {
      throw new KeyFileError(`${path} is encrypted and no passphrase file is configured`);
    }
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(
        encrypted ? { key: pem, format: "pem", passphrase: passphrase! } : { key: pem, format: "pem" },
      );
    } catch {
      throw new KeyFileError(
        `${path} cannot be read as a private key${encrypted ? " (wrong passphrase?)" : ""}`,
      );
    }
    if (privateKey.asymmetricKeyType !== "rsa") throw new KeyFileError(`${path} is not an RSA key`);
    const modulusBits = privateKey.asymmetricKeyDetails?.modulusLength ?? 0;
    if (modulusBits < MIN_KEY_BITS || modulusBits > MAX_KEY_BITS) {
      throw new KeyFileError(
        `${path} is a ${modulusBits}-bit key; ${MIN_KEY_BITS} to ${MAX_KEY_BITS} allowed`,
      );
    }
    return { privateKey, publicKey: createPublicKey(privateKey), modulusBits, mtime: stat.mtime };
  } finally {
    pem.fill(0);
  }
}
