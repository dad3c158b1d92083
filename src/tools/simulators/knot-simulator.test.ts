/**
 * The Knot simulator against Knot's documents, not against our gateway: its webhook bodies are the
 * documents' examples, its signature is what openssl computes over the documented string, and its API
 * takes the documented request and answers the documented bodies.
 */
import { execFileSync } from "node:child_process";
import { createPublicKey } from "node:crypto";
import { CompactEncrypt, importJWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  accountsRetrievedEvent,
  authenticatedEvent,
  cardFailedEvent,
  cardIdEvent,
  KnotSimulator,
  merchantStatusUpdateEvent,
  newTransactionsAvailableEvent,
  updatedTransactionsAvailableEvent,
} from "./knot-simulator.js";
import { KNOT_CARD_ID_EVENTS, type KnotCardIdEvent } from "./knot-webhooks.js";
import { fixture, fixtureText, type Receiver, receiver, shapeOf } from "./partner-server.js";

const CLIENT_ID = "bd271e95-14e6-47ab-9f4f-225898f69183";
const SECRET = "cf819749c0574616ba93b5935b8cf108";
const sim = new KnotSimulator({ clientId: CLIENT_ID, secret: SECRET });
let gateway: Receiver;

beforeAll(async () => {
  await sim.start();
  gateway = await receiver();
});
afterAll(async () => {
  await sim.close();
  await gateway.close();
});

type Body = Record<string, unknown>;
type Task = {
  session_id: string;
  task_id: number;
  external_user_id: string;
  merchant: { id: number; name: string };
  data: { card_id: string; reason?: string };
  timestamp: number;
};

/** Builds `doc`'s event with the simulator's builder, from the document's own values. */
function rebuild(doc: Body): Body {
  const t = doc as unknown as Task;
  const ids = {
    sessionId: t.session_id,
    taskId: t.task_id,
    externalUserId: t.external_user_id,
    merchant: t.merchant,
    timestamp: t.timestamp,
  };
  const event = doc.event as string;
  if (event === "AUTHENTICATED") return authenticatedEvent({ ...ids, cardId: t.data.card_id });
  if (event === "CARD_FAILED")
    return cardFailedEvent({ ...ids, cardId: t.data.card_id, reason: t.data.reason! });
  if (event === "ACCOUNTS_RETRIEVED") return accountsRetrievedEvent(ids);
  if ((KNOT_CARD_ID_EVENTS as readonly string[]).includes(event)) {
    return cardIdEvent(event as KnotCardIdEvent, { ...ids, cardId: t.data.card_id });
  }
  if (event === "MERCHANT_STATUS_UPDATE") {
    const d = doc.data as { type: string; status: string; platform: string; sdk: string | null };
    return merchantStatusUpdateEvent({
      merchant: doc.merchant as { id: number; name: string; logo: string },
      ...d,
      timestamp: t.timestamp,
    });
  }
  if (event === "NEW_TRANSACTIONS_AVAILABLE") {
    return newTransactionsAvailableEvent({ ...ids, merchant: t.merchant });
  }
  if (event === "UPDATED_TRANSACTIONS_AVAILABLE") {
    const updated = (doc.updated as { id: string }[]).map((u) => u.id);
    return updatedTransactionsAvailableEvent({ ...ids, updated });
  }
  throw new Error(`no builder for ${event}`);
}

const WEBHOOK_FIXTURES = [
  "knot-authenticated.json",
  "knot-authenticated-merchant-authentication.json",
  "knot-authenticated-merchant-status.json",
  "knot-card-updating.json",
  "knot-card-updated.json",
  "knot-card-failed.json",
  "knot-credentials-failed.json",
  "knot-otp-required.json",
  "knot-otp-failed.json",
  "knot-questions-required.json",
  "knot-questions-failed.json",
  "knot-login-approval.json",
  "knot-accounts-retrieved.json",
  "knot-merchant-status-update.json",
  "knot-new-transactions-available.json",
  "knot-updated-transactions-available.json",
];

