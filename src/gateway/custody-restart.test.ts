/**
 * Custody killed (SIGKILL) and restarted on the same address while the gateway is under load (issue 17,
 * "Load and faults"): Dotva deliveries and Knot AUTHENTICATED webhooks keep arriving; the jobs that meet
 * the dead custody fail UNAVAILABLE and retry with back-off inside their deadline (Knot's 15 s window),
 * the gateway's channel reconnects to the new process, and every card reaches Knot exactly once, in
 * time (docs/design.md invariant 6). The Knot simulator counts every POST /card per task_id.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeDevPki } from "../tools/dev-pki.js";
import {
  dotvaPublicKeyPem,
  freePort,
  type Proc,
  startCustodyProcess,
  startDevKnot,
} from "../tools/processes.js";
import { authenticatedEvent, type KnotSimulator } from "../tools/simulators/knot-simulator.js";
import {
  bindToNewCardholder,
  dotvaDelivery,
  dotvaHeaders,
  gatewayConfig,
  injectInternal,
  KNOT_CLIENT_ID,
  KNOT_SECRET,
  TEST_CARD,
  waitFor,
} from "../tools/testing/gateway-env.js";
import { type RunningGateway, startGateway } from "./app.js";

const CARDS = 36;
const tmp = mkdtempSync(join(tmpdir(), "gw-custody-restart-"));
const pki = makeDevPki(join(tmp, "pki"));
const procs: Proc[] = [];
let knot: KnotSimulator;
let gw: RunningGateway;
let address: string;

/** Custody on a fixed address, so the restarted process is where the gateway's channel looks. */
async function startCustody(port: number): Promise<Proc> {
  const { proc } = await startCustodyProcess(pki, [readFileSync(pki.knotThumbprint, "utf8").trim()], {
    CUSTODY_LISTEN: `127.0.0.1:${port}`,
    // The same audit chain across the restart, as on a real host's volume.
    CUSTODY_AUDIT_FILE: join(tmp, "custody-audit.jsonl"),
  });
  procs.push(proc);
  return proc;
}

beforeAll(async () => {
  knot = await startDevKnot(pki, KNOT_CLIENT_ID, KNOT_SECRET);
  const port = await freePort();
  address = `127.0.0.1:${port}`;
  await startCustody(port);
  gw = await startGateway(
    gatewayConfig({
      knotUrl: knot.url,
      custodyAddress: address,
      sqlitePath: join(tmp, "gw.sqlite"),
      tls: { ca: pki.caCert, cert: pki.gateway.cert, key: pki.gateway.key },
      extra: {
        GATEWAY_CUSTODY_SERVER_NAME: "localhost",
        SEND_CARD_BACKOFF_CAP_MS: "500",
      },
    }),
  );
  const ready = await waitFor(async () => {
    const res = await gw.app.inject({ method: "GET", url: "/readyz" });
    return res.statusCode === 200 ? res.json() : undefined;
  }, 15_000);
  expect(ready).toMatchObject({ checks: { custody: true } });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await Promise.all(procs.map((p) => p.stop()));
  await knot?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const api = (method: "GET" | "PUT", url: string, payload?: unknown) =>
  injectInternal(gw, method, url, payload);

async function dotvaOverHttp(text: string): Promise<number> {
  const res = await fetch(`${gw.url}/webhooks/dotva`, {
    method: "POST",
    headers: dotvaHeaders(text),
    body: text,
  });
  return res.status;
}

interface Job {
  state: string;
  attempts: number;
  deadlineAt: number;
  completedAt: number;
  errorCode?: string;
}

describe("custody SIGKILLed and restarted on the same address during gateway load", () => {
  it("every send-card job completes within its deadline, none lost, none sent twice", async () => {
    const publicKey = dotvaPublicKeyPem(pki.dotvaKeyDir);
    const deliveries = await Promise.all(
      Array.from({ length: CARDS }, () => dotvaDelivery(publicKey, TEST_CARD)),
    );
    const tasks: { d: (typeof deliveries)[number]; user: string; taskId: number }[] = [];
    for (const [i, d] of deliveries.entries()) {
      tasks.push({ d, user: await bindToNewCardholder(gw, d.cardId), taskId: 60_000 + i });
    }
    // Dotva's deliveries arrive all at once; each card's AUTHENTICATED follows its own delivery.
    let custody = procs[0]!;
    let killedAt = 0;
    let restarted: Promise<Proc> | undefined;
    const flow = tasks.map(async (t, i) => {
      await new Promise((r) => setTimeout(r, i * 60));
      expect(await dotvaOverHttp(t.d.text)).toBe(200);
      const hook = authenticatedEvent({ taskId: t.taskId, cardId: t.d.cardId, externalUserId: t.user });
      expect((await knot.sendWebhook(gw.url, hook)).status).toBe(200);
      if (i === Math.floor(CARDS / 4)) {
        // Mid-run: SIGKILL, then a new process on the same port while webhooks keep coming.
        killedAt = Date.now();
        custody.child.kill("SIGKILL");
        await new Promise((r) => custody.child.once("exit", r));
        restarted = startCustody(Number(address.split(":")[1]));
        custody = await restarted;
      }
    });
    await Promise.all(flow);
    expect(killedAt).toBeGreaterThan(0);
    await restarted;

    const jobs = await Promise.all(
      tasks.map((t) =>
        waitFor(async () => {
          const j = (await api("GET", `/v1/tasks/${t.taskId}`)).body.job as Job | undefined;
          return j && (j.state === "sent" || j.state === "failed") ? j : undefined;
        }, 30_000),
      ),
    );
    for (const [i, job] of jobs.entries()) {
      expect(job, `task ${tasks[i]!.taskId}: ${JSON.stringify(job)}`).toMatchObject({ state: "sent" });
      expect(job.completedAt).toBeLessThanOrEqual(job.deadlineAt);
      expect(knot.cardPostsByTask.get(String(tasks[i]!.taskId))).toBe(1);
      expect(knot.received.filter((r) => r.taskId === String(tasks[i]!.taskId))).toHaveLength(1);
    }
    // The kill was felt: jobs met a dead custody and retried rather than all running after the restart.
    const metrics = (await gw.app.inject({ method: "GET", url: "/metrics" })).body;
    const retries = metrics
      .split("\n")
      .filter((l) => l.startsWith("gateway_send_card_retries_total") && l.includes('reason="custody_'))
      .reduce((n, l) => n + Number(l.split(" ").pop()), 0);
    expect(retries).toBeGreaterThan(0);
    expect(custody.child.exitCode).toBeNull();
  }, 60_000);
});
