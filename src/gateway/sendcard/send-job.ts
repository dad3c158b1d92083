/**
 * One send-card job: card and cardholder from storage, Knot's key, custody's re-encryption, POST /card,
 * all inside the job's deadline (Knot: "up to 15 seconds ... after receiving the AUTHENTICATED webhook").
 *
 * - Knot 5xx, network errors and timeouts, custody UNAVAILABLE and the like: exponential back-off with
 *   full jitter, as long as another attempt fits before the deadline (Knot: "exponential backoff or
 *   jitter").
 * - Knot 429: Knot's Retry-After when it sent one and it fits in the window, else the back-off.
 * - Knot 400 INVALID_JWE, or custody refusing the recipient key: the cached key may be stale (Knot
 *   rotated it), so it is fetched again once and the card re-encrypted. When custody refuses the fresh
 *   key too, that key is not pinned yet: the job fails with KNOT_KEY_NOT_PINNED, an alert metric and a
 *   log line naming the key's RFC 7638 thumbprint so the security team can pin it.
 * - custody refusing the card's secrets (cannot decrypt, malformed): final, and the card is marked
 *   unusable so a differing redelivery from Dotva may replace its secrets.
 * - any other 4xx and every final redirect: final, recorded with Knot's status and code.
 *
 * - a POST /card whose answer we never recorded (a crash between Knot's 200 and finishJob, or a timeout
 *   that may have fired after Knot took the card): Knot's /card has no idempotency key, so the only sign
 *   that the card arrived is Knot's own CARD_UPDATING / CARD_UPDATED webhook. Before posting again the
 *   job waits for that word (at most `uncertainGraceMs`, and never past the last moment a full attempt
 *   still fits): CARD_UPDATING or CARD_UPDATED ends the job as sent without a second POST, CARD_FAILED
 *   ends it failed (KNOT_TASK_FAILED); silence means the card is posted again, and Knot may see that
 *   task twice. `post_started_at` is written durably before every POST so the next owner knows.
 *
 * Which card: only one bound to the task's external_user_id (PUT /v1/cardholders/{id}/cards/{card_id}),
 * looked up by that binding's (workspace_id, card_id). A Knot signature does not cover task_id,
 * external_user_id or data.card_id, so a task naming a card its user does not own is refused, final and
 * alerted, before custody is asked; and custody's last four digits must be the stored ones before
 * anything goes to Knot. A card whose secrets were purged (retention) cannot be sent.
 */
import type { Logger } from "pino";
import type { ReasonCode } from "../../contract/reason-codes.js";
import { rsaJwkThumbprint } from "../../core/crypto/fingerprint.js";
import { type CustodyCaller, custodyJobCode } from "../custody-client.js";
import { SendCardError } from "../errors.js";
import type { KnotClient } from "../knot/client.js";
import type { GatewayMetrics } from "../metrics.js";
import type { GatewayRepository, JobOutcome, KnotCardWord, SendCardJob } from "../storage/repository.js";
import { nextRetryDelay } from "./backoff.js";

export type KnotApi = Pick<KnotClient, "jwk" | "invalidateJwk" | "postCard">;

export interface SendJobContext {
  readonly repo: GatewayRepository;
  /** GatewayConfig.secrets: a card past either limit is treated as purged even before the sweep. */
  readonly retention: { readonly ttlMs: number; readonly keepAfterSendMs: number };
  readonly knot: KnotApi;
  readonly custody: CustodyCaller;
  readonly metrics: GatewayMetrics;
  readonly owner: string;
  readonly attemptTimeoutMs: number;
  readonly leaseMs: number;
  readonly backoff: { readonly baseMs: number; readonly capMs: number };
  /** Longest wait for Knot's word on a POST whose answer was never recorded (UNCERTAIN_GRACE_MS). */
  readonly uncertainGraceMs?: number;
  readonly log?: Logger;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
}

/** Stops the job without recording anything: another worker owns it now. */
class LeaseLost extends Error {}

const MIN_ATTEMPT_MS = 50;

/**
 * How long a job whose last POST /card went unanswered waits for Knot's CARD_UPDATING before posting
 * again. Knot's documents give no latency for that webhook; two seconds of a fifteen-second window is
 * the trade made here between a duplicate card at Knot and a late one.
 */
