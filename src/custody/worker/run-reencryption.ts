/**
 * One re-encryption as both runners perform it (the worker threads of reencrypt-worker.ts and the inline
 * runner of reencrypt-inline.ts): the queued-too-long check, the core, and the result the service answers
 * with. Each runner keeps its own content-key cleanup, since what it holds differs.
 */
import type { KnotUser } from "../../core/card/knot-user.js";
import type { ParsedJwe, UnwrapKey } from "../../core/crypto/jwe-decrypt.js";
import type { KnotRecipient } from "../../core/crypto/knot-jwk.js";
import { reencryptForKnot } from "../../core/reencrypt.js";
import { DeadlineExceededError, toGrpcFailure } from "../errors.js";
import type { ReencryptResult } from "./task.js";

export interface ReencryptionInput {
  readonly knotJwk: string;
  readonly user: KnotUser;
  /** Epoch ms: the time the card's expiry is checked against. */
  readonly now: number;
  /** Epoch ms after which the caller has given up: the RSA work is skipped. */
  readonly deadline: number;
}

/**
 * `source` yields the JWE and its unwrap; it runs after the deadline check, so a job that waited too long
 * does no key work, and whatever it throws is answered like any other failure.
 */
export async function runReencryption(
  input: ReencryptionInput,
  recipientFor: (knotJwk: string) => KnotRecipient,
  source: () => { readonly jwe: ParsedJwe; readonly unwrap: UnwrapKey },
): Promise<ReencryptResult> {
  try {
    if (Date.now() > input.deadline)
      throw new DeadlineExceededError("the deadline passed while the call was queued");
    const { jwe, unwrap } = source();
    const out = await reencryptForKnot({
      jwe,
      unwrap,
      recipient: recipientFor(input.knotJwk),
      user: input.user,
      now: new Date(input.now),
    });
    return { ok: true, jwe: out.jwe, cardLast4: out.cardLast4, cardBin: out.cardBin };
  } catch (err) {
    const failure = toGrpcFailure(err);
    if (failure.code !== "INTERNAL") return { ok: false, failure };
    return { ok: false, failure, internalKind: err instanceof Error ? err.name : typeof err };
  }
}
