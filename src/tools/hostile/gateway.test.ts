/**
 * A catalogue of hostile requests to the gateway, driven with inject(): bodies far over the limit,
 * unsigned, mis-signed and replayed Knot webhooks, and every route that takes a body sent a content
 * type other than JSON. Each row asserts the HTTP status and error code, that nothing was recorded
 * (the task or card is unknown to the internal API afterwards) and that the log holds no card data or
 * signature.
 */
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningGateway, startGateway } from "../../gateway/app.js";
import { type FakeCustody, startFakeCustody } from "../testing/fake-custody.js";
import { gatewayConfig, KNOT_SECRET, TEST_INTERNAL_TOKEN } from "../testing/gateway-env.js";

const FIXTURES = join(import.meta.dirname, "../../../testdata/fixtures/partners");
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8");

let gw: RunningGateway;
let custody: FakeCustody;
let logText = "";
const AUTH = { authorization: `Bearer ${TEST_INTERNAL_TOKEN}` };

beforeAll(async () => {
  custody = await startFakeCustody();
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logText += chunk.toString("utf8");
      done();
    },
  });
  gw = await startGateway(
    gatewayConfig({
      // Nothing here may reach Knot: a closed port makes any attempt fail loudly in the log.
      knotUrl: "http://127.0.0.1:9",
      custodyAddress: custody.address,
      extra: { DOTVA_SHARED_SECRET: "", DOTVA_HMAC_SECRET: "", DOTVA_IP_ALLOWLIST: "127.0.0.1/32" },
    }),
    { logger: pino({ level: "debug" }, sink) },
  );
}, 30_000);

afterAll(async () => {
  await gw?.close();
  await custody?.close();
});

const NOW = String(Date.now());
const current = (body: string) => body.replaceAll('"timestamp": 1710864923198', `"timestamp": ${NOW}`);

function knotSignature(body: string, contentType = "application/json"): string {
  const parsed = JSON.parse(body) as { event?: string; session_id?: string };
  const pairs = [
    `Content-Length|${Buffer.byteLength(body)}`,
    `Content-Type|${contentType}`,
    "Encryption-Type|HMAC-SHA256",
    `event|${parsed.event}`,
    ...(parsed.session_id !== undefined ? [`session_id|${parsed.session_id}`] : []),
  ];
  return createHmac("sha256", KNOT_SECRET).update(pairs.join("|")).digest("base64");
}

function postKnot(body: string, signature: string | undefined) {
  return gw.app.inject({
    method: "POST",
    url: "/webhooks/knot",
    headers: {
      "content-type": "application/json",
      "encryption-type": "HMAC-SHA256",
      ...(signature === undefined ? {} : { "knot-signature": signature }),
    },
    payload: body,
  });
}

async function taskKnown(taskId: number): Promise<boolean> {
  const res = await gw.internal.inject({ method: "GET", url: `/v1/tasks/${taskId}`, headers: AUTH });
  return res.statusCode === 200;
}

const TEN_MB = 10 * 1024 * 1024;

