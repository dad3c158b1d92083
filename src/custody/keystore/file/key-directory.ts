/**
 * Loading a key directory into an immutable snapshot: every `*.pem` file is a PKCS#8 private key,
 * indexed by the fingerprint of its public key; `manifest.json` gives each key its state. Any invalid
 * file fails the whole load, so a reload either yields a complete new set or leaves the old one in place.
 */
import type { KeyObject } from "node:crypto";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { type CanonicalFingerprint, fingerprintForms } from "../../../core/crypto/fingerprint.js";
import { KeyIndex } from "../key-index.js";
import type { KeyInfo } from "../key-store.js";
import { MANIFEST_FILE, readManifest } from "./manifest.js";
import { type PemReader, readPrivateKeyFile } from "./pem-key.js";

export interface KeyDirectorySnapshot {
  readonly index: KeyIndex;
  readonly privateKeys: ReadonlyMap<CanonicalFingerprint, KeyObject>;
  /** Increases with every successful load, so logs show which set served a call. */
  readonly generation: number;
  /** Things an operator should know that do not make the set unusable. */
  readonly warnings: readonly string[];
}

export function keyFilesIn(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith(".pem") && !name.startsWith("."))
    .sort();
}

export function loadKeyDirectory(
  dir: string,
  passphrase: Buffer | undefined,
  generation: number,
  readPem?: PemReader,
): KeyDirectorySnapshot {
  const manifest = readManifest(dir);
  const infos: KeyInfo[] = [];
  const privateKeys = new Map<CanonicalFingerprint, KeyObject>();
  for (const name of keyFilesIn(dir)) {
    const path = join(dir, name);
    const key = readPrivateKeyFile(path, passphrase, readPem);
    const forms = fingerprintForms(key.publicKey);
    const entry = manifest.keys[forms.canonical];
    infos.push({
      fingerprint: forms.canonical,
      aliases: forms.aliases,
      state: entry?.state ?? "active",
      modulusBits: key.modulusBits,
      spki: key.publicKey.export({ type: "spki", format: "der" }),
      label: name,
      source: path,
      createdAt: entry?.created ? new Date(entry.created) : key.mtime,
    });
    privateKeys.set(forms.canonical, key.privateKey);
  }
  // A state for a key that is not there is a retired (deleted) key or a mistyped fingerprint: the set is
  // still usable, but the operator hears about it on every load.
  const warnings = Object.keys(manifest.keys)
    .filter((fingerprint) => !privateKeys.has(fingerprint as CanonicalFingerprint))
    .map((fingerprint) => `${MANIFEST_FILE} names ${fingerprint}, but no key file in the directory has it`);
  return { index: new KeyIndex(infos), privateKeys, generation, warnings };
}