export const UNCERTAIN_GRACE_MS = 2_000;
const WORD_POLL_MS = 100;

/** Custody reasons that say the card's secrets themselves can never be re-encrypted. */
const UNUSABLE_SECRET_REASONS: readonly ReasonCode[] = [
  "JWE_MALFORMED",
  "JWE_TOO_LARGE",
  "JWE_HEADER_UNSUPPORTED",
  "JWE_DECRYPT_FAILED",
  "KEY_NOT_FOUND",
  "KEY_FINGERPRINT_INVALID",
  "SECRETS_MALFORMED",
  "PAN_INVALID",
  "CVV_INVALID",
  "EXPIRY_INVALID",
];
const UNUSABLE_SECRETS = new Set(UNUSABLE_SECRET_REASONS.map(custodyJobCode));
const RECIPIENT_REFUSED = custodyJobCode("RECIPIENT_NOT_ALLOWED");

/** RFC 7638 thumbprint of the key Knot served, or a placeholder when it is not an RSA JWK. */
function thumbprintOf(jwkText: string): string {
  try {
    const jwk = JSON.parse(jwkText) as { n?: unknown; e?: unknown };
    if (typeof jwk.n === "string" && typeof jwk.e === "string")
      return rsaJwkThumbprint({ n: jwk.n, e: jwk.e });
  } catch {
    // falls through: custody refused it for being malformed, not for being unpinned
  }
  return "(not an RSA JWK)";
}

