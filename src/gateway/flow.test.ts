/**
 * The gateway in process against the simulators and a fake custody gRPC server: Dotva intake, Knot
 * webhooks (including the replayed-signature attack of issue 13), send-card jobs with their retry
 * rules, the internal API, and what reaches the logs.
 */
import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { authenticatedEvent, type KnotSimulator } from "../tools/simulators/knot-simulator.js";
import { KNOT_ENCRYPTION_TYPE, knotWebhookSignature } from "../tools/simulators/knot-webhooks.js";
import { partnerJson } from "../tools/simulators/partner-json.js";
import { expiryFromNow } from "../tools/testing/expiry.js";
import { type FakeCustody, startFakeCustody } from "../tools/testing/fake-custody.js";
import {
  DOTVA_HMAC,
  DOTVA_SHARED,
  dotvaDelivery,
  dotvaHeaders,
  gatewayConfig,
  injectDotva,
  injectInternal,
  KNOT_SECRET,
  PROFILE,
  readyCard as readyCardIn,
  startTestKnot,
  TEST_INTERNAL_TOKEN,
  waitFor,
} from "../tools/testing/gateway-env.js";
import { type RunningGateway, startGateway } from "./app.js";
import { loggerOptions } from "./logger.js";

const TEST_PAN = "4242424242424242";
const EXPIRY = expiryFromNow(14);
const CARD = {
  pan: TEST_PAN,
  cvv: "123",
  expiry_month: String(EXPIRY.month),
  expiry_year: String(EXPIRY.year),
};
const logLines: string[] = [];
let knot: KnotSimulator;
let custody: FakeCustody;
let gw: RunningGateway;
let taskSeq = 1000;

beforeAll(async () => {
  knot = await startTestKnot();
  custody = await startFakeCustody();
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logLines.push(String(chunk));
      cb();
    },
  });
  gw = await startGateway(
    gatewayConfig({
      knotUrl: knot.url,
      custodyAddress: custody.address,
      extra: {
        SEND_CARD_DEADLINE_MS: "3000",
        SEND_CARD_BACKOFF_BASE_MS: "40",
        SEND_CARD_BACKOFF_CAP_MS: "300",
      },
    }),
    { logger: pino(loggerOptions("debug"), sink) },
  );
}, 30_000);

afterAll(async () => {
  await gw?.close();
  await knot?.close();
  await custody?.close();
});

// The gateway's own routes are driven with inject(); the Knot simulator, a separate party, posts its
// webhooks over HTTP to the listening gateway as Knot would.
const postDotva = (body: unknown, headers?: Record<string, string>) =>
  injectDotva(gw, typeof body === "string" ? body : JSON.stringify(body), headers);
const api = (method: "GET" | "PUT", url: string, payload?: unknown) =>
  injectInternal(gw, method, url, payload);
const internalGet = (path: string) => api("GET", path);
const putProfile = (user: string, profile: unknown = PROFILE) =>
  api("PUT", `/v1/cardholders/${encodeURIComponent(user)}`, profile);
const bindCard = (user: string, cardId: string) =>
  api("PUT", `/v1/cardholders/${encodeURIComponent(user)}/cards/${cardId}`, { workspace_id: "12" });

async function metric(name: string): Promise<string[]> {
  const text = (await gw.app.inject({ method: "GET", url: "/metrics" })).body;
  return text.split("\n").filter((l) => l.startsWith(name));
}

/** Stores a fresh card, a profile and the card's binding to it; returns the ids the Knot webhook needs. */
async function readyCard() {
  return { ...(await readyCardIn(gw, custody.publicKeyPem, CARD)), taskId: ++taskSeq };
}

async function jobOf(taskId: number, final = true) {
  return waitFor(async () => {
    const t = await internalGet(`/v1/tasks/${taskId}`);
    const job = t.body.job as { state: string; errorCode?: string; attempts: number } | undefined;
    return job && (!final || job.state === "sent" || job.state === "failed") ? t.body : undefined;
  });
}

