/**
 * What the key CLI does to a key directory, as functions (the CLI commands and the dev PKI script call
 * them). Private keys are written as PKCS#8 PEM, mode 0600, with a new file name that never replaces an
 * existing key; the manifest is updated by atomic rename.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type CanonicalFingerprint,
  fingerprintForms,
  normalizeFingerprint,
} from "../../core/crypto/fingerprint.js";
import { loadKeyDirectory } from "../keystore/file/key-directory.js";
import { readManifest, writeManifest } from "../keystore/file/manifest.js";
import { MAX_KEY_BITS, MIN_KEY_BITS } from "../keystore/file/pem-key.js";
import type { KeyInfo, KeyState } from "../keystore/key-store.js";

export class KeyToolError extends Error {
  override readonly name = "KeyToolError";
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface WrittenKey {
  readonly fingerprint: CanonicalFingerprint;
  readonly file: string;
}

function writeKey(opts: {
  dir: string;
  name: string;
  privateKey: KeyObject;
  state: KeyState;
  passphrase?: Buffer;
}): WrittenKey {
  if (!NAME.test(opts.name)) throw new KeyToolError("key name: letters, digits, dot, dash, underscore; 1-64");
  const file = join(opts.dir, `${opts.name}.pem`);
  if (existsSync(file)) throw new KeyToolError(`${file} exists; choose another name`);
  const pem = opts.passphrase
    ? opts.privateKey.export({
        type: "pkcs8",
        format: "pem",
        cipher: "aes-256-cbc",
        passphrase: opts.passphrase,
      })
    : opts.privateKey.export({ type: "pkcs8", format: "pem" });
  const { canonical } = fingerprintForms(createPublicKey(opts.privateKey));
  const manifest = readManifest(opts.dir);
  if (manifest.keys[canonical]) throw new KeyToolError(`the manifest already names this key (${canonical})`);
  writeFileSync(file, pem, { mode: 0o600, flag: "wx" });
  manifest.keys[canonical] = {
    state: opts.state,
    created: new Date().toISOString(),
    file: `${opts.name}.pem`,
  };
  writeManifest(opts.dir, manifest);
  return { fingerprint: canonical, file };
}

export function generateKeyFile(opts: {
  dir: string;
  name: string;
  bits: number;
  state: KeyState;
  passphrase?: Buffer;
}): WrittenKey {
  if (![2048, 3072, 4096].includes(opts.bits)) throw new KeyToolError("bits must be 2048, 3072 or 4096");
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: opts.bits, publicExponent: 65537 });
  return writeKey({ ...opts, privateKey });
}

/** Imports a PEM (PKCS#8 or PKCS#1, optionally encrypted) private key; it is written back as PKCS#8. */
export function importKeyFile(opts: {
  dir: string;
  name: string;
  source: string;
  state: KeyState;
  sourcePassphrase?: Buffer;
  passphrase?: Buffer;
}): WrittenKey {
  const pem = readFileSync(opts.source);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(
      opts.sourcePassphrase ? { key: pem, passphrase: opts.sourcePassphrase } : { key: pem },
    );
  } catch {
    throw new KeyToolError(`${opts.source} is not a readable PEM private key (passphrase?)`);
  } finally {
    pem.fill(0);
  }
  const bits = privateKey.asymmetricKeyDetails?.modulusLength ?? 0;
  if (privateKey.asymmetricKeyType !== "rsa" || bits < MIN_KEY_BITS || bits > MAX_KEY_BITS) {
    throw new KeyToolError(`only RSA keys of ${MIN_KEY_BITS} to ${MAX_KEY_BITS} bits are accepted`);
  }
  return writeKey({ ...opts, privateKey });
}

/** Resolves any accepted fingerprint form (or a key file name) to the key in the directory. */
export function findKey(dir: string, nameOrFingerprint: string, passphrase?: Buffer): KeyInfo {
  const index = loadKeyDirectory(dir, passphrase, 0).index;
  const byLabel = index
    .list()
    .find((k) => k.label === nameOrFingerprint || k.label === `${nameOrFingerprint}.pem`);
  if (byLabel) return byLabel;
  let key: KeyInfo | undefined;
  try {
    key = index.lookup(normalizeFingerprint(nameOrFingerprint));
  } catch {
    key = undefined;
  }
  if (!key) throw new KeyToolError(`no key named or fingerprinted ${nameOrFingerprint} in ${dir}`);
  return key;
}

export function setKeyState(dir: string, key: KeyInfo, state: KeyState): void {
  const manifest = readManifest(dir);
  const entry = manifest.keys[key.fingerprint];
  manifest.keys[key.fingerprint] = { ...entry, state, file: key.label };
  writeManifest(dir, manifest);
}
