/**
 * The send-card job's retry rules against an injected clock (no real sleeps): Knot 5xx and timeouts
 * back off exponentially with jitter inside the window, 429 honours Retry-After, INVALID_JWE and a
 * refused recipient refresh Knot's key once, an unpinned new key fails with its thumbprint, and
 * secrets custody cannot use mark the card for replacement.
 */
import { generateKeyPairSync } from "node:crypto";
import { calculateJwkThumbprint, exportJWK } from "jose";
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { CustodyCaller } from "./custody-client.js";
import { SendCardError } from "./errors.js";
import type { KnotResponse } from "./knot/client.js";
import { GatewayMetrics } from "./metrics.js";
import { isLeaseLost, type KnotApi, runSendJob } from "./sendcard/send-job.js";
import type {
  CardForSend,
  CardLookup,
  GatewayRepository,
  KnotCardWord,
  SendCardJob,
} from "./storage/repository.js";

const DEADLINE = 15_000;
type Step = KnotResponse | SendCardError;

const RETENTION = { ttlMs: 30 * 86_400_000, keepAfterSendMs: 3_600_000 };

const STORED: CardForSend = {
  cardUuid: "u-1",
  workspaceId: "12",
  cardId: "123456789",
  cardLast4: "4242",
  cardBin: "424242",
  keyFingerprint: "fp",
  secretsJwe: "a.b.c.d.e",
  receivedAt: 0,
};

function harness(
  o: {
    posts?: Step[];
    custody?: (string | undefined)[];
    keys?: string[];
    lookup?: CardLookup;
    decryptedLast4?: string;
    decryptedBin?: string;
    start?: number;
    /** A previous owner's unanswered POST (SendCardJob.postStartedAt). */
    postStartedAt?: number;
    /** Knot's word on the task as storage would answer it, asked at fake time `t`. */
    word?: (t: number) => KnotCardWord;
    grace?: number;
    ownsLease?: boolean;
    /** Time already gone from the job's window when it runs (a job resumed after a crash). */
    elapsed?: number;
  } = {},
) {
  let t = o.start ?? 0;
  const custodyCalls: string[] = [];
  const order: string[] = [];
  const sleeps: number[] = [];
  const unusable: string[] = [];
  const posts = [...(o.posts ?? [{ status: 200 }])];
  const custodyFaults = [...(o.custody ?? [])];
  const keys = [...(o.keys ?? ['{"kty":"RSA","n":"AQAB","e":"AQAB"}'])];
  let currentKey = keys.shift()!;
  const knotCalls = { jwk: 0, post: 0, invalidated: 0 };
  const posted: string[] = [];
  const knot: KnotApi = {
    jwk: async () => {
      knotCalls.jwk++;
      return currentKey;
    },
    invalidateJwk: () => {
      knotCalls.invalidated++;
      if (keys.length > 0) currentKey = keys.shift()!;
    },
    postCard: async (taskId, jwe) => {
      order.push("post");
      knotCalls.post++;
      posted.push(`${taskId}:${jwe}`);
      t += 10;
      const step = posts.shift() ?? { status: 200 };
      if (step instanceof SendCardError) throw step;
      return step;
    },
  };
  const custody: CustodyCaller = {
    reencrypt: async (req) => {
      custodyCalls.push(req.secrets_jwe ?? "");
      const reason = custodyFaults.shift();
      if (reason) throw new SendCardError(`CUSTODY_${reason}`, `custody refused: ${reason}`, false);
      return {
        jwe: `jwe-for-${(req.knot_jwk ?? "").length}`,
        key_fingerprint: "",
        recipient_thumbprint: "",
        card_last4: o.decryptedLast4 ?? "4242",
        card_bin: o.decryptedBin ?? "424242",
      };
    },
    healthy: async () => true,
    close: () => {},
  };
  const repo = {
    findCardForTask: async () => o.lookup ?? { kind: "card", card: STORED },
    getCardholder: async () => ({ name: "profile" }),
    renewLease: async () => o.ownsLease ?? true,
    beginPost: async () => {
      order.push("beginPost");
      return o.ownsLease ?? true;
    },
    knotCardWord: async () => (o.word ? o.word(t) : { kind: "silent" }),
    markCardUnusable: async (uuid: string, reason: string) => {
      unusable.push(`${uuid}:${reason}`);
    },
  } as unknown as GatewayRepository;
  const metrics = new GatewayMetrics(false);
  const logs: string[] = [];
  // No time, pid or hostname: the tests search these lines for four digits that must not be there.
  const log = pino(
    { level: "info", base: null, timestamp: false },
    { write: (line: string) => logs.push(line) },
  );
  const job: SendCardJob = {
    taskId: "25605",
    knotCardId: "123456789",
    externalUserId: "user",
    receivedAt: t,
    deadlineAt: t + DEADLINE,
    state: "running",
    attempts: 1,
    ...(o.postStartedAt !== undefined ? { postStartedAt: o.postStartedAt } : {}),
  };
  t += o.elapsed ?? 0;
  const run = () =>
    runSendJob(job, {
      repo,
      retention: RETENTION,
      knot,
      custody,
      metrics,
      owner: "me",
      attemptTimeoutMs: 4_000,
      leaseMs: 6_000,
      backoff: { baseMs: 100, capMs: 2_000 },
      uncertainGraceMs: o.grace ?? 0,
      log,
      now: () => t,
      sleep: async (ms) => {
        sleeps.push(ms);
        t += ms;
      },
      random: () => 0.5,
    });
  return { run, sleeps, knotCalls, posted, unusable, metrics, logs, custodyCalls, order, clock: () => t };
}