describe("Dotva intake", () => {
  it("stores a card.issued.secrets delivery; a duplicate changes nothing; a differing one keeps the first", async () => {
    const d = await dotvaDelivery(custody.publicKeyPem, CARD);
    expect(await postDotva(d.text)).toMatchObject({ status: 200, body: { outcome: "created" } });
    expect(await postDotva(d.text)).toMatchObject({ status: 200, body: { outcome: "duplicate" } });
    // Dotva may re-encrypt on retry: same card_uuid, new secrets_jwe. Acknowledged, first kept.
    const again = await dotvaDelivery(custody.publicKeyPem, CARD, {
      cardUuid: d.cardUuid,
      cardId: BigInt(d.cardId),
    });
    expect(await postDotva(again.text)).toMatchObject({ status: 200, body: { outcome: "conflict" } });
    const card = await internalGet(`/v1/cards/${d.cardUuid}`);
    expect(card.body).toMatchObject({ cardLast4: "4242", cardId: d.cardId, workspaceId: "12", conflicts: 1 });
    expect(JSON.stringify(card.body)).not.toContain("secrets");
    expect((await metric("gateway_dotva_conflicts_total")).join()).toMatch(/outcome="conflict"} [1-9]/);
    const warn = logLines.find((l) => l.includes("different content") && l.includes(d.cardUuid));
    expect(warn).toContain('"differing":["secrets_jwe"]');
    expect(warn).not.toContain(again.text.slice(0, 60));
  });

  it("acknowledges and records unknown events", async () => {
    const before = await gw.repo.countUnknownEvents("dotva");
    expect(await postDotva({ event: "card.frozen", data: { card_uuid: randomUUID() } })).toMatchObject({
      status: 200,
      body: { outcome: "recorded_unknown_event" },
    });
    expect(await gw.repo.countUnknownEvents("dotva")).toBe(before + 1);
  });

  it("acknowledges and quarantines a delivery that can never become valid, naming the field, without echoing values", async () => {
    const d = await dotvaDelivery(custody.publicKeyPem, CARD);
    const bad = { ...d.event, data: { ...(d.event.data as object), secrets_jwe: "not-a-jwe-SECRETVALUE" } };
    const res = await postDotva(JSON.stringify(bad, (_k, v) => (typeof v === "bigint" ? Number(v) : v)));
    expect(res).toMatchObject({ status: 200, body: { outcome: "quarantined" } });
    expect((res.body as { reason: string }).reason).toMatch(/^data\.secrets_jwe /);
    expect(JSON.stringify(res.body)).not.toContain("SECRETVALUE");
    expect(await postDotva("{not json")).toMatchObject({ status: 200, body: { outcome: "quarantined" } });
    const q = await internalGet("/v1/dotva/quarantine");
    const listed = q.body.deliveries as { reason: string; cardUuid?: string }[];
    expect(listed).toContainEqual(expect.objectContaining({ cardUuid: d.cardUuid }));
    expect(listed.map((x) => x.reason)).toContain("body is not a JSON object");
    expect(JSON.stringify(q.body)).not.toContain("SECRETVALUE");
    expect((await metric("gateway_dotva_quarantined_total")).join()).toMatch(/kind="invalid_card"} [1-9]/);
    expect(await gw.repo.getCard(d.cardUuid)).toBeUndefined();
  });

  it("verifies the shared secret and the HMAC of the raw body, each on its own", async () => {
    const d = await dotvaDelivery(custody.publicKeyPem, CARD, { workspaceId: 12 });
    const text = d.text;
    const good = dotvaHeaders(text);
    const wrongSecret = { ...good, [DOTVA_SHARED.header]: "x".repeat(29) };
    expect((await postDotva(text, wrongSecret)).body.error?.code).toBe("SENDER_UNAUTHENTICATED");
    const { [DOTVA_SHARED.header]: _, ...noSecret } = good;
    expect((await postDotva(text, noSecret)).status).toBe(401);
    // Same headers, one byte of body changed: the HMAC no longer matches.
    expect((await postDotva(text.replace('"workspace_id":12', '"workspace_id":13'), good)).status).toBe(401);
    const base64Mac = {
      ...good,
      [DOTVA_HMAC.header]: `sha256=${Buffer.from(good[DOTVA_HMAC.header]!, "hex").toString("base64")}`,
    };
    expect((await postDotva(text, base64Mac)).status).toBe(200);
  });

  it("answers 415 for a non-JSON content type and 404 with a code for unknown routes", async () => {
    const res = await gw.app.inject({
      method: "POST",
      url: "/webhooks/dotva",
      headers: { "content-type": "text/plain" },
      payload: "x",
    });
    expect(res.statusCode).toBe(415);
    expect(res.json()).toMatchObject({ error: { code: "UNSUPPORTED_MEDIA_TYPE" } });
    const nf = await gw.app.inject({ method: "GET", url: "/nope" });
    expect(nf.statusCode).toBe(404);
    expect(nf.json()).toMatchObject({ error: { code: "ROUTE_NOT_FOUND" } });
  });
});

