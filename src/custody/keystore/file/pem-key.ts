/**
 * Reading one PKCS#8 PEM private key file, with the checks a security review expects before the key is
 * used: file not accessible to group or others, PKCS#8 only (optionally encrypted), RSA of 2048 to 4096
 * bits. Errors name the file and the rule, never key material.
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

export function readPrivateKeyFile(path: string, passphrase: Buffer | undefined): LoadedPrivateKey {
  const stat = statSync(path);
  if (!stat.isFile()) throw new KeyFileError(`${path} is not a regular file`);
  if ((stat.mode & 0o077) !== 0) {
    throw new KeyFileError(
      `${path} is accessible to group or others (mode ${(stat.mode & 0o777).toString(8)}); chmod 600 it`,
    );
  }
  const pem = readFileSync(path);
  try {
    const text = pem.toString("ascii");
    const encrypted = text.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----");
    if (!encrypted && !text.includes("-----BEGIN PRIVATE KEY-----")) {
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
