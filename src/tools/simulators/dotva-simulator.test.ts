/**
 * The Dotva simulator against Dotva's "Webhooks" document: the card.issued.secrets envelope exactly as
 * its example, secrets_jwe decryptable by the private key, key_fingerprint as openssl computes it, and
 * delivery retried with exponential back-off until a 200.
 */
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { compactDecrypt, decodeProtectedHeader } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { DotvaSimulator, type SecretsShape, secretsPlaintext, TEST_PANS } from "./dotva-simulator.js";
import { fixture, type Receiver, receiver, shapeOf } from "./partner-server.js";

const custody = generateKeyPairSync("rsa", { modulusLength: 2048 });
const publicPem = custody.publicKey.export({ type: "spki", format: "pem" }).toString();
const YEAR = new Date().getUTCFullYear() + 3;
const CARD = { pan: TEST_PANS[0], cvv: "123", expiry_month: "08", expiry_year: String(YEAR) };

const open: Receiver[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((r) => r.close()));
});
async function gateway(statuses: number[]) {
  const r = await receiver(statuses);
  open.push(r);
  return r;
}

/** A sleep that records the back-off and returns at once. */
function recordingSleep() {
  const waited: number[] = [];
  return { waited, sleep: async (ms: number) => void waited.push(ms) };
}

async function decrypt(jwe: string): Promise<unknown> {
  const { plaintext } = await compactDecrypt(jwe, custody.privateKey);
  return JSON.parse(new TextDecoder().decode(plaintext));
}

describe("card.issued.secrets as Dotva documents it", () => {
  it("has the example's envelope: members in order, numeric workspace_id and card_id", async () => {
    const event = await new DotvaSimulator(publicPem).issue(CARD);
    const body = JSON.parse(new DotvaSimulator(publicPem).body(event));
    expect(shapeOf(body)).toEqual(shapeOf(fixture("dotva-card-issued-secrets.json")));
    expect(body).toMatchObject({ event: "card.issued.secrets", workspace_id: 12 });
    expect(body.data).toMatchObject({ card_last4: "4242", card_bin: "424242" });
    expect(body.data.card_uuid).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });

  it("encrypts with RSA-OAEP-256 + A256GCM to the key; the plaintext has the jose example's names", async () => {
    const event = await new DotvaSimulator(publicPem).issue(CARD);
    expect(decodeProtectedHeader(event.data.secrets_jwe)).toEqual({ alg: "RSA-OAEP-256", enc: "A256GCM" });
    expect(await decrypt(event.data.secrets_jwe)).toStrictEqual({
      pan: CARD.pan,
      cvv: "123",
      expiry_month: "08",
      expiry_year: String(YEAR),
    });
  });

  it("names the key by sha256 over its DER SubjectPublicKeyInfo, as openssl computes it", () => {
    const der = execFileSync("openssl", ["pkey", "-pubin", "-outform", "DER"], { input: publicPem });
    const hex = execFileSync("sha256sum", { input: der }).toString().split(" ")[0];
    expect(new DotvaSimulator(publicPem).keyFingerprint).toBe(`sha256:${hex}`);
  });

  it("gives each card a fresh card_id and card_uuid; ids beyond 2^53 are written exactly", async () => {
    const dotva = new DotvaSimulator(publicPem, {}, { workspaceId: 7 });
    const [a, b] = [await dotva.issue(CARD), await dotva.issue(CARD)];
    expect(a.data.card_id).not.toBe(b.data.card_id);
    expect(a.data.card_uuid).not.toBe(b.data.card_uuid);
    expect(a.workspace_id).toBe(7);
    const big = await dotva.issue(CARD, { cardId: 2n ** 64n + 1n, workspaceId: 2n ** 53n + 1n });
    const text = dotva.body(big);
    expect(text).toContain('"workspace_id":9007199254740993,');
    expect(text).toContain('"card_id":18446744073709551617,');
  });

  it.each<[string, SecretsShape, unknown]>([
    [
      "nested under card, number / cvc / expiration MM/YYYY",
      { pan: "number", cvv: "cvc", expiry: { member: "expiration", format: "MM/YYYY" }, nestUnder: "card" },
      { card: { number: CARD.pan, cvc: "123", expiration: `08/${YEAR}` } },
    ],
    [
      "card_number / cvv2 / expiry MM/YY, an extra member",
      { pan: "card_number", cvv: "cvv2", expiry: { member: "expiry", format: "MM/YY" }, extra: { v: 2 } },
      { v: 2, card_number: CARD.pan, cvv2: "123", expiry: `08/${YEAR % 100}` },
    ],
    [
      "pan / security_code / exp_month + exp_year",
      { pan: "pan", cvv: "security_code", expiry: { month: "exp_month", year: "exp_year" } },
      { pan: CARD.pan, security_code: "123", exp_month: "08", exp_year: String(YEAR) },
    ],
    [
      "expiration YYYY-MM",
      { pan: "pan", cvv: "cvv", expiry: { member: "expiration", format: "YYYY-MM" } },
      { pan: CARD.pan, cvv: "123", expiration: `${YEAR}-08` },
    ],
  ])("member names are configurable: %s", async (_name, shape, expected) => {
    expect(JSON.parse(secretsPlaintext(CARD, shape))).toStrictEqual(expected);
    const event = await new DotvaSimulator(publicPem, {}, { secretsShape: shape }).issue(CARD);
    expect(await decrypt(event.data.secrets_jwe)).toStrictEqual(expected);
  });
});

