/**
 * Contract tests: every example body of the partner documents (testdata/fixtures/partners/, each citing
 * its document) posted to the gateway over HTTP with Fastify inject(), and the documented effect
 * asserted: the answer, what is stored, what the internal API then shows, whether a card is sent.
 *
 * Knot's side is a plain node:http server serving a fresh RSA JWK and decrypting POST /card with jose;
 * Knot webhooks are signed here with node:crypto over the string Knot documents, not by the gateway's
 * code. Dotva is configured the way production can be without any header Dotva does not document:
 * a source-IP allow-list only.
 */
import { createHmac, generateKeyPairSync, type KeyObject } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { compactDecrypt, exportJWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeCustody, startFakeCustody } from "../tools/testing/fake-custody.js";
import {
  dotvaDelivery,
  gatewayConfig,
  KNOT_CLIENT_ID,
  KNOT_SECRET,
  PROFILE,
  TEST_INTERNAL_TOKEN,
  waitFor,
} from "../tools/testing/gateway-env.js";
import { type RunningGateway, startGateway } from "./app.js";

const FIXTURES = join(import.meta.dirname, "../../testdata/fixtures/partners");
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8");
const json = (name: string) => JSON.parse(fixture(name)) as Record<string, unknown>;

const TASK = "25605";
const USER = "3dcbb19a-b2f1-4a7b-8792-d76027b627b3";
const CARD = {
  pan: "4242424242424242",
  cvv: "012",
  expiry_month: 8,
  expiry_year: new Date().getUTCFullYear() + 2,
};

let gw: RunningGateway;
let custody: FakeCustody;
let knotServer: Server;
let knotKey: KeyObject;
const cardsAtKnot: { raw: string; payload: Record<string, unknown>; headers: Record<string, unknown> }[] = [];

beforeAll(async () => {
  const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  knotKey = pair.privateKey;
  const jwk = JSON.stringify({ ...(await exportJWK(pair.publicKey)), alg: "RSA-OAEP-256", use: "enc" });
  knotServer = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      if (req.method === "GET" && req.url === "/jwe/key") {
        res.writeHead(200, { "content-type": "application/json" }).end(jwk);
        return;
      }
      const raw = Buffer.concat(chunks).toString();
      const { jwe } = JSON.parse(raw) as { jwe: string };
      const { plaintext } = await compactDecrypt(jwe, knotKey);
      cardsAtKnot.push({
        raw,
        payload: JSON.parse(new TextDecoder().decode(plaintext)),
        headers: req.headers,
      });
      res.writeHead(200, { "content-type": "application/json" }).end(fixture("knot-send-card-success.json"));
    });
  });
  await new Promise<void>((r) => knotServer.listen(0, "127.0.0.1", r));
  custody = await startFakeCustody();
  gw = await startGateway(
    gatewayConfig({
      knotUrl: `http://127.0.0.1:${(knotServer.address() as { port: number }).port}`,
      custodyAddress: custody.address,
      extra: { DOTVA_SHARED_SECRET: "", DOTVA_HMAC_SECRET: "", DOTVA_IP_ALLOWLIST: "127.0.0.1/32" },
    }),
  );
}, 30_000);

afterAll(async () => {
  await gw?.close();
  await custody?.close();
  knotServer?.close();
});

function postDotva(body: string) {
  return gw.app.inject({
    method: "POST",
    url: "/webhooks/dotva",
    headers: { "content-type": "application/json" },
    payload: body,
  });
}

/**
 * The documents' example `timestamp` (1710864923198, March 2024) is outside the gateway's replay window
 * (KNOT_WEBHOOK_TOLERANCE_SECONDS): it is replaced by one fixed current time of the same 13 digits, so
 * each body is otherwise the document's, byte for byte, and the same fixture posted twice stays the same
 * body (Knot's retries are byte-identical).
 */
const DOCUMENT_TIMESTAMP = "1710864923198";
const NOW = String(Date.now());
const current = (body: string) =>
  body.replaceAll(`"timestamp": ${DOCUMENT_TIMESTAMP}`, `"timestamp": ${NOW}`);