describe("Knot webhooks", () => {
  it("refuses missing or wrong signatures with 401 and counts them", async () => {
    const body = authenticatedEvent({ taskId: ++taskSeq, cardId: "c", externalUserId: "u" });
    expect((await knot.sendWebhook(gw.url, body, { secret: "wrong-secret" })).status).toBe(401);
    expect((await knot.sendWebhook(gw.url, body, { signature: "" })).status).toBe(401);
    const res = await gw.app.inject({
      method: "POST",
      url: "/webhooks/knot",
      headers: { "content-type": "application/json" },
      payload: JSON.stringify(body),
    });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ error: { code: "KNOT_SIGNATURE_INVALID" } });
    const line = (await metric("gateway_webhooks_total")).find((l) => l.includes('outcome="bad_signature"'));
    expect(line).toMatch(/ 3$/);
    expect((await internalGet(`/v1/tasks/${taskSeq}`)).status).toBe(404);
  });

  it("records MERCHANT_STATUS_UPDATE (signed without session_id) as merchant availability", async () => {
    const body = {
      event: "MERCHANT_STATUS_UPDATE",
      merchant: { id: 77, name: "Hulu" },
      data: { type: "card_switcher", status: "DOWN", platform: "web", sdk: null },
      timestamp: Date.now(),
    };
    expect((await knot.sendWebhook(gw.url, body)).status).toBe(200);
    const m = await internalGet("/v1/merchants");
    expect(m.body.merchants).toContainEqual(
      expect.objectContaining({ merchantId: "77", type: "card_switcher", platform: "web", status: "DOWN" }),
    );
  });

  it("deduplicates Knot's retries and keeps task status with the CARD_FAILED reason", async () => {
    const taskId = ++taskSeq;
    const t0 = Date.now();
    const base = {
      session_id: `s-${randomUUID()}`,
      task_id: taskId,
      external_user_id: "u-x",
      merchant: { id: 3, name: "Netflix" },
    };
    const failed = {
      ...base,
      event: "CARD_FAILED",
      data: { card_id: "c-x", reason: "card expired" },
      timestamp: t0 + 2,
    };
    expect((await knot.sendWebhook(gw.url, failed)).body).toMatchObject({ outcome: "recorded" });
    expect((await knot.sendWebhook(gw.url, failed)).body).toMatchObject({ outcome: "duplicate" });
    await knot.sendWebhook(gw.url, {
      ...base,
      event: "CARD_UPDATING",
      data: { card_id: "c-x" },
      timestamp: t0 + 1,
    });
    const t = await internalGet(`/v1/tasks/${taskId}`);
    expect(t.body).toMatchObject({
      state: "CARD_FAILED",
      failureReason: "card expired",
      merchantName: "Netflix",
      sessionId: base.session_id,
    });
    for (const event of [
      "OTP_REQUIRED",
      "LOGIN_APPROVAL",
      "ACCOUNTS_RETRIEVED",
      "NEW_TRANSACTIONS_AVAILABLE",
    ]) {
      expect((await knot.sendWebhook(gw.url, { ...base, event, timestamp: t0 + 3 })).status).toBe(200);
    }
  });
});

