/**
 * The content key of a call, as a re-encryption worker gets it.
 *
 *   - A key that lives in this process (the file store): the worker unwraps with its own copy of it. A
 *     KeyObject sent to a worker shares OpenSSL's RSA object with every other thread, and OpenSSL then
 *     serializes RSA blinding across them under a lock: measured ~18% fewer private operations per
 *     second with two workers on one shared key. Copies are kept only for the newest key-set generation
 *     a worker has seen (plus calls still running on an older one, which hold their copy themselves), and
 *     the pool announces every key-set reload (dropOlderThan), so a key removed by a reload leaves worker
 *     memory at once, not when the next call comes. The pool (reencryptor.ts) mirrors this rule to send
 *     each key once.
 *   - Any other key (a token's) was unwrapped by the main thread before the task was sent; the task
 *     carries the 32-byte content key, real or random, and the worker uses it as is.
 */
import { createPrivateKey, type KeyObject } from "node:crypto";
import type { UnwrapKey } from "../../core/crypto/jwe-decrypt.js";
import { privateKeyUnwrap } from "../keystore/private-key-unwrap.js";
import type { CarriedKey, KeyCopyStats } from "./task.js";

const ownCopies = new Map<string, UnwrapKey>();
let newestGeneration = 0;

function ownCopy(shared: KeyObject): UnwrapKey {
  const der = shared.export({ type: "pkcs8", format: "der" });
  try {
    return privateKeyUnwrap(createPrivateKey({ key: der, format: "der", type: "pkcs8" }));
  } finally {
    der.fill(0);
  }
}

/**
 * Forgets every copy older than `generation`. A KeyObject cannot be overwritten from JavaScript; once
 * unreferenced, the garbage collector frees it and OpenSSL clears the private components as it frees them.
 */
export function dropOlderThan(generation: number): void {
  if (generation <= newestGeneration) return;
  newestGeneration = generation;
  ownCopies.clear();
}

export function heldCopies(): KeyCopyStats {
  return { newestGeneration, held: [...ownCopies.keys()] };
}

export function inProcessUnwrap(carried: Extract<CarriedKey, { kind: "in-process" }>): UnwrapKey {
  const { fingerprint, generation, privateKey } = carried;
  dropOlderThan(generation);
  const id = `${generation}:${fingerprint}`;
  let unwrap = ownCopies.get(id);
  if (!unwrap) {
    if (!privateKey) throw new Error("the pool sent no private key for a key this worker does not hold");
    unwrap = ownCopy(privateKey);
    if (generation === newestGeneration) ownCopies.set(id, unwrap);
  }
  return unwrap;
}

/** The main thread's unwrap result; handed over once, then the worker's decryptJwe overwrites it. */
export function unwrappedKey(cek: Buffer): UnwrapKey {
  return async () => cek;
}
