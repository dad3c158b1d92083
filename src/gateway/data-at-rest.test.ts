/**
 * What the gateway's database holds (issue 13 item 7), read from the SQLite file itself after the
 * gateway closed: no partner body of a delivery it does not act on (quarantined, unknown or unparsed),
 * and no `secrets_jwe` once the card was sent and its post-send grace (0 here) ran out. Routes are
 * driven with inject(); the worker runs, so the purge is the one production performs.
 */
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { authenticatedEvent, type KnotSimulator } from "../tools/simulators/knot-simulator.js";
import { KNOT_ENCRYPTION_TYPE, knotWebhookSignature } from "../tools/simulators/knot-webhooks.js";
import { partnerJson } from "../tools/simulators/partner-json.js";
import { expiryFromNow } from "../tools/testing/expiry.js";
import { type FakeCustody, startFakeCustody } from "../tools/testing/fake-custody.js";
import {
  dotvaDelivery,
  dotvaHeaders,
  gatewayConfig,
  KNOT_SECRET,
  PROFILE,
  startTestKnot,
  TEST_INTERNAL_TOKEN,
} from "../tools/testing/gateway-env.js";
import { type BuiltGateway, buildGateway } from "./app.js";

const tmp = mkdtempSync(join(tmpdir(), "gw-rest-"));
const dbPath = join(tmp, "gateway.sqlite");
const expiry = expiryFromNow(12);
const CARD = { pan: "4242424242424242", cvv: "123", expiry_month: expiry.month, expiry_year: expiry.year };
/** Strings that appear only in bodies the gateway must not keep. */
const MARKERS = [
  "QuarantinedSecretMarker",
  "UnknownEventSecretMarker",
  "UnparsedKnotMarker",
  "KnotEntrypointMarker",
];
let knot: KnotSimulator;
let custody: FakeCustody;
let gw: BuiltGateway;

beforeAll(async () => {
  knot = await startTestKnot();
  custody = await startFakeCustody();
  gw = await buildGateway(
    gatewayConfig({
      knotUrl: knot.url,
      custodyAddress: custody.address,
      sqlitePath: dbPath,
      extra: { GATEWAY_SECRETS_KEEP_AFTER_SEND_SECONDS: "0", SEND_CARD_POLL_MS: "50" },
    }),
  );
  gw.worker.start();
}, 30_000);