describe("replayed Knot signatures (issue 13 item 2)", () => {
  /** The Knot-Signature Knot computed for `text`: what an attacker who saw the request holds. */
  const signatureOf = (text: string, event: string, sessionId: string) =>
    knotWebhookSignature(KNOT_SECRET, {
      contentLength: Buffer.byteLength(text),
      contentType: "application/json",
      encryptionType: KNOT_ENCRYPTION_TYPE,
      event,
      sessionId,
    });

  /** Posts `text` padded with JSON whitespace to `length` bytes, under a signature it did not earn. */
  async function replay(text: string, length: number, signature: string) {
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(length);
    const res = await gw.app.inject({
      method: "POST",
      url: "/webhooks/knot",
      headers: {
        "content-type": "application/json",
        "encryption-type": KNOT_ENCRYPTION_TYPE,
        "knot-signature": signature,
      },
      payload: text.padEnd(length, " "),
    });
    return { status: res.statusCode, body: res.json() as { outcome?: string; error?: { code: string } } };
  }

  async function refusedMetric(reason: string): Promise<number> {
    const line = (await metric("gateway_knot_webhooks_refused_total")).find((l) => l.includes(`"${reason}"`));
    return line ? Number(line.split(" ").pop()) : 0;
  }

  it("the review's probe: the victim's AUTHENTICATED signature on an edited body of the same length is refused", async () => {
    const victim = await readyCard();
    const attacker = await readyCard();
    const sessionId = randomUUID();
    const legit = authenticatedEvent({
      taskId: victim.taskId,
      cardId: victim.cardId,
      externalUserId: victim.user,
      sessionId,
    });
    const legitText = partnerJson(legit);
    const signature = signatureOf(legitText, "AUTHENTICATED", sessionId);
    expect((await knot.sendWebhook(gw.url, legit, { signature })).body).toMatchObject({
      outcome: "recorded_with_job",
    });
    expect((await jobOf(victim.taskId)).job).toMatchObject({ state: "sent" });

    const attackTask = attacker.taskId;
    const edited = (timestamp: number, externalUserId: string) =>
      partnerJson(
        authenticatedEvent({
          taskId: attackTask,
          cardId: victim.cardId,
          externalUserId,
          sessionId,
          timestamp,
        }),
      );
    const staleBefore = await refusedMetric("stale_timestamp");
    // Exactly the probe: other task_id, the victim's card_id, timestamp 1.
    expect(await replay(edited(1, attacker.user), legitText.length, signature)).toMatchObject({
      status: 401,
      body: { error: { code: "KNOT_TIMESTAMP_OUT_OF_WINDOW" } },
    });
    expect(await refusedMetric("stale_timestamp")).toBe(staleBefore + 1);
    // With a fresh timestamp (it is not signed either), and even naming the victim as the user.
    const conflictsBefore = await refusedMetric("session_conflict");
    for (const user of [attacker.user, victim.user]) {
      expect(await replay(edited(Date.now(), user), legitText.length, signature)).toMatchObject({
        status: 409,
        body: { error: { code: "KNOT_WEBHOOK_REPLAYED" } },
      });
    }
    expect(await refusedMetric("session_conflict")).toBe(conflictsBefore + 2);
    expect(
      logLines.some((l) => l.includes("another body was already accepted") && l.includes(sessionId)),
    ).toBe(true);
    expect((await internalGet(`/v1/tasks/${attackTask}`)).status).toBe(404);
    expect(knot.received.filter((r) => r.taskId === String(attackTask))).toEqual([]);
    // Knot's own retry of the legitimate body is still the idempotent duplicate it always was.
    expect((await knot.sendWebhook(gw.url, legit, { signature })).body).toMatchObject({
      outcome: "duplicate",
    });
  });

  it("a replay that arrives before Knot's own body still cannot send the victim's card to another user's task", async () => {
    const victim = await readyCard();
    const attacker = await readyCard();
    const sessionId = randomUUID();
    const legit = authenticatedEvent({
      taskId: victim.taskId,
      cardId: victim.cardId,
      externalUserId: victim.user,
      sessionId,
    });
    const legitText = partnerJson(legit);
    const signature = signatureOf(legitText, "AUTHENTICATED", sessionId);
    const attackTask = attacker.taskId;
    const forged = partnerJson(
      authenticatedEvent({
        taskId: attackTask,
        cardId: victim.cardId,
        externalUserId: attacker.user,
        sessionId,
      }),
    );
    expect(await replay(forged, legitText.length, signature)).toMatchObject({
      status: 200,
      body: { outcome: "recorded_with_job" },
    });
    // The card is bound to the victim, not to the task's user: final, recorded, never sent.
    expect((await jobOf(attackTask)).job).toMatchObject({ state: "failed", errorCode: "CARD_NOT_OWNED" });
    expect(knot.received.filter((r) => r.taskId === String(attackTask))).toEqual([]);
    expect((await metric("gateway_send_card_refused_total")).join()).toMatch(/code="CARD_NOT_OWNED"} [1-9]/);
    // Knot's genuine body now conflicts with the accepted forgery: refused and alerted, not silently lost.
    expect((await knot.sendWebhook(gw.url, legit, { signature })).status).toBe(409);
  });

  it("the timestamp window admits Knot's retries minutes apart and refuses what is older or from the future", async () => {
    const minutes = (n: number) => Date.now() - n * 60_000;
    const event = (timestamp: number) =>
      authenticatedEvent({ taskId: ++taskSeq, cardId: "c", externalUserId: "u", sendCard: false, timestamp });
    expect((await knot.sendWebhook(gw.url, event(minutes(10)))).status).toBe(200);
    expect((await knot.sendWebhook(gw.url, event(minutes(-10)))).status).toBe(200);
    expect((await knot.sendWebhook(gw.url, event(minutes(16)))).body).toMatchObject({
      error: { code: "KNOT_TIMESTAMP_OUT_OF_WINDOW" },
    });
    expect((await knot.sendWebhook(gw.url, event(minutes(-16)))).status).toBe(401);
    const { timestamp: _, ...noTimestamp } = event(Date.now());
    expect((await knot.sendWebhook(gw.url, noTimestamp)).status).toBe(401);
  });
});