const unavailable = { status: 503 };
const timeout = () => new SendCardError("KNOT_TIMEOUT", "POST /card: no answer in time", true);

describe("send-card job retries", () => {
  it("backs off exponentially with jitter on 5xx and timeouts, then sends", async () => {
    const h = harness({ posts: [unavailable, timeout(), unavailable, { status: 200 }] });
    expect(await h.run()).toMatchObject({ state: "sent", knotStatus: 200, sentCardUuid: "u-1" });
    // random 0.5 of min(cap, base * 2^n): 50, 100, 200.
    expect(h.sleeps).toEqual([50, 100, 200]);
    expect(h.knotCalls.post).toBe(4);
  });

  it("keeps retrying inside the window only: every attempt starts before the deadline", async () => {
    const h = harness({ posts: Array.from({ length: 100 }, () => unavailable) });
    const out = await h.run();
    expect(out).toMatchObject({ state: "failed", errorCode: "DEADLINE_EXCEEDED", knotStatus: 503 });
    expect(out!.completedAt).toBeLessThanOrEqual(DEADLINE);
    expect(h.sleeps.slice(0, 6)).toEqual([50, 100, 200, 400, 800, 1_000]);
    expect(Math.max(...h.sleeps)).toBe(1_000);
  });

  it("runs out of time on unanswered POSTs and still records Knot's last answer (503)", async () => {
    const h = harness({ posts: [unavailable, ...Array.from({ length: 100 }, timeout)] });
    const out = await h.run();
    expect(out).toMatchObject({ state: "failed", errorCode: "DEADLINE_EXCEEDED", knotStatus: 503 });
    expect(out!.errorMessage).toContain("KNOT_TIMEOUT");
    expect(h.knotCalls.post).toBeGreaterThan(2);
  });

  it("records no Knot status when Knot never answered", async () => {
    const h = harness({ posts: Array.from({ length: 100 }, timeout) });
    const out = await h.run();
    expect(out).toMatchObject({ state: "failed", errorCode: "DEADLINE_EXCEEDED" });
    expect(out).not.toHaveProperty("knotStatus");
  });

  it("honours Knot's Retry-After on 429 when it fits in the window", async () => {
    const h = harness({ posts: [{ status: 429, retryAfterMs: 3_000 }, { status: 200 }] });
    expect(await h.run()).toMatchObject({ state: "sent" });
    expect(h.sleeps).toEqual([3_000]);
  });

  it("a Retry-After beyond the window ends the job at once instead of sending late", async () => {
    const h = harness({ posts: [{ status: 429, retryAfterMs: 60_000 }] });
    expect(await h.run()).toMatchObject({ state: "failed", errorCode: "DEADLINE_EXCEEDED", knotStatus: 429 });
    expect(h.sleeps).toEqual([]);
    expect(h.knotCalls.post).toBe(1);
  });

  it("429 without Retry-After backs off like a 5xx", async () => {
    const h = harness({ posts: [{ status: 429 }, { status: 200 }] });
    expect(await h.run()).toMatchObject({ state: "sent" });
    expect(h.sleeps).toEqual([50]);
  });

  it("other 4xx stop at once, recorded with Knot's status and code", async () => {
    const h = harness({ posts: [{ status: 400, errorCode: "INVALID_FIELD" }] });
    expect(await h.run()).toMatchObject({
      state: "failed",
      errorCode: "KNOT_REJECTED",
      knotStatus: 400,
      errorMessage: "POST /card answered 400 INVALID_FIELD",
    });
    expect(h.knotCalls.post).toBe(1);
    expect(h.sleeps).toEqual([]);
  });

  it("a redirect Knot's client refused is final and keeps its message (the Location)", async () => {
    const refused = new SendCardError(
      "KNOT_REDIRECT_NOT_FOLLOWED",
      "POST /card: answered 302 to Location https://elsewhere.example/card; ...",
      false,
      302,
    );
    const h = harness({ posts: [refused] });
    expect(await h.run()).toMatchObject({
      state: "failed",
      errorCode: "KNOT_REDIRECT_NOT_FOLLOWED",
      knotStatus: 302,
      errorMessage: expect.stringContaining("https://elsewhere.example/card"),
    });
    expect(h.knotCalls.post).toBe(1);
  });
});