describe("delivery like Dotva: 200 acknowledges, anything else is retried with exponential back-off", () => {
  it("retries 500 and 503, stops at the 200, doubling the wait", async () => {
    const gw = await gateway([500, 503, 200]);
    const clock = recordingSleep();
    const dotva = new DotvaSimulator(publicPem, {}, { sleep: clock.sleep });
    const event = await dotva.issue(CARD);
    const delivery = await dotva.deliver(gw.url, event);
    expect(delivery).toEqual({ statuses: [500, 503, 200], delays: [100, 200], delivered: true });
    expect(clock.waited).toEqual([100, 200]);
    expect(gw.requests.map((r) => r.path)).toEqual(Array(3).fill("/webhooks/dotva"));
    expect(new Set(gw.requests.map((r) => r.body))).toEqual(new Set([dotva.body(event)]));
  });

  it("is bounded: gives up after the policy's retries, the wait capped", async () => {
    const gw = await gateway([400]);
    const clock = recordingSleep();
    const dotva = new DotvaSimulator(publicPem, {}, { sleep: clock.sleep, retry: { baseDelayMs: 1_000 } });
    const delivery = await dotva.deliver(gw.url, await dotva.issue(CARD), { retries: 4, maxDelayMs: 3_000 });
    expect(delivery).toEqual({
      statuses: [400, 400, 400, 400, 400],
      delays: [1_000, 2_000, 3_000, 3_000],
      delivered: false,
    });
    expect(gw.requests).toHaveLength(5);
  });

  it("retries when nobody answers", async () => {
    const clock = recordingSleep();
    const dotva = new DotvaSimulator(publicPem, {}, { sleep: clock.sleep });
    const delivery = await dotva.deliver("http://127.0.0.1:9", await dotva.issue(CARD), { retries: 1 });
    expect(delivery).toEqual({ statuses: [0, 0], delays: [100], delivered: false });
  });

  it("delivers duplicates on request, byte-identical", async () => {
    const gw = await gateway([200]);
    const dotva = new DotvaSimulator(publicPem);
    const delivery = await dotva.deliver(gw.url, await dotva.issue(CARD), { copies: 2 });
    expect(delivery).toEqual({ statuses: [200, 200], delays: [], delivered: true });
    expect(gw.requests[0]!.body).toBe(gw.requests[1]!.body);
  });

  it("sends no sender-check header unless configured (Dotva's document names none)", async () => {
    const gw = await gateway([200]);
    const plain = new DotvaSimulator(publicPem);
    await plain.deliver(gw.url, await plain.issue(CARD));
    const headers = Object.keys(gw.requests[0]!.headers).filter((h) => h.startsWith("x-"));
    expect(headers).toEqual([]);
    expect(gw.requests[0]!.headers["content-type"]).toBe("application/json");

    const signed = new DotvaSimulator(publicPem, {
      sharedSecret: { header: "x-dotva-secret", value: "s3cret" },
      hmac: { header: "x-dotva-signature", secret: "k" },
    });
    await signed.deliver(gw.url, await signed.issue(CARD));
    const req = gw.requests[1]!;
    expect(req.headers["x-dotva-secret"]).toBe("s3cret");
    const mac = execFileSync("openssl", ["dgst", "-sha256", "-hmac", "k", "-hex"], { input: req.body });
    expect(mac.toString()).toContain(String(req.headers["x-dotva-signature"]));
  });
});
