/**
 * Scale-out: two real custody processes (mTLS, the same file key store) behind one gateway whose
 * GATEWAY_CUSTODY_ADDRESS lists both (`ipv4:a:p,b:p`). Calls are spread over both; one custody is
 * killed with SIGKILL while send-card jobs are in flight, and every job still ends `sent` within its
 * deadline, each card reaching Knot exactly once.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeDevPki } from "../tools/dev-pki.js";
import {
  dotvaPublicKeyPem,
  type Proc,
  startCustodyProcess,
  startDevKnot,
  startGatewayProcess,
} from "../tools/processes.js";
import { DotvaSimulator, TEST_PANS } from "../tools/simulators/dotva-simulator.js";
import { authenticatedEvent, type KnotSimulator } from "../tools/simulators/knot-simulator.js";
import { expiryFromNow } from "../tools/testing/expiry.js";
import {
  bindCard,
  DOTVA_HMAC,
  DOTVA_SHARED,
  gatewayEnv,
  internalGet,
  KNOT_CLIENT_ID,
  KNOT_SECRET,
  putProfile,
  waitFor,
} from "../tools/testing/gateway-env.js";

const EXPIRY = expiryFromNow(20);
const CARD = { pan: TEST_PANS[0], cvv: "123", expiry_month: EXPIRY.month, expiry_year: String(EXPIRY.year) };
const CARDS = 40;
const tmp = mkdtempSync(join(tmpdir(), "gw-scale-"));
const pki = makeDevPki(join(tmp, "pki"));
const procs: Proc[] = [];
let knot: KnotSimulator;
let custodyA: { proc: Proc; address: string };
let custodyB: { proc: Proc; address: string };
let gw: { proc: Proc; url: string };

/** ReencryptForKnot calls a custody process has audited as OK so far. */
const okCalls = (p: Proc) =>
  p
    .output()
    .split("\n")
    .filter((line) => line.includes('"audit":"ReencryptForKnot"') && line.includes('"outcome":"OK"')).length;

beforeAll(async () => {
  knot = await startDevKnot(pki, KNOT_CLIENT_ID, KNOT_SECRET);
  const pins = [readFileSync(pki.knotThumbprint, "utf8").trim()];
  [custodyA, custodyB] = await Promise.all([
    startCustodyProcess(pki, pins, { CUSTODY_LOG_LEVEL: "info" }),
    startCustodyProcess(pki, pins, { CUSTODY_LOG_LEVEL: "info" }),
  ]);
  procs.push(custodyA.proc, custodyB.proc);
  gw = await startGatewayProcess({
    ...gatewayEnv({
      knotUrl: knot.url,
      custodyAddress: `ipv4:${custodyA.address},${custodyB.address}`,
      sqlitePath: join(tmp, "gw.sqlite"),
      tls: { ca: pki.caCert, cert: pki.gateway.cert, key: pki.gateway.key },
    }),
    GATEWAY_CUSTODY_SERVER_NAME: "localhost",
    KNOT_IP_ALLOWLIST: "127.0.0.1, ::1",
    SEND_CARD_POLL_MS: "20",
    SEND_CARD_DEADLINE_MS: "12000",
    SEND_CARD_ATTEMPT_TIMEOUT_MS: "2000",
    SEND_CARD_LEASE_MS: "3000",
    SEND_CARD_BACKOFF_CAP_MS: "300",
  });
  procs.push(gw.proc);
}, 90_000);

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  await knot?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe("two custody instances behind one gateway", () => {
  it("spreads calls over both and loses no send-card job when one is killed mid-run", async () => {
    const dotva = new DotvaSimulator(dotvaPublicKeyPem(pki.dotvaKeyDir), {
      sharedSecret: DOTVA_SHARED,
      hmac: DOTVA_HMAC,
    });
    const cards: { cardId: number; user: string; taskId: number }[] = [];
    for (let i = 0; i < CARDS; i++) {
      const event = await dotva.issue(CARD);
      const d = event.data as { card_id: number };
      const user = `user-${randomUUID()}`;
      expect((await putProfile(gw.url, user)).status).toBe(201);
      expect((await bindCard(gw.url, user, String(d.card_id), String(event.workspace_id))).status).toBe(201);
      expect((await dotva.deliver(gw.url, event)).statuses).toEqual([200]);
      cards.push({ cardId: d.card_id, user, taskId: 9_000 + i });
    }
    const hook = (c: (typeof cards)[number]) =>
      knot.sendWebhook(
        gw.url,
        authenticatedEvent({ taskId: c.taskId, cardId: c.cardId, externalUserId: c.user }),
      );

    // First half: both instances must have served calls before one is lost.
    const half = CARDS / 2;
    for (const c of cards.slice(0, half)) expect((await hook(c)).status).toBe(200);
    await waitFor(
      async () => (okCalls(custodyA.proc) > 0 && okCalls(custodyB.proc) > 0 ? true : undefined),
      15_000,
    );

    // Second half arrives while B dies: some of its jobs are in flight on B, the rest find it gone.
    const second = Promise.all(cards.slice(half).map(hook));
    custodyB.proc.child.kill("SIGKILL");
    for (const r of await second) expect(r.status).toBe(200);

    for (const c of cards) {
      const job = await waitFor(async () => {
        const t = await internalGet(gw.url, `/v1/tasks/${c.taskId}`);
        const j = t.body.job as { state: string } | undefined;
        return j && (j.state === "sent" || j.state === "failed") ? (j as Record<string, unknown>) : undefined;
      }, 20_000);
      expect(job).toMatchObject({ state: "sent" });
      expect(Number(job.completedAt)).toBeLessThanOrEqual(Number(job.deadlineAt));
      expect(knot.received.filter((r) => r.taskId === String(c.taskId))).toHaveLength(1);
    }
    // The survivor carried the calls after the kill.
    expect(okCalls(custodyA.proc)).toBeGreaterThan(0);
    expect(custodyB.proc.child.signalCode).toBe("SIGKILL");
  }, 90_000);
});