describe("Knot key rotation", () => {
  it("INVALID_JWE: the key is fetched again once and the card re-encrypted and sent", async () => {
    const h = harness({
      posts: [{ status: 400, errorCode: "INVALID_JWE" }, { status: 200 }],
      keys: ["old-key", "new-key-longer"],
    });
    expect(await h.run()).toMatchObject({ state: "sent" });
    expect(h.knotCalls.invalidated).toBe(1);
    expect(h.posted).toEqual(["25605:jwe-for-7", "25605:jwe-for-14"]);
    expect(h.sleeps).toEqual([]);
  });

  it("INVALID_JWE again after the refresh is final", async () => {
    const h = harness({
      posts: [
        { status: 400, errorCode: "INVALID_JWE" },
        { status: 400, errorCode: "INVALID_JWE" },
      ],
    });
    expect(await h.run()).toMatchObject({ state: "failed", errorCode: "KNOT_REJECTED", knotStatus: 400 });
    expect(h.knotCalls.invalidated).toBe(1);
  });

  it("custody refusing the cached key refreshes it before the TTL, then sends", async () => {
    const h = harness({ custody: ["RECIPIENT_NOT_ALLOWED"], keys: ["stale", "current"] });
    expect(await h.run()).toMatchObject({ state: "sent" });
    expect(h.knotCalls.invalidated).toBe(1);
    expect(h.knotCalls.post).toBe(1);
  });

  it("custody refusing the fresh key too: KNOT_KEY_NOT_PINNED, alert metric, thumbprint logged, key not", async () => {
    const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const jwk = await exportJWK(publicKey);
    const text = JSON.stringify({ ...jwk, alg: "RSA-OAEP-256", use: "enc" });
    const thumbprint = await calculateJwkThumbprint(jwk, "sha256");
    const h = harness({ custody: ["RECIPIENT_NOT_ALLOWED", "RECIPIENT_NOT_ALLOWED"], keys: ["stale", text] });
    const out = await h.run();
    expect(out).toMatchObject({ state: "failed", errorCode: "KNOT_KEY_NOT_PINNED" });
    expect(out!.errorMessage).toContain(thumbprint);
    expect(h.knotCalls.post).toBe(0);
    const metric = await h.metrics.registry.getSingleMetricAsString("gateway_knot_key_not_pinned_total");
    expect(metric).toMatch(/gateway_knot_key_not_pinned_total 1$/m);
    const line = h.logs.find((l) => l.includes("not pinned"));
    expect(line).toContain(`"knotKeyThumbprint":"${thumbprint}"`);
    expect(h.logs.join("")).not.toContain(String(jwk.n).slice(0, 40));
  });

  it("custody refusing the card's secrets marks the card unusable so a redelivery may replace them", async () => {
    const h = harness({ custody: ["JWE_DECRYPT_FAILED"] });
    expect(await h.run()).toMatchObject({ state: "failed", errorCode: "CUSTODY_JWE_DECRYPT_FAILED" });
    expect(h.unusable).toEqual(["u-1:JWE_DECRYPT_FAILED"]);
    expect(h.knotCalls.post).toBe(0);
  });
});

