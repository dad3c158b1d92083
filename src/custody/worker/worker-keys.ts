/**
 * The content key of a call, as a re-encryption worker gets it.
 *
 *   - A key that lives in this process (the file store): the worker unwraps with its own copy of it. A
 *     KeyObject sent to a worker shares OpenSSL's RSA object with every other thread, and OpenSSL then
 *     serializes RSA blinding across them under a lock: measured ~18% fewer private operations per
 *     second with two workers on one shared key. Copies are kept only for the newest key-set generation
 *     a worker has seen (plus calls still running on an older one), so a key removed by a reload does
 *     not linger in worker memory. The pool (reencryptor.ts) mirrors this rule to send each key once.
 *   - Any other key (a token's) was unwrapped by the main thread before the task was sent; the task
 *     carries the 32-byte content key, real or random, and the worker uses it as is.
 */
import { createPrivateKey, type KeyObject } from "node:crypto";
import type { UnwrapKey } from "../../core/crypto/jwe-decrypt.js";
import { privateKeyUnwrap } from "../keystore/private-key-unwrap.js";
import type { CarriedKey } from "./task.js";

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

export function inProcessUnwrap(carried: Extract<CarriedKey, { kind: "in-process" }>): UnwrapKey {
  const { fingerprint, generation, privateKey } = carried;
  if (generation > newestGeneration) {
    newestGeneration = generation;
    ownCopies.clear();
  }
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
