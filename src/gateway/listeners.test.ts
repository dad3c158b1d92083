/**
 * Listener-level configuration: source-IP allowlists on both webhook routes, the internal API on its own
 * port, development-only unsigned Knot webhooks, and the body size limit.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../tools/processes.js";
import { type FakeCustody, startFakeCustody } from "../tools/testing/fake-custody.js";
import { gatewayConfig, TEST_INTERNAL_TOKEN } from "../tools/testing/gateway-env.js";
import { type RunningGateway, startGateway } from "./app.js";

const tmp = mkdtempSync(join(tmpdir(), "gw-listen-"));
let custody: FakeCustody;
const running: RunningGateway[] = [];

beforeAll(async () => {
  custody = await startFakeCustody();
});
afterAll(async () => {
  await Promise.all(running.map((g) => g.close()));
  await custody.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function start(extra: Record<string, string>) {
  const g = await startGateway(
    gatewayConfig({
      knotUrl: "http://127.0.0.1:9",
      custodyAddress: custody.address,
      sqlitePath: join(tmp, `${running.length}.sqlite`),
      extra,
    }),
  );
  running.push(g);
  return g;
}

const post = (
  url: string,
  body: string,
  headers: Record<string, string> = { "content-type": "application/json" },
) =>
  fetch(url, { method: "POST", headers, body }).then(async (r) => ({
    status: r.status,
    body: (await r.json()) as { error?: { code: string }; outcome?: string },
  }));

describe("listeners", () => {
  it("source-IP allowlists refuse other addresses with 403 before anything else", async () => {
    const g = await start({ DOTVA_IP_ALLOWLIST: "10.0.0.0/8", KNOT_IP_ALLOWLIST: "10.0.0.0/8, ::1" });
    const dotva = await post(`${g.url}/webhooks/dotva`, "{}");
    expect(dotva).toMatchObject({ status: 403, body: { error: { code: "SOURCE_NOT_ALLOWED" } } });
    expect((await post(`${g.url}/webhooks/knot`, "{}")).status).toBe(403);
  });

  it("an allowlist containing the caller lets it through to the next check", async () => {
    const g = await start({ DOTVA_IP_ALLOWLIST: "127.0.0.0/8", KNOT_IP_ALLOWLIST: "127.0.0.1" });
    expect((await post(`${g.url}/webhooks/dotva`, "{}")).body.error?.code).toBe("SENDER_UNAUTHENTICATED");
    expect((await post(`${g.url}/webhooks/knot`, "{}")).body.error?.code).toBe("KNOT_SIGNATURE_INVALID");
  });

  it("serves the internal API and metrics on GATEWAY_INTERNAL_PORT only", async () => {
    const g = await start({ GATEWAY_INTERNAL_PORT: String(await freePort()) });
    expect(g.internalUrl).not.toBe(g.url);
    const auth = { authorization: `Bearer ${TEST_INTERNAL_TOKEN}` };
    expect((await fetch(`${g.internalUrl}/v1/merchants`, { headers: auth })).status).toBe(200);
    expect((await fetch(`${g.url}/v1/merchants`, { headers: auth })).status).toBe(404);
    expect((await fetch(`${g.url}/metrics`)).status).toBe(404);
    expect((await fetch(`${g.internalUrl}/metrics`)).status).toBe(200);
    expect((await fetch(`${g.url}/readyz`)).status).toBe(200);
  });

  it("accepts unsigned Knot webhooks only when verification is switched off (development)", async () => {
    const g = await start({ KNOT_WEBHOOK_VERIFY: "false" });
    const body = JSON.stringify({
      event: "CARD_UPDATED",
      task_id: 1,
      session_id: "s",
      data: { card_id: "c" },
      timestamp: Date.now(),
    });
    expect(await post(`${g.url}/webhooks/knot`, body)).toMatchObject({
      status: 200,
      body: { outcome: "recorded" },
    });
  });

  it("is not ready while custody is unreachable", async () => {
    const g = await startGateway(
      gatewayConfig({
        knotUrl: "http://127.0.0.1:9",
        custodyAddress: `127.0.0.1:${await freePort()}`,
        sqlitePath: join(tmp, "nocustody.sqlite"),
      }),
    );
    running.push(g);
    const res = await fetch(`${g.url}/readyz`);
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ status: "not_ready", checks: { storage: true, custody: false } });
    expect((await fetch(`${g.url}/healthz`)).status).toBe(200);
  });

  it("refuses bodies over the limit with 413", async () => {
    const g = await start({});
    const big = JSON.stringify({ type: "x", pad: "a".repeat(70_000) });
    expect(await post(`${g.url}/webhooks/dotva`, big)).toMatchObject({
      status: 413,
      body: { error: { code: "BODY_TOO_LARGE" } },
    });
  });
});