describe("which card a task may send (issue 13: replayed signature, card lookup, retention)", () => {
  const refusedCount = async (h: ReturnType<typeof harness>, code: string) =>
    (await h.metrics.registry.getSingleMetricAsString("gateway_send_card_refused_total"))
      .split("\n")
      .find((l) => l.includes(`code="${code}"`));

  it("a card not bound to the task's external_user_id is refused before custody, alerted, never sent", async () => {
    const h = harness({ lookup: { kind: "not_bound" } });
    expect(await h.run()).toMatchObject({ state: "failed", errorCode: "CARD_NOT_OWNED" });
    expect(h.custodyCalls).toEqual([]);
    expect(h.knotCalls.post).toBe(0);
    expect(await refusedCount(h, "CARD_NOT_OWNED")).toMatch(/ 1$/);
    expect(h.logs.find((l) => l.includes("send-card refused"))).toContain('"code":"CARD_NOT_OWNED"');
  });

  it("two deliveries for the bound (workspace_id, card_id) are refused rather than one picked", async () => {
    const h = harness({ lookup: { kind: "ambiguous", workspaceId: "12", count: 2 } });
    expect(await h.run()).toMatchObject({ state: "failed", errorCode: "CARD_AMBIGUOUS" });
    expect(h.custodyCalls).toEqual([]);
    expect(await refusedCount(h, "CARD_AMBIGUOUS")).toMatch(/ 1$/);
  });

  it("a bound card Dotva never delivered is CARD_NOT_FOUND", async () => {
    const h = harness({ lookup: { kind: "not_found", workspaceId: "12" } });
    expect(await h.run()).toMatchObject({ state: "failed", errorCode: "CARD_NOT_FOUND" });
  });

  it("custody's last four digits differ from the stored card's: refused, nothing posted to Knot", async () => {
    const h = harness({ decryptedLast4: "1881" });
    expect(await h.run()).toMatchObject({ state: "failed", errorCode: "CARD_MISMATCH" });
    expect(h.custodyCalls).toHaveLength(1);
    expect(h.knotCalls.post).toBe(0);
    expect(await refusedCount(h, "CARD_MISMATCH")).toMatch(/ 1$/);
    expect(h.logs.join("")).not.toContain("1881");
  });

  it("custody's BIN differs from the stored card's, the last four digits alike: refused, nothing posted", async () => {
    const h = harness({ decryptedBin: "411111" });
    expect(await h.run()).toMatchObject({ state: "failed", errorCode: "CARD_MISMATCH" });
    expect(h.knotCalls.post).toBe(0);
    expect(await refusedCount(h, "CARD_MISMATCH")).toMatch(/ 1$/);
  });

  it("a card past GATEWAY_SECRETS_TTL_SECONDS is not sent even before the sweep purged it", async () => {
    const h = harness({ start: RETENTION.ttlMs });
    expect(await h.run()).toMatchObject({ state: "failed", errorCode: "CARD_SECRETS_PURGED" });
    expect(h.custodyCalls).toEqual([]);
    const fresh = harness({ start: RETENTION.ttlMs - 1 });
    expect(await fresh.run()).toMatchObject({ state: "sent" });
  });

  it("a card first sent longer ago than the post-send grace period is not sent again", async () => {
    const sentAt = 1_000;
    const late = harness({
      start: sentAt + RETENTION.keepAfterSendMs,
      lookup: { kind: "card", card: { ...STORED, firstSentAt: sentAt } },
    });
    expect(await late.run()).toMatchObject({ state: "failed", errorCode: "CARD_SECRETS_PURGED" });
    const inGrace = harness({
      start: sentAt + RETENTION.keepAfterSendMs - 1,
      lookup: { kind: "card", card: { ...STORED, firstSentAt: sentAt } },
    });
    expect(await inGrace.run()).toMatchObject({ state: "sent" });
    const purged = harness({
      lookup: { kind: "card", card: { ...STORED, secretsJwe: "", secretsPurgedAt: 5 } },
    });
    expect(await purged.run()).toMatchObject({ state: "failed", errorCode: "CARD_SECRETS_PURGED" });
    expect(purged.custodyCalls).toEqual([]);
  });
});

