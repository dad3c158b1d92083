/**
 * Piscina worker: one ReencryptForKnot job. The Dotva plaintext is produced and overwritten here (inside
 * reencryptForKnot); only the output JWE and the card's last four digits are returned.
 */

import type { MessagePort } from "node:worker_threads";
import type { status } from "@grpc/grpc-js";
import { JweDecryptError } from "../../crypto/errors.js";
import { parseCompactJwe, type UnwrapKey } from "../../crypto/jwe-decrypt.js";
import { type KnotRecipient, parseKnotJwk } from "../../crypto/knot-jwk.js";
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

// Knot rotates its key rarely; parsing (and the ROCA check) once per distinct JWK text saves work per call.
const RECIPIENT_CACHE_SIZE = 32;
const recipients = new Map<string, KnotRecipient>();

function recipientFor(jwkText: string): KnotRecipient {
  let recipient = recipients.get(jwkText);
  if (!recipient) {
    recipient = parseKnotJwk(jwkText);
    if (recipients.size >= RECIPIENT_CACHE_SIZE) recipients.delete(recipients.keys().next().value!);
    recipients.set(jwkText, recipient);
  }
  return recipient;
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
      ? privateKeyUnwrap(task.privateKey)
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
