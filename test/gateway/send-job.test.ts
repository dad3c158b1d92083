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
import type { CustodyCaller } from "../../src/gateway/custody-client.js";
import { SendCardError } from "../../src/gateway/errors.js";
import type { KnotResponse } from "../../src/gateway/knot/client.js";
import { GatewayMetrics } from "../../src/gateway/metrics.js";
import { type KnotApi, runSendJob } from "../../src/gateway/sendcard/send-job.js";
import type { GatewayRepository, SendCardJob } from "../../src/gateway/storage/repository.js";

const DEADLINE = 15_000;
type Step = KnotResponse | SendCardError;

function harness(o: { posts?: Step[]; custody?: (string | undefined)[]; keys?: string[] } = {}) {
  let t = 0;
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
      const reason = custodyFaults.shift();
      if (reason) throw new SendCardError(`CUSTODY_${reason}`, `custody refused: ${reason}`, false);
      return {
        jwe: `jwe-for-${(req.knot_jwk ?? "").length}`,
        key_fingerprint: "",
        recipient_thumbprint: "",
        card_last4: "4242",
      };
    },
    healthy: async () => true,
    close: () => {},
  };
  const repo = {
    findCardForKnot: async () => ({
      cardUuid: "u-1",
      secretsJwe: "a.b.c.d.e",
      keyFingerprint: "fp",
      workspaceId: "12",
    }),
    getCardholder: async () => ({ name: "profile" }),
    renewLease: async () => true,
    markCardUnusable: async (uuid: string, reason: string) => {
      unusable.push(`${uuid}:${reason}`);
    },
  } as unknown as GatewayRepository;
  const metrics = new GatewayMetrics(false);
  const logs: string[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => logs.push(line) });
  const job: SendCardJob = {
    taskId: "25605",
    knotCardId: "123456789",
    externalUserId: "user",
    receivedAt: 0,
    deadlineAt: DEADLINE,
    state: "running",
    attempts: 1,
  };
  const run = () =>
    runSendJob(job, {
      repo,
      knot,
      custody,
      metrics,
      owner: "me",
      attemptTimeoutMs: 4_000,
      leaseMs: 6_000,
      backoff: { baseMs: 100, capMs: 2_000 },
      log,
      now: () => t,
      sleep: async (ms) => {
        sleeps.push(ms);
        t += ms;
      },
      random: () => 0.5,
    });
  return { run, sleeps, knotCalls, posted, unusable, metrics, logs, clock: () => t };
}

const unavailable = { status: 503 };
const timeout = () => new SendCardError("KNOT_TIMEOUT", "POST /card: no answer in time", true);

describe("send-card job retries", () => {
  it("backs off exponentially with jitter on 5xx and timeouts, then sends", async () => {
    const h = harness({ posts: [unavailable, timeout(), unavailable, { status: 200 }] });
    expect(await h.run()).toMatchObject({ state: "sent", knotStatus: 200 });
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