/** Every example shares one session_id; a test posting a second body of one event gives it its own session. */
const DOCUMENT_SESSION = "fb5aa994-ed1c-4c3e-b29a-b2a53222e584";
let sessionSeq = 0;
const ownSession = (body: string) =>
  body.replace(DOCUMENT_SESSION, `${DOCUMENT_SESSION.slice(0, -4)}${String(++sessionSeq).padStart(4, "0")}`);

/** Signs as Knot documents: base64 HMAC-SHA256 of the header/body pairs, session_id pair only if present. */
function postKnot(document: string) {
  const body = current(document);
  const parsed = JSON.parse(body) as { event?: string; session_id?: string };
  const length = Buffer.byteLength(body);
  const pairs = [
    `Content-Length|${length}`,
    "Content-Type|application/json",
    "Encryption-Type|HMAC-SHA256",
    `event|${parsed.event}`,
    ...(parsed.session_id !== undefined ? [`session_id|${parsed.session_id}`] : []),
  ];
  return gw.app.inject({
    method: "POST",
    url: "/webhooks/knot",
    headers: {
      "content-type": "application/json",
      "encryption-type": "HMAC-SHA256",
      "knot-signature": createHmac("sha256", KNOT_SECRET).update(pairs.join("|")).digest("base64"),
    },
    payload: body,
  });
}

async function internal(path: string, method: "GET" | "PUT" = "GET", body?: unknown) {
  const res = await gw.app.inject({
    method,
    url: path,
    headers: { authorization: `Bearer ${TEST_INTERNAL_TOKEN}` },
    ...(body !== undefined ? { payload: body as object } : {}),
  });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> };
}

describe("Dotva card.issued.secrets (seed 004)", () => {
  it("accepts the document's example body exactly as written and stores its fields", async () => {
    const res = await postDotva(fixture("dotva-card-issued-secrets.json"));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      outcome: "created",
      card_uuid: "8f1c3b6e-2d4a-4f7b-9c1e-5a6d7e8f9012",
    });
    const card = await internal("/v1/cards/8f1c3b6e-2d4a-4f7b-9c1e-5a6d7e8f9012");
    expect(card.body).toEqual({
      cardUuid: "8f1c3b6e-2d4a-4f7b-9c1e-5a6d7e8f9012",
      cardId: "345",
      workspaceId: "12",
      cardLast4: "4242",
      cardBin: "411111",
      keyFingerprint: "sha256:9c4db5d95af00755804454ccd3742d24a86ad327c3e3d85e2167ad9ecc17b599",
      receivedAt: expect.any(Number),
      conflicts: 0,
    });
    expect((await postDotva(fixture("dotva-card-issued-secrets.json"))).json()).toMatchObject({
      outcome: "duplicate",
    });
  });

  it("keeps ids beyond 2^53 to the digit", async () => {
    const body = fixture("dotva-card-issued-secrets.json")
      .replace('"card_id": 345', '"card_id": 18446744073709551617')
      .replace('"workspace_id": 12', '"workspace_id": 9007199254740993')
      .replace("8f1c3b6e-2d4a-4f7b-9c1e-5a6d7e8f9012", "8f1c3b6e-2d4a-4f7b-9c1e-5a6d7e8f9013");
    expect((await postDotva(body)).json()).toMatchObject({ outcome: "created" });
    const card = await internal("/v1/cards/8f1c3b6e-2d4a-4f7b-9c1e-5a6d7e8f9013");
    expect(card.body).toMatchObject({ cardId: "18446744073709551617", workspaceId: "9007199254740993" });
  });

  it("ignores members the document does not show, at every level", async () => {
    const e = json("dotva-card-issued-secrets.json");
    const body = JSON.stringify({
      ...e,
      id: "evt_1",
      created_at: "2030-01-01T00:00:00Z",
      data: {
        ...(e.data as object),
        card_uuid: "8f1c3b6e-2d4a-4f7b-9c1e-5a6d7e8f9014",
        brand: { name: "visa" },
      },
    });
    expect((await postDotva(body)).json()).toMatchObject({ outcome: "created" });
  });

  it("a redelivery with re-encrypted secrets_jwe is acknowledged 200 and the first kept", async () => {
    const e = json("dotva-card-issued-secrets.json");
    const data = e.data as { secrets_jwe: string };
    const parts = data.secrets_jwe.split(".");
    const reencrypted = [parts[0], parts[1]!.split("").reverse().join(""), ...parts.slice(2)].join(".");
    const res = await postDotva(JSON.stringify({ ...e, data: { ...data, secrets_jwe: reencrypted } }));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ outcome: "conflict" });
    expect((await internal("/v1/cards/8f1c3b6e-2d4a-4f7b-9c1e-5a6d7e8f9012")).body).toMatchObject({
      conflicts: 1,
    });
  });

  it("a delivery that can never become valid is acknowledged 200 and listed in quarantine", async () => {
    const e = json("dotva-card-issued-secrets.json");
    const { card_last4: _, ...rest } = e.data as Record<string, unknown>;
    const res = await postDotva(
      JSON.stringify({ ...e, data: { ...rest, card_uuid: "8f1c3b6e-2d4a-4f7b-9c1e-5a6d7e8f9015" } }),
    );
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      outcome: "quarantined",
      reason: "data.card_last4 is missing or has the wrong type",
    });
    const q = await internal("/v1/dotva/quarantine");
    expect(q.body.deliveries).toContainEqual(
      expect.objectContaining({
        cardUuid: "8f1c3b6e-2d4a-4f7b-9c1e-5a6d7e8f9015",
        event: "card.issued.secrets",
      }),
    );
    expect((await internal("/v1/cards/8f1c3b6e-2d4a-4f7b-9c1e-5a6d7e8f9015")).status).toBe(404);
  });

  it("an unknown future event is acknowledged and recorded", async () => {
    const before = await gw.repo.countUnknownEvents("dotva");
    const res = await postDotva(
      JSON.stringify({ event: "card.frozen", workspace_id: 12, data: { card_id: 345 } }),
    );
    expect(res.json()).toMatchObject({ outcome: "recorded_unknown_event" });
    expect(await gw.repo.countUnknownEvents("dotva")).toBe(before + 1);
  });

  it("the IP allow-list alone authenticates Dotva: another source is refused", async () => {
    const res = await gw.app.inject({
      method: "POST",
      url: "/webhooks/dotva",
      remoteAddress: "203.0.113.9",
      headers: { "content-type": "application/json" },
      payload: fixture("dotva-card-issued-secrets.json"),
    });
    expect(res.statusCode).toBe(403);
  });
});

