/**
 * Piscina worker: one ReencryptForKnot job. The Dotva plaintext is produced and overwritten here (inside
 * reencryptForKnot); only the output JWE and the card's last four digits are returned.
 */

import { createPrivateKey, type KeyObject } from "node:crypto";
import type { MessagePort } from "node:worker_threads";
import type { status } from "@grpc/grpc-js";
import { JweDecryptError } from "../../crypto/errors.js";
import { parseCompactJwe, type UnwrapKey } from "../../crypto/jwe-decrypt.js";
import { cachedKnotJwkParser } from "../../crypto/knot-jwk.js";
import { privateKeyUnwrap } from "../../keystore/private-key-unwrap.js";
import { CustodyError, DeadlineExceededError, type GrpcFailure, toGrpcFailure } from "../errors.js";
import { reencryptForKnot } from "../reencrypt.js";
import type { ReencryptResult, ReencryptTask, UnwrapReply } from "./task.js";

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

const recipientFor = cachedKnotJwkParser();

/**
 * Each worker decrypts with its own copy of a key. A KeyObject sent to a worker shares OpenSSL's RSA
 * object with every other thread, and OpenSSL then serializes RSA blinding across them under a lock:
 * measured ~18% fewer private operations per second with two workers on one shared key. Copies are kept
 * only for the newest key-set generation a worker has seen (plus calls still running on an older one),
 * so a key removed by a reload does not linger in worker memory.
 */
const ownCopies = new Map<string, KeyObject>();
let newestGeneration = 0;

function ownCopyOf(shared: { key: KeyObject; fingerprint: string; generation: number }): KeyObject {
  if (shared.generation > newestGeneration) {
    newestGeneration = shared.generation;
    ownCopies.clear();
  }
  const id = `${shared.generation}:${shared.fingerprint}`;
  let copy = ownCopies.get(id);
  if (!copy) {
    const der = shared.key.export({ type: "pkcs8", format: "der" });
    try {
      copy = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
    } finally {
      der.fill(0);
    }
    if (shared.generation === newestGeneration) ownCopies.set(id, copy);
  }
  return copy;
}

function unwrapThroughMainThread(port: MessagePort): UnwrapKey {
  return (encryptedKey) =>
    new Promise((resolve, reject) => {
      port.once("message", (reply: UnwrapReply) => {
        if (reply.ok) resolve(Buffer.from(reply.cek.buffer, reply.cek.byteOffset, reply.cek.byteLength));
        else if (reply.decryptFailed) reject(new JweDecryptError());
        else reject(new ForwardedFailure(reply.failure));
      });
      port.postMessage(encryptedKey);
    });
}

export default async function reencrypt(task: ReencryptTask): Promise<ReencryptResult> {
  try {
    if (Date.now() > task.deadline)
      throw new DeadlineExceededError("the deadline passed while the call was queued");
    const unwrap = task.privateKey
      ? privateKeyUnwrap(ownCopyOf(task.privateKey))
      : unwrapThroughMainThread(task.unwrapPort!);
    const out = await reencryptForKnot({
      jwe: parseCompactJwe(task.secretsJwe),
      unwrap,
      recipient: recipientFor(task.knotJwk),
      user: task.user,
      now: new Date(task.now),
    });
    return { ok: true, jwe: out.jwe, cardLast4: out.cardLast4 };
  } catch (err) {
    const failure = toGrpcFailure(err);
    if (failure.code !== "INTERNAL") return { ok: false, failure };
    return { ok: false, failure, internalKind: err instanceof Error ? err.name : typeof err };
  } finally {
    task.unwrapPort?.close();
  }
}
