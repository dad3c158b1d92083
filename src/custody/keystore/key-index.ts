/**
 * Fingerprint index shared by both key stores: every accepted spelling of a key's fingerprint maps to
 * its KeyInfo, so a lookup is one Map access and keys are never tried one by one.
 */
import { normalizeFingerprint } from "../../core/crypto/fingerprint.js";
import type { KeyInfo } from "./key-store.js";

export class KeyIndex<T extends KeyInfo = KeyInfo> {
  private readonly byName = new Map<string, T>();
  private readonly all: T[] = [];

  constructor(keys: Iterable<T>) {
    for (const key of keys) {
      if (this.byName.has(key.fingerprint)) {
        throw new Error(`two key sources hold the same key ${key.fingerprint}: ${key.source}`);
      }
      this.all.push(key);
      for (const name of [key.fingerprint, ...key.aliases]) this.byName.set(name, key);
    }
  }

  /** Throws FingerprintError when `fingerprint` is not in an accepted form. */
  lookup(fingerprint: string): T | undefined {
    return this.byName.get(normalizeFingerprint(fingerprint));
  }

  list(): readonly T[] {
    return this.all;
  }
}