describe("Knot webhook bodies are the documents' examples", () => {
  it.each(WEBHOOK_FIXTURES)("%s, rebuilt from its own values, is the same JSON text", (name) => {
    const doc = fixture(name) as Body;
    expect(JSON.stringify(rebuild(doc))).toBe(JSON.stringify(doc));
  });

  it("every builder's default body has its example's structure: members in order, JSON types", () => {
    const ids = { taskId: 25605, externalUserId: "u-1" };
    const defaults: [string, Body][] = [
      ["knot-authenticated.json", authenticatedEvent({ ...ids, cardId: 345 })],
      ["knot-card-failed.json", cardFailedEvent({ ...ids, cardId: "345", reason: "otp timeout" })],
      ["knot-login-approval.json", cardIdEvent("LOGIN_APPROVAL", { ...ids, cardId: 345n })],
      ["knot-accounts-retrieved.json", accountsRetrievedEvent(ids)],
      [
        "knot-merchant-status-update.json",
        merchantStatusUpdateEvent({ type: "card_switcher", status: "DOWN", platform: "web", sdk: "2.1.0" }),
      ],
      ["knot-new-transactions-available.json", newTransactionsAvailableEvent(ids)],
      [
        "knot-updated-transactions-available.json",
        updatedTransactionsAvailableEvent({ ...ids, updated: ["a"] }),
      ],
    ];
    for (const [name, body] of defaults) expect(shapeOf(body), name).toEqual(shapeOf(fixture(name)));
  });

  it("AUTHENTICATED can leave send_card out; MERCHANT_STATUS_UPDATE can carry a null sdk", () => {
    const data = authenticatedEvent({ taskId: 1, externalUserId: "u", cardId: "1", sendCard: "omit" }).data;
    expect(data).toEqual({ card_id: "1", entrypoint: "onboarding" });
    const status = merchantStatusUpdateEvent({
      type: "transaction_link",
      status: "UP",
      platform: "tvos",
      sdk: null,
    });
    expect(status.data).toEqual({ type: "transaction_link", status: "UP", platform: "tvos", sdk: null });
  });
});

/** HMAC-SHA256 by openssl, base64 by coreutils, over `text`. */
function opensslSignature(secret: string, text: string): string {
  const mac = execFileSync("openssl", ["dgst", "-sha256", "-hmac", secret, "-binary"], { input: text });
  return execFileSync("base64", ["-w0"], { input: mac }).toString("utf8");
}

describe("webhook signature", () => {
  it("matches openssl over the documented string, built from the request as received", async () => {
    const body = fixture("knot-authenticated.json") as Body;
    expect((await sim.sendWebhook(gateway.url, body)).status).toBe(200);
    const req = gateway.requests.at(-1)!;
    expect(req.path).toBe("/webhooks/knot");
    expect(JSON.parse(req.body)).toEqual(body);
    expect(Number(req.headers["content-length"])).toBe(Buffer.byteLength(req.body));
    const documented =
      `Content-Length|${req.headers["content-length"]}|Content-Type|application/json` +
      `|Encryption-Type|HMAC-SHA256|event|AUTHENTICATED|session_id|fb5aa994-ed1c-4c3e-b29a-b2a53222e584`;
    expect(req.headers["content-type"]).toBe("application/json");
    expect(req.headers["encryption-type"]).toBe("HMAC-SHA256");
    expect(req.headers["knot-signature"]).toBe(opensslSignature(SECRET, documented));
  });

  it("leaves the session_id pair out for an event without one (MERCHANT_STATUS_UPDATE)", async () => {
    await sim.sendWebhook(gateway.url, fixture("knot-merchant-status-update.json") as Body);
    const req = gateway.requests.at(-1)!;
    const documented = `Content-Length|${Buffer.byteLength(req.body)}|Content-Type|application/json|Encryption-Type|HMAC-SHA256|event|MERCHANT_STATUS_UPDATE`;
    expect(req.headers["knot-signature"]).toBe(opensslSignature(SECRET, documented));
  });

  it("writes a task_id beyond 2^53 exactly", async () => {
    const body = authenticatedEvent({ taskId: 9007199254740993n, externalUserId: "u", cardId: "1" });
    await sim.sendWebhook(gateway.url, body);
    expect(gateway.requests.at(-1)!.body).toContain('"task_id":9007199254740993,');
  });
});

const auth = `Basic ${Buffer.from(`${CLIENT_ID}:${SECRET}`).toString("base64")}`;
const knotHeaders = { authorization: auth, "knot-version": "2.0", "content-type": "application/json" };

