/**
 * One send-card job: card and cardholder from storage, Knot's key, custody's re-encryption, POST /card.
 * Retries only where another attempt can succeed (network, 5xx/429, custody unavailable), with full
 * jitter inside the job's deadline; INVALID_JWE means our cached key is stale, so the key is fetched
 * again once and the card re-encrypted. Any other rejection is final and recorded with Knot's code.
 */
import type { CustodyCaller } from "../custody-client.js";
import { SendCardError } from "../errors.js";
import type { KnotClient } from "../knot/client.js";
import type { GatewayMetrics } from "../metrics.js";
import type { GatewayRepository, JobOutcome, SendCardJob } from "../storage/repository.js";
import { nextRetryDelay } from "./backoff.js";

export interface SendJobContext {
  readonly repo: GatewayRepository;
  readonly knot: KnotClient;
  readonly custody: CustodyCaller;
  readonly metrics: GatewayMetrics;
  readonly owner: string;
  readonly attemptTimeoutMs: number;
  readonly leaseMs: number;
  readonly backoff: { readonly baseMs: number; readonly capMs: number };
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Stops the job without recording anything: another worker owns it now. */
class LeaseLost extends Error {}

const MIN_ATTEMPT_MS = 50;

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

  const card = await ctx.repo.findCardForKnot(job.knotCardId);
  if (!card) {
    return fail(new SendCardError("CARD_NOT_FOUND", "no Dotva card matches Knot's data.card_id", false));
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
  let last: SendCardError | undefined;
  for (;;) {
    const remaining = job.deadlineAt - now();
    if (remaining < MIN_ATTEMPT_MS) {
      return fail(
        new SendCardError(
          "DEADLINE_EXCEEDED",
          `deadline passed${last ? `; last error ${last.code}: ${last.message}` : ""}`,
          false,
          last?.knotStatus,
        ),
      );
    }
    // The claim itself granted a full lease; later attempts extend it first.
    const firstAttempt = retry === 0 && !keyRefreshed;
    if (!firstAttempt && !(await ctx.repo.renewLease(job.taskId, ctx.owner, now() + ctx.leaseMs))) {
      throw new LeaseLost();
    }
    // One budget for the whole attempt (key, custody, POST), shorter than the lease, so no other worker
    // can take the job over while this attempt may still reach Knot.
    const attemptEnd = Math.min(now() + ctx.attemptTimeoutMs, job.deadlineAt);
    const budget = () => Math.max(1, attemptEnd - now());
    try {
      const knotJwk = await ctx.knot.jwk(budget());
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
      const res = await ctx.knot.postCard(job.taskId, out.jwe, budget());
      if (res.status >= 200 && res.status < 300) {
        const completedAt = now();
        ctx.metrics.sendCardLatency.observe((completedAt - job.receivedAt) / 1000);
        return { state: "sent", completedAt, knotStatus: res.status };
      }
      if (res.errorCode === "INVALID_JWE" && !keyRefreshed) {
        keyRefreshed = true;
        ctx.knot.invalidateJwk();
        ctx.metrics.sendCardRetries.inc({ reason: "invalid_jwe" });
        continue;
      }
      const retryable = res.status >= 500 || res.status === 429;
      throw new SendCardError(
        retryable ? "KNOT_UNAVAILABLE" : "KNOT_REJECTED",
        `POST /card answered ${res.status}${res.errorCode ? ` ${res.errorCode}` : ""}`,
        retryable,
        res.status,
      );
    } catch (error) {
      if (!(error instanceof SendCardError)) throw error;
      if (!error.retryable) return fail(error);
      last = error;
      const delay = nextRetryDelay(retry, now(), job.deadlineAt, {
        ...ctx.backoff,
        minAttemptMs: MIN_ATTEMPT_MS,
      });
      if (delay === undefined) {
        return fail(
          new SendCardError(
            "DEADLINE_EXCEEDED",
            `no time left for another attempt; last error ${error.code}: ${error.message}`,
            false,
            error.knotStatus,
          ),
        );
      }
      ctx.metrics.sendCardRetries.inc({ reason: error.code.toLowerCase() });
      retry++;
      await sleep(delay);
    }
  }
}

export function isLeaseLost(error: unknown): boolean {
  return error instanceof LeaseLost;
}