export async function runSendJob(job: SendCardJob, ctx: SendJobContext): Promise<JobOutcome | undefined> {
  const now = ctx.now ?? Date.now;
  const sleep = ctx.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const fail = (e: SendCardError): JobOutcome => ({
    state: "failed",
    completedAt: now(),
    errorCode: e.code,
    errorMessage: e.message,
    ...(e.knotStatus !== undefined ? { knotStatus: e.knotStatus } : {}),
  });

  const refuse = (code: string, message: string): JobOutcome => {
    ctx.metrics.sendCardRefused.inc({ code });
    ctx.log?.error(
      { taskId: job.taskId, knotCardId: job.knotCardId, externalUserId: job.externalUserId, code },
      "send-card refused before anything was sent",
    );
    return fail(new SendCardError(code, message, false));
  };
  const found = await ctx.repo.findCardForTask(job.externalUserId, job.knotCardId);
  if (found.kind === "not_bound") {
    return refuse(
      "CARD_NOT_OWNED",
      "no card with Knot's data.card_id is bound to the task's external_user_id; bind it with PUT /v1/cardholders/{external_user_id}/cards/{card_id}",
    );
  }
  if (found.kind === "ambiguous") {
    return refuse(
      "CARD_AMBIGUOUS",
      `${found.count} Dotva deliveries (different card_uuid) carry this workspace_id and card_id; resolve them before sending`,
    );
  }
  if (found.kind === "not_found") {
    return fail(
      new SendCardError(
        "CARD_NOT_FOUND",
        "the card bound to this user has not been delivered by Dotva (no matching workspace_id and card_id)",
        false,
      ),
    );
  }
  const card = found.card;
  const t = now();
  if (
    card.secretsPurgedAt !== undefined ||
    card.receivedAt <= t - ctx.retention.ttlMs ||
    (card.firstSentAt !== undefined && card.firstSentAt <= t - ctx.retention.keepAfterSendMs)
  ) {
    return fail(
      new SendCardError(
        "CARD_SECRETS_PURGED",
        "the card's secrets_jwe was purged (GATEWAY_SECRETS_TTL_SECONDS or GATEWAY_SECRETS_KEEP_AFTER_SEND_SECONDS); the card can no longer be sent",
        false,
      ),
    );
  }
  const profile = await ctx.repo.getCardholder(job.externalUserId);
  if (!profile) {
    return fail(
      new SendCardError(
        "CARDHOLDER_NOT_FOUND",
        "no cardholder profile for external_user_id; PUT it first",
        false,
      ),
    );
  }

  let keyRefreshed = false;
  let retry = 0;
  let attempt = 0;
  let last: SendCardError | undefined;
  // Knot's last HTTP answer for this job. A job that runs out of time records it even when its final
  // attempt got no answer at all, so the operator still sees what Knot was saying (503, 429, ...).
  let lastKnotStatus: number | undefined;
  // A previous owner began a POST and recorded no answer: the card may already be at Knot.
  let uncertain = job.postStartedAt !== undefined;
  for (;;) {
    if (uncertain) {
      const word = await knotWord(job, ctx, now, sleep);
      if (word.kind === "received") {
        ctx.metrics.sendCardUncertain.inc({ resolution: "confirmed_by_knot" });
        ctx.log?.info(
          { taskId: job.taskId, knotEvent: word.event },
          "Knot's webhook shows the card arrived after an unanswered POST; not posted again",
        );
        return { state: "sent", completedAt: now(), sentCardUuid: card.cardUuid };
      }
      if (word.kind === "failed") {
        ctx.metrics.sendCardUncertain.inc({ resolution: "knot_task_failed" });
        return fail(
          new SendCardError(
            "KNOT_TASK_FAILED",
            `Knot sent CARD_FAILED${word.reason ? ` (${word.reason})` : ""} for this task after an unanswered POST; the card is not posted again`,
            false,
          ),
        );
      }
      ctx.metrics.sendCardUncertain.inc({ resolution: "resent" });
      ctx.log?.warn(
        { taskId: job.taskId },
        "no word from Knot after an unanswered POST /card; posting again (Knot may see this task twice)",
      );
      uncertain = false;
    }
    const remaining = job.deadlineAt - now();
    if (remaining < MIN_ATTEMPT_MS) {
      return fail(
        new SendCardError(
          "DEADLINE_EXCEEDED",
          `deadline passed${last ? `; last error ${last.code}: ${last.message}` : ""}`,
          false,
          lastKnotStatus,
        ),
      );
    }
    // The claim itself granted a full lease; later attempts extend it first.
    if (attempt++ > 0 && !(await ctx.repo.renewLease(job.taskId, ctx.owner, now() + ctx.leaseMs))) {
      throw new LeaseLost();
    }
    // One budget for the whole attempt (key, custody, POST), shorter than the lease, so no other worker
    // can take the job over while this attempt may still reach Knot.
    const attemptEnd = Math.min(now() + ctx.attemptTimeoutMs, job.deadlineAt);
    const budget = () => Math.max(1, attemptEnd - now());
    let knotJwk: string | undefined;
    try {
      knotJwk = await ctx.knot.jwk(budget());
      const out = await ctx.custody.reencrypt(
        {
          secrets_jwe: card.secretsJwe,
          key_fingerprint: card.keyFingerprint,
          knot_jwk: knotJwk,
          user: profile as never,
          request_id: `task-${job.taskId}`,
        },
        budget(),
      );
      // custody.v1 returns the BIN and last four digits of the card it decrypted: secrets that are not the
      // stored card's (a substituted secrets_jwe) never reach Knot. Dotva's card_bin may have 6 to 8 digits.
      if (out.card_last4 !== card.cardLast4 || out.card_bin !== card.cardBin.slice(0, 6)) {
        return refuse(
          "CARD_MISMATCH",
          "custody decrypted a card whose BIN or last four digits differ from the stored card_bin/card_last4; nothing sent",
        );
      }
      // Durable before the request leaves: whoever holds the job after a crash knows a POST may have
      // reached Knot. Knot's /card takes no idempotency key, so this is all the protocol allows.
      if (!(await ctx.repo.beginPost(job.taskId, ctx.owner, now(), now() + ctx.leaseMs))) {
        throw new LeaseLost();
      }
      let res: Awaited<ReturnType<KnotApi["postCard"]>>;
      try {
        res = await ctx.knot.postCard(job.taskId, out.jwe, budget());
      } catch (error) {
        // No answer: Knot may have taken the card and its 200 been lost with the connection.
        uncertain = true;
        throw error;
      }
      if (res.status >= 200 && res.status < 300) {
        const completedAt = now();
        ctx.metrics.sendCardLatency.observe((completedAt - job.receivedAt) / 1000);
        return { state: "sent", completedAt, knotStatus: res.status, sentCardUuid: card.cardUuid };
      }
      if (res.errorCode === "INVALID_JWE" && !keyRefreshed) {
        keyRefreshed = true;
        ctx.knot.invalidateJwk(knotJwk);
        ctx.metrics.sendCardRetries.inc({ reason: "invalid_jwe" });
        continue;
      }
      const retryable = res.status >= 500 || res.status === 429;
      throw new SendCardError(
        retryable ? "KNOT_UNAVAILABLE" : "KNOT_REJECTED",
        `POST /card answered ${res.status}${res.errorCode ? ` ${res.errorCode}` : ""}`,
        retryable,
        res.status,
        res.retryAfterMs,
      );
    } catch (error) {
      if (!(error instanceof SendCardError)) throw error;
      lastKnotStatus = error.knotStatus ?? lastKnotStatus;
      if (error.code === RECIPIENT_REFUSED && knotJwk !== undefined) {
        if (!keyRefreshed) {
          // Knot may have rotated since the key was cached: ask Knot again before the TTL runs out.
          keyRefreshed = true;
          ctx.knot.invalidateJwk(knotJwk);
          ctx.metrics.sendCardRetries.inc({ reason: "recipient_refused" });
          continue;
        }
        const thumbprint = thumbprintOf(knotJwk);
        ctx.metrics.knotKeyNotPinned.inc();
        ctx.log?.error(
          { taskId: job.taskId, knotKeyThumbprint: thumbprint },
          "custody refuses Knot's current JWE key: it is not pinned; pin this RFC 7638 thumbprint in custody",
        );
        return fail(
          new SendCardError(
            "KNOT_KEY_NOT_PINNED",
            `custody refuses Knot's current key (RFC 7638 thumbprint ${thumbprint}); the security team must pin it in custody`,
            false,
          ),
        );
      }
      if (UNUSABLE_SECRETS.has(error.code)) {
        await ctx.repo.markCardUnusable(card.cardUuid, error.code.slice("CUSTODY_".length));
      }
      if (!error.retryable) return fail(error);
      last = error;
      const delay = retryDelay(error, retry, now(), job.deadlineAt, ctx);
      if (delay === undefined) {
        return fail(
          new SendCardError(
            "DEADLINE_EXCEEDED",
            `no time left for another attempt; last error ${error.code}: ${error.message}`,
            false,
            lastKnotStatus,
          ),
        );
      }
      ctx.metrics.sendCardRetries.inc({ reason: error.code.toLowerCase() });
      retry++;
      await sleep(delay);
    }
  }
}