describe("hostile requests to the gateway", () => {
  it.each([
    ["/webhooks/dotva", "POST", {}],
    ["/webhooks/knot", "POST", {}],
    ["/v1/cardholders/u-hostile", "PUT", AUTH],
  ] as const)("a 10 MB body to %s is refused with 413 BODY_TOO_LARGE", async (url, method, headers) => {
    const big = `{"pad":"${"4242424242424242".repeat(TEN_MB / 16)}"}`;
    const app = url.startsWith("/v1") ? gw.internal : gw.app;
    const res = await app.inject({
      method,
      url,
      headers: { ...headers, "content-type": "application/json" },
      payload: big,
    });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ error: { code: "BODY_TOO_LARGE" } });
    expect(logText).not.toContain("4242424242424242");
  });

  it("refuses an unsigned Knot webhook (401 KNOT_SIGNATURE_INVALID) and records nothing", async () => {
    const body = current(fixture("knot-card-updated.json"));
    const taskId = (JSON.parse(body) as { task_id: number }).task_id;
    const res = await postKnot(body, undefined);
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ error: { code: "KNOT_SIGNATURE_INVALID" } });
    expect(await taskKnown(taskId)).toBe(false);
  });

  it("refuses a Knot webhook signed for another body length, and never logs the signature", async () => {
    const body = current(fixture("knot-card-updated.json"));
    const signature = knotSignature(`${body} `);
    const res = await postKnot(body, signature);
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ error: { code: "KNOT_SIGNATURE_INVALID" } });
    expect(logText).not.toContain(signature);
  });

  it("refuses a replayed Knot webhook whose timestamp is outside the window (the document's own, 2024)", async () => {
    const body = fixture("knot-card-updated.json");
    const res = await postKnot(body, knotSignature(body));
    expect(res.statusCode).toBe(401);
    expect(res.json()).toMatchObject({ error: { code: "KNOT_TIMESTAMP_OUT_OF_WINDOW" } });
    expect(await taskKnown((JSON.parse(body) as { task_id: number }).task_id)).toBe(false);
  });

  it("refuses a replayed signature on an edited body of the same length (409 KNOT_WEBHOOK_REPLAYED)", async () => {
    const body = current(fixture("knot-card-updated.json")).replace(
      "fb5aa994-ed1c-4c3e-b29a-b2a53222e584",
      "fb5aa994-ed1c-4c3e-b29a-b2a5322e0001",
    );
    const signature = knotSignature(body);
    expect((await postKnot(body, signature)).statusCode).toBe(200);
    const taskId = (JSON.parse(body) as { task_id: number }).task_id;
    // The probe the other rows rely on: an accepted webhook makes its task known.
    expect(await taskKnown(taskId)).toBe(true);
    const edited = body.replace(
      `"task_id": ${taskId}`,
      `"task_id": ${String(taskId).replace(/.$/, (d) => String((Number(d) + 1) % 10))}`,
    );
    expect(edited).not.toBe(body);
    expect(Buffer.byteLength(edited)).toBe(Buffer.byteLength(body));
    const res = await postKnot(edited, signature);
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ error: { code: "KNOT_WEBHOOK_REPLAYED" } });
  });

  const BODY_ROUTES = [
    ["POST", "/webhooks/dotva", "app"],
    ["POST", "/webhooks/knot", "app"],
    ["PUT", "/v1/cardholders/u-hostile", "internal"],
    ["PUT", "/v1/cardholders/u-hostile/cards/1", "internal"],
  ] as const;
  const WRONG_TYPES = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
    "application/octet-stream",
  ];
  it.each(
    BODY_ROUTES.flatMap(([method, url, which]) =>
      WRONG_TYPES.map((type) => [method, url, which, type] as const),
    ),
  )(
    "%s %s with Content-Type %s is refused with 415 UNSUPPORTED_MEDIA_TYPE",
    async (method, url, which, type) => {
      const app = which === "app" ? gw.app : gw.internal;
      const res = await app.inject({
        method,
        url,
        headers: { ...AUTH, "content-type": type },
        payload: '{"event":"card.issued.secrets"}',
      });
      expect(res.statusCode).toBe(415);
      expect(res.json()).toMatchObject({ error: { code: "UNSUPPORTED_MEDIA_TYPE" } });
    },
  );
});

describe("slow senders against the real listener", () => {
  it("cuts off a client that trickles its body (slowloris) once GATEWAY_REQUEST_TIMEOUT_MS has passed", async () => {
    const slow = await startGateway(
      gatewayConfig({
        knotUrl: "http://127.0.0.1:9",
        custodyAddress: custody.address,
        extra: {
          DOTVA_SHARED_SECRET: "",
          DOTVA_HMAC_SECRET: "",
          DOTVA_IP_ALLOWLIST: "127.0.0.1/32",
          GATEWAY_REQUEST_TIMEOUT_MS: "1500",
        },
      }),
      { logger: pino({ level: "silent" }) },
    );
    const { port } = new URL(slow.url);
    const socket = connect(Number(port), "127.0.0.1");
    const started = Date.now();
    let answer = "";
    socket.on("data", (chunk) => {
      answer += chunk.toString("latin1");
    });
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.write(
      "POST /webhooks/dotva HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
    );
    // One byte every 200 ms would take 200 s to finish the body; the server must not wait for it.
    const drip = setInterval(() => socket.writable && socket.write("{"), 200);
    try {
      const outcome = await Promise.race([
        closed.then(() => "closed"),
        new Promise((resolve) => setTimeout(() => resolve("still open"), 8_000)),
      ]);
      expect(outcome).toBe("closed");
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      clearInterval(drip);
      socket.destroy();
      await slow.close();
    }
  });
});