afterAll(async () => {
  await gw?.close();
  await knot?.close();
  await custody?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const dotva = (text: string) =>
  gw.app.inject({ method: "POST", url: "/webhooks/dotva", headers: dotvaHeaders(text), payload: text });

function knotWebhook(body: Record<string, unknown>) {
  const text = partnerJson(body as never);
  const signature = knotWebhookSignature(KNOT_SECRET, {
    contentLength: Buffer.byteLength(text),
    contentType: "application/json",
    encryptionType: KNOT_ENCRYPTION_TYPE,
    event: String(body.event),
    ...(body.session_id !== undefined ? { sessionId: String(body.session_id) } : {}),
  });
  return gw.app.inject({
    method: "POST",
    url: "/webhooks/knot",
    headers: {
      "content-type": "application/json",
      "encryption-type": KNOT_ENCRYPTION_TYPE,
      "knot-signature": signature,
    },
    payload: text,
  });
}

const internal = (method: "GET" | "PUT", url: string, payload?: object) =>
  gw.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${TEST_INTERNAL_TOKEN}` },
    ...(payload ? { payload } : {}),
  });

const finalJob = (taskId: number) =>
  vi.waitFor(
    async () => {
      const job = (await gw.repo.getTask(String(taskId)))?.job;
      if (job?.state !== "sent" && job?.state !== "failed") throw new Error(`task ${taskId} not finished`);
      return job;
    },
    { timeout: 10_000, interval: 20 },
  );

describe("data at rest", () => {
  let sentJwe = "";

  it("acknowledges deliveries it does not act on and keeps only their reason and member names", async () => {
    const d = await dotvaDelivery(custody.publicKeyPem, CARD);
    const broken = JSON.parse(d.text) as { data: Record<string, unknown> };
    broken.data.secrets_jwe = `eyJhbGciOiJSU0EtT0FFUC0yNTYifQ.${MARKERS[0]}.aaaa.bbbb.cccc`;
    delete broken.data.card_last4;
    expect((await dotva(JSON.stringify(broken))).json()).toMatchObject({ outcome: "quarantined" });
    const unknown = JSON.stringify({
      event: "card.frozen",
      workspace_id: 12,
      data: { secrets_jwe: MARKERS[1] },
    });
    expect((await dotva(unknown)).json()).toMatchObject({ outcome: "recorded_unknown_event" });
    const base = {
      session_id: randomUUID(),
      task_id: 77,
      merchant: { id: 1, name: "Hulu" },
      timestamp: Date.now(),
    };
    // AUTHENTICATED without external_user_id cannot be acted on: kept as unparsed.
    const unparsed = await knotWebhook({
      ...base,
      event: "AUTHENTICATED",
      data: { card_id: "1", entrypoint: MARKERS[2] },
    });
    expect(unparsed.json()).toMatchObject({ outcome: "recorded_unparsed" });
    const known = await knotWebhook({
      ...base,
      event: "CARD_UPDATING",
      data: { card_id: "1", entrypoint: MARKERS[3] },
    });
    expect(known.json()).toMatchObject({ outcome: "recorded" });
    const q = await internal("GET", "/v1/dotva/quarantine");
    expect(q.json()).toMatchObject({
      deliveries: [
        {
          reason: "data.card_last4 is missing or has the wrong type",
          members:
            "event,workspace_id,data,data.card_id,data.card_uuid,data.card_bin,data.secrets_jwe,data.key_fingerprint",
        },
      ],
    });
  });

  it("purges a card's secrets_jwe once it was sent (grace 0), after which the card cannot be sent again", async () => {
    const d = await dotvaDelivery(custody.publicKeyPem, CARD);
    sentJwe = (d.event.data as { secrets_jwe: string }).secrets_jwe;
    expect((await dotva(d.text)).json()).toMatchObject({ outcome: "created" });
    const user = `user-${randomUUID()}`;
    expect((await internal("PUT", `/v1/cardholders/${user}`, PROFILE)).statusCode).toBe(201);
    expect(
      (await internal("PUT", `/v1/cardholders/${user}/cards/${d.cardId}`, { workspace_id: 12 })).statusCode,
    ).toBe(201);
    const first = authenticatedEvent({ taskId: 1, cardId: d.cardId, externalUserId: user });
    expect((await knotWebhook(first as never)).statusCode).toBe(200);
    expect(await finalJob(1)).toMatchObject({ state: "sent" });
    const card = await vi.waitFor(
      async () => {
        const c = await gw.repo.getCard(d.cardUuid);
        if (c?.secretsPurgedAt === undefined) throw new Error("not purged yet");
        return c;
      },
      { timeout: 5_000, interval: 20 },
    );
    expect(card.firstSentAt).toBeLessThanOrEqual(card.secretsPurgedAt!);
    const view = await internal("GET", `/v1/cards/${d.cardUuid}`);
    expect(view.json()).toMatchObject({
      secretsPurgedAt: card.secretsPurgedAt,
      firstSentAt: card.firstSentAt,
    });
    // A later merchant switch for the same card: nothing left to send, and it says why.
    const second = authenticatedEvent({ taskId: 2, cardId: d.cardId, externalUserId: user });
    expect((await knotWebhook(second as never)).statusCode).toBe(200);
    expect(await finalJob(2)).toMatchObject({ state: "failed", errorCode: "CARD_SECRETS_PURGED" });
    expect(knot.received.map((r) => r.taskId)).toEqual(["1"]);
  });

  it("the database files hold none of those bodies and not the purged ciphertext, open or closed", async () => {
    const scan = () => {
      const files = [dbPath, `${dbPath}-wal`].filter((f) => existsSync(f));
      const bytes = Buffer.concat(files.map((f) => readFileSync(f)));
      expect(bytes.length).toBeGreaterThan(0);
      for (const marker of MARKERS) expect(bytes.includes(marker), marker).toBe(false);
      // Any 40-character slice of the ciphertext would do; the encrypted key is the bulk of it.
      expect(bytes.includes(sentJwe.split(".")[1]!.slice(0, 40)), "purged secrets_jwe").toBe(false);
      // Cardholder profiles stay while the user may switch again (documented): present, as a control
      // that the scan reads the data it should.
      expect(bytes.includes(PROFILE.name.last_name)).toBe(true);
    };
    expect(sentJwe.length).toBeGreaterThan(100);
    // While running (what a copied disk or backup would hold): the WAL too.
    scan();
    await gw.close();
    scan();
  });
});