/**
 * Knot's word on the task, waiting for it at most `uncertainGraceMs` and never past the last moment at
 * which a full attempt still fits before the deadline.
 */
async function knotWord(
  job: SendCardJob,
  ctx: SendJobContext,
  now: () => number,
  sleep: (ms: number) => Promise<void>,
): Promise<KnotCardWord> {
  const until = Math.min(
    now() + (ctx.uncertainGraceMs ?? UNCERTAIN_GRACE_MS),
    job.deadlineAt - ctx.attemptTimeoutMs,
  );
  // The wait may outlast the lease: hold the job through it, or another worker would take it over only
  // to wait in turn.
  if (until > now() && !(await ctx.repo.renewLease(job.taskId, ctx.owner, until + ctx.leaseMs))) {
    throw new LeaseLost();
  }
  for (;;) {
    const word = await ctx.repo.knotCardWord(job.taskId);
    if (word.kind !== "silent" || now() >= until) return word;
    await sleep(Math.min(WORD_POLL_MS, until - now()));
  }
}

/** Knot's Retry-After when given (and it fits before the deadline), otherwise full-jitter back-off. */
function retryDelay(
  error: SendCardError,
  retry: number,
  now: number,
  deadlineAt: number,
  ctx: SendJobContext,
): number | undefined {
  if (error.retryAfterMs !== undefined) {
    return now + error.retryAfterMs + MIN_ATTEMPT_MS <= deadlineAt ? error.retryAfterMs : undefined;
  }
  return nextRetryDelay(retry, now, deadlineAt, { ...ctx.backoff, minAttemptMs: MIN_ATTEMPT_MS }, ctx.random);
}

export function isLeaseLost(error: unknown): boolean {
  return error instanceof LeaseLost;
}