describe("send-card jobs", () => {
  it("sends the card: AUTHENTICATED → custody → POST /card, decryptable and exact", async () => {
    const c = await readyCard();
    const t0 = Date.now();
    const res = await knot.sendWebhook(
      gw.url,
      authenticatedEvent({ taskId: c.taskId, cardId: c.cardId, externalUserId: c.user }),
    );
    expect(res.status).toBe(200);
    const task = await jobOf(c.taskId);
    expect(task.job).toMatchObject({ state: "sent", knotStatus: 200 });
    const got = knot.received.find((r) => r.taskId === String(c.taskId));
    expect(got?.payload).toEqual({
      user: PROFILE,
      card: { number: CARD.pan, expiration: EXPIRY.mmYyyy, cvv: CARD.cvv },
    });
    // Well inside Knot's 15 s even on a loaded shared machine (typically tens of ms).
    expect(got!.receivedAt - t0).toBeLessThan(5_000);
  });

  it("a task naming a card by its card_uuid finds nothing: cards are looked up by (workspace_id, card_id)", async () => {
    const c = await readyCard();
    await knot.sendWebhook(
      gw.url,
      authenticatedEvent({ taskId: c.taskId, cardId: c.cardUuid, externalUserId: c.user }),
    );
    expect((await jobOf(c.taskId)).job).toMatchObject({ state: "failed", errorCode: "CARD_NOT_OWNED" });
  });

  it("retries Knot 5xx with backoff and then succeeds", async () => {
    const c = await readyCard();
    const before = knot.cardRequests;
    knot.faults.failNext = 2;
    await knot.sendWebhook(
      gw.url,
      authenticatedEvent({ taskId: c.taskId, cardId: c.cardId, externalUserId: c.user }),
    );
    expect((await jobOf(c.taskId)).job).toMatchObject({ state: "sent" });
    expect(knot.cardRequests - before).toBe(3);
    expect((await metric("gateway_send_card_retries_total")).join()).toContain('reason="knot_unavailable"');
  });

  it("follows a same-origin redirect and retries custody UNAVAILABLE", async () => {
    const c = await readyCard();
    knot.faults.redirectOnce = true;
    custody.faults.unavailableNext = 1;
    await knot.sendWebhook(
      gw.url,
      authenticatedEvent({ taskId: c.taskId, cardId: c.cardId, externalUserId: c.user }),
    );
    expect((await jobOf(c.taskId)).job).toMatchObject({ state: "sent" });
  });

  it("INVALID_JWE after Knot rotates its key: refreshes the key once and succeeds", async () => {
    const warm = await readyCard();
    await knot.sendWebhook(
      gw.url,
      authenticatedEvent({ taskId: warm.taskId, cardId: warm.cardId, externalUserId: warm.user }),
    );
    await jobOf(warm.taskId);
    const keyFetches = knot.jwkRequests;
    knot.rotateKey();
    const c = await readyCard();
    await knot.sendWebhook(
      gw.url,
      authenticatedEvent({ taskId: c.taskId, cardId: c.cardId, externalUserId: c.user }),
    );
    expect((await jobOf(c.taskId)).job).toMatchObject({ state: "sent" });
    expect(knot.jwkRequests - keyFetches).toBe(1);
    expect(knot.rejected).toContainEqual({ taskId: String(c.taskId), code: "INVALID_JWE" });
    expect(knot.received.find((r) => r.taskId === String(c.taskId))?.kid).toBe(knot.publicJwk.kid);
  });

  it("other 4xx stop at once and are recorded", async () => {
    const c = await readyCard();
    const before = knot.cardRequests;
    knot.faults.failNext = 1;
    knot.faults.failStatus = 403;
    try {
      await knot.sendWebhook(
        gw.url,
        authenticatedEvent({ taskId: c.taskId, cardId: c.cardId, externalUserId: c.user }),
      );
      const job = (await jobOf(c.taskId)).job as Record<string, unknown>;
      expect(job).toMatchObject({ state: "failed", errorCode: "KNOT_REJECTED", knotStatus: 403 });
      expect(knot.cardRequests - before).toBe(1);
    } finally {
      knot.faults.failStatus = 503;
    }
  });

  it("deadline exhaustion is recorded as failed and counted", async () => {
    const c = await readyCard();
    knot.faults.failNext = 10_000;
    try {
      await knot.sendWebhook(
        gw.url,
        authenticatedEvent({ taskId: c.taskId, cardId: c.cardId, externalUserId: c.user }),
      );
      const task = await jobOf(c.taskId);
      const job = task.job as { completedAt: number; receivedAt: number; deadlineAt: number };
      expect(task.job).toMatchObject({ state: "failed", errorCode: "DEADLINE_EXCEEDED", knotStatus: 503 });
      expect(job.completedAt).toBeLessThanOrEqual(job.deadlineAt + 100);
      expect((await metric("gateway_send_card_deadline_misses_total"))[0]).toMatch(/ [1-9]\d*$/);
    } finally {
      knot.faults.failNext = 0;
    }
  });

  it("send_card false sends nothing and records why", async () => {
    const c = await readyCard();
    const before = knot.cardRequests;
    await knot.sendWebhook(
      gw.url,
      authenticatedEvent({ taskId: c.taskId, cardId: c.cardId, externalUserId: c.user, sendCard: false }),
    );
    const t = await internalGet(`/v1/tasks/${c.taskId}`);
    expect(t.body).toMatchObject({ state: "AUTHENTICATED", sendCard: false });
    expect(t.body.sendCardNote).toMatch(/send_card=false/);
    // Only a stored job is ever sent (the worker runs nothing else), and none was recorded.
    expect(t.body.job).toBeUndefined();
    expect(knot.cardRequests).toBe(before);
  });

  it("a missing cardholder profile fails the job with a code that says what to do", async () => {
    const { text, cardId } = await dotvaDelivery(custody.publicKeyPem, CARD);
    expect((await postDotva(text)).status).toBe(200);
    const taskId = ++taskSeq;
    await bindCard("nobody", cardId);
    await knot.sendWebhook(gw.url, authenticatedEvent({ taskId, cardId, externalUserId: "nobody" }));
    expect((await jobOf(taskId)).job).toMatchObject({ state: "failed", errorCode: "CARDHOLDER_NOT_FOUND" });
  });
});