describe("Knot webhooks (seeds 001-003) and send card (seed 000)", () => {
  it("AUTHENTICATED as documented: the card is sent to POST /card within the window, task_id a number", async () => {
    const d = await dotvaDelivery(custody.publicKeyPem, CARD, { cardId: 123456789n });
    expect((await postDotva(d.text)).json()).toMatchObject({ outcome: "created" });
    expect((await internal(`/v1/cardholders/${USER}`, "PUT", PROFILE)).status).toBe(201);
    // The back office binds the card it gave Knot to the user it started the session for.
    expect(
      (await internal(`/v1/cardholders/${USER}/cards/123456789`, "PUT", { workspace_id: 12 })).status,
    ).toBe(201);
    const t0 = Date.now();
    const res = await postKnot(fixture("knot-authenticated.json"));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ outcome: "recorded_with_job" });
    const task = await waitFor(async () => {
      const t = await internal(`/v1/tasks/${TASK}`);
      return (t.body.job as { state?: string } | undefined)?.state === "sent" ? t.body : undefined;
    });
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(task).toMatchObject({
      state: "AUTHENTICATED",
      merchantId: "10",
      merchantName: "Uber",
      cardId: "123456789",
    });
    expect(cardsAtKnot).toHaveLength(1);
    expect(cardsAtKnot[0]!.raw).toMatch(/^\{"task_id":25605,"jwe":"[A-Za-z0-9_.-]+"\}$/);
    expect(cardsAtKnot[0]!.headers).toMatchObject({
      authorization: `Basic ${Buffer.from(`${KNOT_CLIENT_ID}:${KNOT_SECRET}`).toString("base64")}`,
      "knot-version": "2.0",
      "content-type": "application/json",
    });
    expect(cardsAtKnot[0]!.payload).toEqual({
      user: PROFILE,
      card: { number: CARD.pan, expiration: `08/${CARD.expiry_year}`, cvv: "012" },
    });
  });

  it("the same AUTHENTICATED from another document page is a duplicate; another body under its session is refused", async () => {
    expect((await postKnot(fixture("knot-authenticated-merchant-status.json"))).json()).toMatchObject({
      outcome: "duplicate",
    });
    // Another body under the same (event, session_id), which is all Knot's signature covers: refused.
    const other = await postKnot(fixture("knot-authenticated-merchant-authentication.json"));
    expect(other.statusCode).toBe(409);
    expect(other.json()).toMatchObject({ error: { code: "KNOT_WEBHOOK_REPLAYED" } });
    // Under its own session it is another task's AUTHENTICATED, recorded; the task already has its job.
    expect(
      (await postKnot(ownSession(fixture("knot-authenticated-merchant-authentication.json")))).json(),
    ).toMatchObject({ outcome: "recorded" });
    expect(cardsAtKnot).toHaveLength(1);
  });

  const taskEvents = readdirSync(FIXTURES).filter(
    (f) =>
      f.startsWith("knot-") &&
      !f.startsWith("knot-send-card") &&
      !f.startsWith("knot-authenticated") &&
      !["knot-jwe-plaintext.json", "knot-card-failed-reasons.json", "knot-card-failed.json"].includes(f) &&
      (json(f) as { task_id?: number }).task_id !== undefined,
  );
  it.each(taskEvents)("%s is accepted and recorded on its task", async (name) => {
    const body = json(name);
    const res = await postKnot(fixture(name));
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ outcome: "recorded" });
    const task = await internal(`/v1/tasks/${TASK}`);
    expect(task.body).toMatchObject({ state: body.event, sessionId: "fb5aa994-ed1c-4c3e-b29a-b2a53222e584" });
  });

  it("CARD_FAILED: the reason is kept with Knot's description", async () => {
    expect((await postKnot(fixture("knot-card-failed.json"))).json()).toMatchObject({ outcome: "recorded" });
    expect((await internal(`/v1/tasks/${TASK}`)).body).toMatchObject({
      state: "CARD_FAILED",
      failureReason: "card expired",
      failureReasonDocumented: true,
      failureReasonDescription: "The user’s card is expired.",
    });
  });

  it("the internal API lists exactly the 20 documented failure reasons with their descriptions", async () => {
    expect((await internal("/v1/knot/failure-reasons")).body.reasons).toEqual(
      json("knot-card-failed-reasons.json"),
    );
  });

  it("every documented reason and an undocumented one are kept as sent", async () => {
    const reasons = JSON.parse(fixture("knot-card-failed-reasons.json")) as {
      reason: string;
      description: string;
    }[];
    for (const [i, { reason, description }] of [
      ...reasons,
      { reason: "card frozen", description: "" },
    ].entries()) {
      const body = ownSession(fixture("knot-card-failed.json"))
        .replace('"task_id": 25605', `"task_id": ${90_000 + i}`)
        .replace('"reason": "card expired"', `"reason": ${JSON.stringify(reason)}`);
      expect((await postKnot(body)).statusCode).toBe(200);
      const t = (await internal(`/v1/tasks/${90_000 + i}`)).body;
      expect(t.failureReason).toBe(reason);
      expect(t.failureReasonDocumented).toBe(description !== "");
      if (description) expect(t.failureReasonDescription).toBe(description);
      else expect(t).not.toHaveProperty("failureReasonDescription");
    }
  });

  it("AUTHENTICATED without send_card means send; send_card false means no card", async () => {
    const without = ownSession(fixture("knot-authenticated.json"))
      .replace('"task_id": 25605', '"task_id": 25606')
      .replace('    "send_card": true,\n', "");
    expect(without).not.toContain("send_card");
    expect((await postKnot(without)).json()).toMatchObject({ outcome: "recorded_with_job" });
    await waitFor(async () => (cardsAtKnot.length === 2 ? true : undefined));
    expect(cardsAtKnot[1]!.raw).toMatch(/^\{"task_id":25606,/);
    const off = ownSession(fixture("knot-authenticated.json"))
      .replace('"task_id": 25605', '"task_id": 25607')
      .replace('"send_card": true', '"send_card": false');
    expect((await postKnot(off)).json()).toMatchObject({ outcome: "recorded" });
    const t = (await internal("/v1/tasks/25607")).body;
    expect(t).toMatchObject({ sendCard: false });
    expect(t.job).toBeUndefined();
  });

  it("ACCOUNTS_RETRIEVED (no data) is recorded on its task", async () => {
    const body = ownSession(fixture("knot-accounts-retrieved.json")).replace(
      '"task_id": 25605',
      '"task_id": 25608',
    );
    expect((await postKnot(body)).json()).toMatchObject({ outcome: "recorded" });
    expect((await internal("/v1/tasks/25608")).body).toMatchObject({
      state: "ACCOUNTS_RETRIEVED",
      merchantName: "Google Keychain",
    });
  });

  it("MERCHANT_STATUS_UPDATE keeps availability per type, platform and SDK version; a new platform is kept", async () => {
    expect((await postKnot(fixture("knot-merchant-status-update.json"))).json()).toMatchObject({
      outcome: "recorded",
    });
    const other = fixture("knot-merchant-status-update.json")
      .replace('"sdk": "1.0.0"', '"sdk": "2.0.0"')
      .replace('"UP"', '"DOWN"');
    const tv = fixture("knot-merchant-status-update.json")
      .replace('"ios"', '"tvos"')
      .replace('"sdk": "1.0.0"', '"sdk": null');
    expect((await postKnot(other)).statusCode).toBe(200);
    expect((await postKnot(tv)).statusCode).toBe(200);
    const merchants = (await internal("/v1/merchants")).body.merchants as Record<string, unknown>[];
    expect(merchants.map((m) => [m.merchantId, m.type, m.platform, m.sdk, m.status])).toEqual([
      ["10", "card_switcher", "ios", "1.0.0", "UP"],
      ["10", "card_switcher", "ios", "2.0.0", "DOWN"],
      ["10", "card_switcher", "tvos", null, "UP"],
    ]);
  });

  it("NEW_ and UPDATED_TRANSACTIONS_AVAILABLE are recorded; the updated ids are listed", async () => {
    expect((await postKnot(fixture("knot-new-transactions-available.json"))).json()).toMatchObject({
      outcome: "recorded",
    });
    expect((await postKnot(fixture("knot-updated-transactions-available.json"))).json()).toMatchObject({
      outcome: "recorded",
    });
    const events = (await internal(`/v1/transaction-events?external_user_id=${USER}`)).body.events;
    expect(events).toEqual([
      expect.objectContaining({
        event: "UPDATED_TRANSACTIONS_AVAILABLE",
        merchantId: "36",
        merchantName: "Uber Eats",
        transactionIds: ["123abc456def", "789ghi012jkl"],
      }),
      expect.objectContaining({ event: "NEW_TRANSACTIONS_AVAILABLE", transactionIds: [] }),
    ]);
  });

  it("an unknown event is acknowledged and kept (its name and member names, never the body), never 400", async () => {
    const before = await gw.repo.countUnknownEvents("knot");
    const body = fixture("knot-card-updated.json").replace('"CARD_UPDATED"', '"CARD_SWITCH_SCHEDULED"');
    const res = await postKnot(body);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ outcome: "recorded_unknown" });
    expect(await gw.repo.countUnknownEvents("knot")).toBe(before + 1);
  });

  it("Knot's documented error bodies are what the client reads error_code from", () => {
    expect(json("knot-send-card-invalid-jwe.json")).toMatchObject({
      error_code: "INVALID_JWE",
      display_message: null,
    });
    expect(json("knot-send-card-invalid-field.json")).toMatchObject({
      error_code: "INVALID_FIELD",
      display_message: null,
    });
    expect(json("knot-send-card-request.json").task_id).toBe(408321);
    expect(Object.keys(json("knot-jwe-plaintext.json"))).toEqual(["user", "card"]);
  });
});
