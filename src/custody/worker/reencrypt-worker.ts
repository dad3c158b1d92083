/**
 * Piscina worker: one ReencryptForKnot job. The Dotva plaintext is produced and overwritten here (inside
 * reencryptForKnot); only the output JWE and the card's last four digits are returned.
 */

import { parseCompactJwe } from "../../crypto/jwe-decrypt.js";
import { cachedKnotJwkParser } from "../../crypto/knot-jwk.js";
import { DeadlineExceededError, toGrpcFailure } from "../errors.js";
import { reencryptForKnot } from "../reencrypt.js";
import type { ReencryptResult, ReencryptTask } from "./task.js";
import { workerKeyStore } from "./worker-keys.js";

const recipientFor = cachedKnotJwkParser();

export default async function reencrypt(task: ReencryptTask): Promise<ReencryptResult> {
  try {
    if (Date.now() > task.deadline)
      throw new DeadlineExceededError("the deadline passed while the call was queued");
    const key = task.key && workerKeyStore(task.key).get(task.key.info.fingerprint);
    if (!key) throw new Error("a re-encryption task arrived without its key");
    const out = await reencryptForKnot({
      jwe: parseCompactJwe(task.secretsJwe),
      unwrap: key.unwrap,
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
    if (task.key && "unwrapPort" in task.key) task.key.unwrapPort.close();
  }
}