describe("internal API", () => {
  it("requires the bearer token", async () => {
    const res = await gw.app.inject({ method: "GET", url: "/v1/tasks/1" });
    expect(res.statusCode).toBe(401);
    const wrong = await gw.app.inject({
      method: "GET",
      url: "/v1/tasks/1",
      headers: { authorization: "Bearer nope" },
    });
    expect(wrong.json()).toMatchObject({ error: { code: "UNAUTHENTICATED" } });
  });

  it("validates profiles: E.164 phone, ISO 3166-1 alpha-2 country, no unknown members", async () => {
    const badPhone = await putProfile("u1", { ...PROFILE, phone_number: "555-0123" });
    expect(badPhone.status).toBe(400);
    expect((badPhone.body.error as { message: string }).message).toMatch(/^phone_number /);
    const badCountry = await putProfile("u1", {
      ...PROFILE,
      address: { ...PROFILE.address, country: "XX" },
    });
    expect((badCountry.body.error as { message: string }).message).toMatch(/^address\.country /);
    const extra = await putProfile("u1", { ...PROFILE, card: { number: TEST_PAN } });
    expect(extra.status).toBe(400);
    expect(JSON.stringify(extra.body)).not.toContain(TEST_PAN);
    expect((await putProfile("u1")).status).toBe(201);
    expect((await putProfile("u1")).status).toBe(200);
  });

  it("binds a card to one cardholder only, and deletes a cardholder with its bindings", async () => {
    const owner = `user-${randomUUID()}`;
    const other = `user-${randomUUID()}`;
    const cardId = String(Date.now());
    expect(await bindCard(owner, cardId)).toMatchObject({
      status: 201,
      body: { external_user_id: owner, workspace_id: "12", card_id: cardId, outcome: "created" },
    });
    expect((await bindCard(owner, cardId)).body).toMatchObject({ outcome: "unchanged" });
    expect(await bindCard(other, cardId)).toMatchObject({
      status: 409,
      body: { error: { code: "CARD_OWNED_BY_ANOTHER_USER" } },
    });
    const noWorkspace = await api("PUT", `/v1/cardholders/${owner}/cards/${cardId}`, {});
    expect(noWorkspace).toMatchObject({ status: 400, body: { error: { code: "INVALID_BODY" } } });
    expect((noWorkspace.body.error as { message: string }).message).toMatch(/^workspace_id /);
    const del = await gw.app.inject({
      method: "DELETE",
      url: `/v1/cardholders/${owner}`,
      headers: { authorization: `Bearer ${TEST_INTERNAL_TOKEN}` },
    });
    expect(del.json()).toEqual({ external_user_id: owner, deleted: true });
    expect((await bindCard(other, cardId)).status).toBe(201);
    const again = await gw.app.inject({
      method: "DELETE",
      url: `/v1/cardholders/${owner}`,
      headers: { authorization: `Bearer ${TEST_INTERNAL_TOKEN}` },
    });
    expect(again.statusCode).toBe(404);
  });

  it("answers only the members its response schema lists, whatever storage hands back", async () => {
    const { cardUuid } = await readyCard();
    const stored = await gw.repo.getCard(cardUuid);
    const leaky = { ...stored!, secretsJwe: "eyJhbGciOiJSU0EtT0FFUC0yNTYi.LEAK.a.b.c" };
    const spy = vi.spyOn(gw.repo, "getCard").mockResolvedValueOnce(leaky);
    try {
      const view = await internalGet(`/v1/cards/${cardUuid}`);
      expect(view.status).toBe(200);
      expect(view.body).toEqual(JSON.parse(JSON.stringify(stored)));
      expect(JSON.stringify(view.body)).not.toContain("LEAK");
    } finally {
      spy.mockRestore();
    }
  });

  it("validates path parameters and answers 404 with a code", async () => {
    expect(
      (await internalGet(`/v1/cards/${encodeURIComponent("not a card uuid")}`)).body.error,
    ).toMatchObject({
      code: "INVALID_PARAMETER",
    });
    expect((await internalGet(`/v1/cards/${randomUUID()}`)).status).toBe(404);
  });

  it("reports readiness from storage and custody", async () => {
    const res = await gw.app.inject({ method: "GET", url: "/readyz" });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: "ready", checks: { storage: true, custody: true } });
  });
});

describe("logs", () => {
  it("never contain secrets_jwe, the JWE for Knot, PAN, CVV or credentials", async () => {
    expect(logLines.length).toBeGreaterThan(5);
    const all = logLines.join("");
    const { event } = await dotvaDelivery(custody.publicKeyPem, CARD);
    const jwe = (event.data as { secrets_jwe: string }).secrets_jwe;
    expect(all).not.toContain(jwe.slice(0, 40));
    expect(all).not.toMatch(/eyJhbGciOiJSU0EtT0FFUC0yNTYi/);
    for (const secret of [CARD.pan, KNOT_SECRET, DOTVA_SHARED.value, DOTVA_HMAC.secret])
      expect(all).not.toContain(secret);
    expect(all).toContain("card sent to Knot");
  });
});
