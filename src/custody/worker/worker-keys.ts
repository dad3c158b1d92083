/**
 * The key store as a re-encryption worker sees it: the key its call looked up on the main thread,
 * behind the same KeyStore interface the stores implement, so the worker's code does not know which
 * store it runs on.
 *
 *   - A key that lives in this process (the file store) came with the task; the worker unwraps with
 *     its own copy of it. A KeyObject sent to a worker shares OpenSSL's RSA object with every other
 *     thread, and OpenSSL then serializes RSA blinding across them under a lock: measured ~18% fewer
 *     private operations per second with two workers on one shared key. Copies are kept only for the
 *     newest key-set generation a worker has seen (plus calls still running on an older one), so a key
 *     removed by a reload does not linger in worker memory.
 *   - Any other key (a token's) is unwrapped by the main thread, asked over the task's port; only the
 *     32-byte content key comes back.
 */
import { createPrivateKey, type KeyObject } from "node:crypto";
import type { MessagePort } from "node:worker_threads";
import type { status } from "@grpc/grpc-js";
import { normalizeFingerprint } from "../../crypto/fingerprint.js";
import type { UnwrapKey } from "../../crypto/jwe-decrypt.js";
import type { KeyStore } from "../../keystore/key-store.js";
import { privateKeyUnwrap } from "../../keystore/private-key-unwrap.js";
import { CustodyError, type GrpcFailure } from "../errors.js";
import type { CarriedKey, UnwrapReply } from "./task.js";

/** A failure the main thread reported for the unwrap (the key store is unavailable, say), passed on as is. */
class ForwardedFailure extends CustodyError {
  readonly code: string;
  readonly grpcStatus: status;
  constructor(failure: GrpcFailure) {
    super(failure.message);
    this.code = failure.code;
    this.grpcStatus = failure.grpcStatus;
  }
}

const ownCopies = new Map<string, UnwrapKey>();
let newestGeneration = 0;

function ownCopyUnwrap(shared: KeyObject, fingerprint: string, generation: number): UnwrapKey {
  if (generation > newestGeneration) {
    newestGeneration = generation;
    ownCopies.clear();
  }
  const id = `${generation}:${fingerprint}`;
  let unwrap = ownCopies.get(id);
  if (!unwrap) {
    const der = shared.export({ type: "pkcs8", format: "der" });
    try {
      unwrap = privateKeyUnwrap(createPrivateKey({ key: der, format: "der", type: "pkcs8" }));
    } finally {
      der.fill(0);
    }
    if (generation === newestGeneration) ownCopies.set(id, unwrap);
  }
  return unwrap;
}

function unwrapThroughMainThread(port: MessagePort): UnwrapKey {
  return (encryptedKey) =>
    new Promise((resolve, reject) => {
      port.once("message", (reply: UnwrapReply) => {
        if (reply.ok) resolve(Buffer.from(reply.cek.buffer, reply.cek.byteOffset, reply.cek.byteLength));
        else reject(new ForwardedFailure(reply.failure));
      });
      port.postMessage(encryptedKey);
    });
}

export function workerKeyStore(carried: CarriedKey): KeyStore {
  const { info, generation } = carried;
  const unwrap =
    "inProcess" in carried
      ? ownCopyUnwrap(carried.inProcess, info.fingerprint, generation)
      : unwrapThroughMainThread(carried.unwrapPort);
  return {
    get: (fingerprint) =>
      normalizeFingerprint(fingerprint) === info.fingerprint ? { info, generation, unwrap } : undefined,
  };
}