describe("a POST /card whose answer was never recorded (issue 17, the crash window)", () => {
  const received: KnotCardWord = { kind: "received", event: "CARD_UPDATING" };
  const uncertain = async (m: GatewayMetrics, resolution: string) =>
    (await m.registry.getSingleMetric("gateway_send_card_uncertain_posts_total")!.get()).values.find(
      (v) => v.labels.resolution === resolution,
    )?.value ?? 0;

  it("records the POST durably before it leaves, on every attempt", async () => {
    const h = harness({ posts: [unavailable, { status: 200 }] });
    expect(await h.run()).toMatchObject({ state: "sent" });
    expect(h.order).toEqual(["beginPost", "post", "beginPost", "post"]);
  });

  it("does not post when the lease was lost before the POST", async () => {
    const h = harness({ ownsLease: false });
    await expect(h.run()).rejects.toSatisfy(isLeaseLost);
    expect(h.knotCalls.post).toBe(0);
  });

  it("holds its lease through the wait for Knot's word; a lost lease stops it before any POST", async () => {
    const h = harness({ postStartedAt: 0, grace: 2_000, ownsLease: false });
    await expect(h.run()).rejects.toSatisfy(isLeaseLost);
    expect(h.knotCalls.post).toBe(0);
  });

  it("a job resumed after a crash whose card Knot confirmed (CARD_UPDATING) ends sent without a second POST", async () => {
    const h = harness({ postStartedAt: 0, word: () => received, grace: 2_000 });
    const out = await h.run();
    expect(out).toMatchObject({ state: "sent", sentCardUuid: "u-1" });
    expect(out!.knotStatus).toBeUndefined();
    expect(h.knotCalls.post).toBe(0);
    expect(h.custodyCalls).toHaveLength(0);
    expect(await uncertain(h.metrics, "confirmed_by_knot")).toBe(1);
  });

  it("waits for Knot's word (polling) and stops as soon as it arrives", async () => {
    const h = harness({
      postStartedAt: 0,
      word: (t) => (t >= 300 ? received : { kind: "silent" }),
      grace: 2_000,
    });
    expect(await h.run()).toMatchObject({ state: "sent" });
    expect(h.sleeps).toEqual([100, 100, 100]);
    expect(h.knotCalls.post).toBe(0);
  });

  it("posts again, once, after the grace when Knot stays silent", async () => {
    const h = harness({ postStartedAt: 0, grace: 2_000 });
    expect(await h.run()).toMatchObject({ state: "sent", knotStatus: 200 });
    expect(h.sleeps.reduce((a, b) => a + b, 0)).toBe(2_000);
    expect(h.knotCalls.post).toBe(1);
    expect(await uncertain(h.metrics, "resent")).toBe(1);
  });

  it("never waits past the last moment a full attempt fits before the deadline", async () => {
    // Resumed 10 s into the 15 s window: with 4 s per attempt, at most 1 s is left to wait.
    const h = harness({ postStartedAt: 0, grace: 5_000, elapsed: 10_000 });
    expect(await h.run()).toMatchObject({ state: "sent", knotStatus: 200 });
    expect(h.sleeps.reduce((a, b) => a + b, 0)).toBe(1_000);
    expect(h.knotCalls.post).toBe(1);
  });

  it("CARD_FAILED from Knot ends the job without posting again", async () => {
    const h = harness({
      postStartedAt: 0,
      word: () => ({ kind: "failed", reason: "card expired" }),
      grace: 2_000,
    });
    expect(await h.run()).toMatchObject({
      state: "failed",
      errorCode: "KNOT_TASK_FAILED",
      errorMessage: expect.stringContaining("card expired"),
    });
    expect(h.knotCalls.post).toBe(0);
  });

  it("a POST that timed out is not repeated when Knot's CARD_UPDATING arrives meanwhile", async () => {
    const h = harness({
      posts: [timeout(), { status: 200 }],
      word: (t) => (t >= 200 ? received : { kind: "silent" }),
      grace: 2_000,
    });
    expect(await h.run()).toMatchObject({ state: "sent" });
    expect(h.knotCalls.post).toBe(1);
  });

  it("a Knot answer (503) is no uncertainty: the retry posts without waiting for Knot's word", async () => {
    const h = harness({ posts: [unavailable, { status: 200 }], grace: 2_000 });
    expect(await h.run()).toMatchObject({ state: "sent" });
    expect(h.sleeps).toEqual([50]);
  });
});
