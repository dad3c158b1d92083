/**
 * The seam between custody and a key store: where the RSA private operation of one call runs.
 *
 *   - "in-worker": the store can hand the worker thread a private KeyObject (the PEM file store). The
 *     whole re-encryption, unwrap included, then runs in the worker.
 *   - "main-thread": the store only offers an async `unwrap` (a PKCS#11 token, whose sessions belong to
 *     the process). The worker asks the main thread to unwrap the content key and does the rest itself.
 *
 * In both cases plaintext card data exists only inside the worker. A call takes one KeySnapshot when it
 * starts and uses only it, so a reload mid-call cannot change the key under it.
 */
import type { KeyObject } from "node:crypto";
import type { CanonicalFingerprint } from "../crypto/fingerprint.js";
import type { UnwrapKey } from "../crypto/jwe-decrypt.js";
import type { FileKeyStore } from "../keystore/file/file-key-store.js";
import type { KeyInfo, KeyStore } from "../keystore/key-store.js";
import type { Pkcs11KeyStore } from "../keystore/pkcs11/pkcs11-key-store.js";

export type KeyAccess =
  | {
      readonly kind: "in-worker";
      readonly privateKey: KeyObject;
      /** Names the key within its key-set generation, so a worker can keep its own copy of it. */
      readonly fingerprint: CanonicalFingerprint;
      readonly generation: number;
    }
  | { readonly kind: "main-thread"; readonly unwrap: UnwrapKey };

export interface KeySnapshot {
  readonly generation: number;
  /** Throws FingerprintError when the text is no fingerprint form at all. */
  lookup(fingerprint: string): KeyInfo | undefined;
  access(fingerprint: CanonicalFingerprint): KeyAccess;
}

export interface ReloadResult {
  readonly generation: number;
  readonly keys: number;
  readonly warnings: readonly string[];
}

export interface KeySource {
  current(): KeySnapshot;
  /** Rejects, keeping the current set, when the new one does not validate. */
  reload(): Promise<ReloadResult>;
  list(): readonly KeyInfo[];
  close(): Promise<void>;
  /**
   * Present for stores that can lose their backend (a PKCS#11 token): the current state and a
   * subscription, which the server maps to SERVING / NOT_SERVING on grpc.health.v1.
   */
  readonly health?: {
    healthy(): boolean;
    onChange(listener: (healthy: boolean) => void): () => void;
  };
}

export function fileKeySource(store: FileKeyStore): KeySource {
  const snapshotOf = (): KeySnapshot => {
    const snap = store.snapshot();
    return {
      generation: snap.generation,
      lookup: (fp) => snap.index.lookup(fp),
      access: (fp) => ({
        kind: "in-worker",
        privateKey: snap.privateKeys.get(fp)!,
        fingerprint: fp,
        generation: snap.generation,
      }),
    };
  };
  return {
    current: snapshotOf,
    reload: async () => {
      const snap = store.reload();
      return { generation: snap.generation, keys: snap.index.list().length, warnings: snap.warnings };
    },
    list: () => store.list(),
    close: () => store.close(),
  };
}

/**
 * Any KeyStore, unwrapping on the main thread (the PKCS#11 store plugs in here). `reload` is the
 * store's own when it has one; a store without reload serves the set it opened with.
 */
export function mainThreadKeySource(
  store: KeyStore & {
    reload?: () => Promise<unknown>;
    healthy?: () => boolean;
    onHealthChange?: (listener: (healthy: boolean) => void) => () => void;
  },
): KeySource {
  let generation = 1;
  return {
    current: () => {
      const gen = generation;
      return {
        generation: gen,
        lookup: (fp) => store.lookup(fp),
        access: (fp) => ({ kind: "main-thread", unwrap: (encryptedKey) => store.unwrap(fp, encryptedKey) }),
      };
    },
    reload: async () => {
      await store.reload?.();
      generation += 1;
      return { generation, keys: store.list().length, warnings: [] };
    },
    list: () => store.list(),
    close: () => store.close(),
    ...(store.healthy && store.onHealthChange
      ? {
          health: {
            healthy: () => store.healthy!(),
            onChange: (listener: (healthy: boolean) => void) => store.onHealthChange!(listener),
          },
        }
      : {}),
  };
}

/**
 * The PKCS#11 store: unwrap on the main thread (the token's sessions belong to this process), on the
 * key set the call started with, and the token's health for grpc.health.v1.
 */
export function pkcs11KeySource(store: Pkcs11KeyStore): KeySource {
  return {
    current: () => {
      const snap = store.snapshot();
      return {
        generation: snap.generation,
        lookup: (fp) => snap.lookup(fp),
        access: (fp) => ({ kind: "main-thread", unwrap: (encryptedKey) => snap.unwrap(fp, encryptedKey) }),
      };
    },
    reload: async () => {
      await store.reload();
      const snap = store.snapshot();
      return { generation: snap.generation, keys: store.list().length, warnings: snap.warnings };
    },
    list: () => store.list(),
    close: () => store.close(),
    health: { healthy: () => store.healthy(), onChange: (listener) => store.onHealthChange(listener) },
  };
}