async function call(
  path: string,
  init: { method?: string; body?: string; headers?: Record<string, string> } = {},
) {
  const res = await fetch(`${sim.url}${path}`, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    headers: init.headers ?? knotHeaders,
    body: init.body,
    redirect: "manual",
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    text,
    json: text ? (JSON.parse(text) as unknown) : undefined,
  };
}

const plaintext = () =>
  structuredClone(fixture("knot-jwe-plaintext.json")) as {
    user: Record<string, unknown> & { address: Record<string, unknown> };
    card: Record<string, unknown>;
  };

async function jweFor(payload: unknown, jwk = sim.publicJwk): Promise<string> {
  return new CompactEncrypt(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM", kid: String(jwk.kid) })
    .encrypt(await importJWK(jwk as Parameters<typeof importJWK>[0], "RSA-OAEP-256"));
}

const postCard = async (payload: unknown, taskId = "408321") =>
  call("/card", { body: `{"task_id":${taskId},"jwe":${JSON.stringify(await jweFor(payload))}}` });

describe("Knot API: GET /jwe/key", () => {
  it("serves an RSA public JWK to Basic auth with Knot-Version 2.0", async () => {
    const res = await call("/jwe/key");
    expect(res.status).toBe(200);
    const jwk = res.json as Record<string, unknown>;
    expect(jwk).toEqual(sim.publicJwk);
    expect(jwk.d).toBeUndefined();
    expect(createPublicKey({ key: jwk as never, format: "jwk" }).asymmetricKeyDetails?.modulusLength).toBe(
      2048,
    );
  });

  it("refuses wrong credentials (401) and a missing Knot-Version (400, documented Missing Field body)", async () => {
    const wrong = `Basic ${Buffer.from(`${CLIENT_ID}:nope`).toString("base64")}`;
    expect((await call("/jwe/key", { headers: { ...knotHeaders, authorization: wrong } })).status).toBe(401);
    const noVersion = await call("/jwe/key", { headers: { authorization: auth } });
    expect(noVersion).toMatchObject({
      status: 400,
      json: { error_code: "INVALID_FIELD", display_message: null },
    });
  });

  it("fails the next key fetch on request (fault)", async () => {
    sim.faults.keyFailNext = 1;
    expect((await call("/jwe/key")).status).toBe(503);
    expect((await call("/jwe/key")).status).toBe(200);
  });
});

describe("Knot API: POST /card", () => {
  it("answers the document's example request (a JWE for no key) with the documented Invalid Input body", async () => {
    const res = await call("/card", { body: fixtureText("knot-send-card-request.json") });
    expect(res.status).toBe(400);
    expect(res.json).toStrictEqual(fixture("knot-send-card-invalid-jwe.json"));
    expect(sim.rejected.at(-1)).toEqual({ taskId: "408321", code: "INVALID_JWE" });
  });

  it("accepts the document's plaintext (MM/YYYY) with exactly the documented success body", async () => {
    const res = await postCard(fixture("knot-jwe-plaintext.json"));
    expect(res.status).toBe(200);
    expect(res.json).toStrictEqual(fixture("knot-send-card-success.json"));
    expect(res.text).toBe('{"message":"Success"}');
    const got = sim.received.at(-1)!;
    expect(got.taskId).toBe("408321");
    expect(got.payload).toStrictEqual(fixture("knot-jwe-plaintext.json"));
    expect(got.kid).toBe(sim.publicJwk.kid);
  });

  it("accepts MM/YY, no street2, long values and unknown members: no limit the document does not state", async () => {
    const p = plaintext();
    p.card.expiration = "08/25";
    delete p.user.address.street2;
    p.user.address.street = "A".repeat(300);
    p.card.nickname = "travel";
    expect((await postCard(p)).status).toBe(200);
    expect(sim.received.at(-1)!.payload).toStrictEqual(p);
  });

  it("keeps a task_id beyond 2^53 as written", async () => {
    expect((await postCard(plaintext(), "9007199254740993")).status).toBe(200);
    expect(sim.received.at(-1)!.taskId).toBe("9007199254740993");
  });

  it("answers a missing user.name with exactly the document's Missing Field body", async () => {
    const p = plaintext();
    delete p.user.name;
    const res = await postCard(p);
    expect(res.status).toBe(400);
    expect(res.json).toStrictEqual(fixture("knot-send-card-invalid-field.json"));
  });

  it.each([
    ["task_id quoted", `{"task_id":"408321","jwe":"a.b.c.d.e"}`, "the task_id field is required"],
    ["task_id missing", `{"jwe":"a.b.c.d.e"}`, "the task_id field is required"],
    ["jwe missing", `{"task_id":408321}`, "the jwe field is required"],
    ["not JSON", "{task_id", "the task_id field is required"],
  ])("%s → 400 INVALID_REQUEST / INVALID_FIELD", async (_name, body, message) => {
    const res = await call("/card", { body });
    expect(res.status).toBe(400);
    expect(res.json).toStrictEqual({
      error_type: "INVALID_REQUEST",
      error_code: "INVALID_FIELD",
      error_message: message,
      display_message: null,
    });
  });

  it.each(["8/2030", "2030-08", "13/2030", "08/030"])("refuses the expiration %s", async (expiration) => {
    const p = plaintext();
    p.card.expiration = expiration;
    const res = await postCard(p);
    expect(res).toMatchObject({
      status: 400,
      json: { error_type: "INVALID_REQUEST", error_code: "INVALID_FIELD" },
    });
  });

  it("answers INVALID_JWE for a JWE to its previous key once it rotated", async () => {
    const before = sim.publicJwk;
    const old = await jweFor(plaintext(), before);
    sim.rotateKey();
    expect(sim.publicJwk.kid).not.toBe(before.kid);
    const res = await call("/card", { body: `{"task_id":1,"jwe":"${old}"}` });
    expect(res.json).toStrictEqual(fixture("knot-send-card-invalid-jwe.json"));
    expect((await postCard(plaintext())).status).toBe(200);
  });
});

describe("Knot API: faults", () => {
  it("a status for the next N cards, with Retry-After when asked, then normal service", async () => {
    Object.assign(sim.faults, { failNext: 2, failStatus: 429, retryAfter: "1" });
    const first = await postCard(plaintext());
    expect(first.status).toBe(429);
    expect(first.headers.get("retry-after")).toBe("1");
    expect((await postCard(plaintext())).status).toBe(429);
    Object.assign(sim.faults, { failStatus: 503, retryAfter: undefined });
    expect((await postCard(plaintext())).status).toBe(200);
  });

  it.each([
    [307, undefined, "/card"],
    [308, "https://knot.example/card", "https://knot.example/card"],
    [302, "/elsewhere", "/elsewhere"],
    [301, null, null],
  ])("a %s redirect to %s, once", async (status, location, expected) => {
    Object.assign(sim.faults, { redirectOnce: true, redirectStatus: status, redirectLocation: location });
    const res = await postCard(plaintext());
    expect(res.status).toBe(status);
    expect(res.headers.get("location")).toBe(expected);
    expect((await postCard(plaintext())).status).toBe(200);
  });

  it("INVALID_JWE once, whatever the request holds", async () => {
    sim.faults.invalidJweOnce = true;
    expect((await postCard(plaintext())).json).toStrictEqual(fixture("knot-send-card-invalid-jwe.json"));
    expect((await postCard(plaintext())).status).toBe(200);
  });
});

describe("the simulators are partners, not copies of us", () => {
  it("import only node built-ins, jose, fastify and each other (never src/gateway, src/custody, src/core)", async () => {
    const { readdirSync, readFileSync } = await import("node:fs");
    const dir = new URL("./", import.meta.url);
    const files = readdirSync(dir).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"));
    expect(files).toContain("knot-simulator.ts");
    const imports = files.flatMap((f) =>
      [...readFileSync(new URL(f, dir), "utf8").matchAll(/\bfrom\s+"([^"]+)"|import\(\s*"([^"]+)"/g)].map(
        (m) => `${f}: ${m[1] ?? m[2]}`,
      ),
    );
    expect(imports.length).toBeGreaterThan(5);
    const allowed = /: (node:[a-z_/]+|jose|fastify|\.\/[a-z0-9-]+\.js)$/;
    expect(imports.filter((i) => !allowed.test(i))).toEqual([]);
  });
});
