/**
 * Knot hanging (issue 17, "Load and faults"): the Knot simulator accepts the connection and never
 * answers `GET /jwe/key` or `POST /card`. Each attempt's timeout fires (KNOT_TIMEOUT), the job retries
 * while an attempt still fits and ends DEADLINE_EXCEEDED inside its window, as docs/gateway.md
 * "Send-card jobs" says; meanwhile the gateway's event loop stays responsive: /healthz over the real
 * listener answers quickly and the loop's delay (perf_hooks) stays small.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { authenticatedEvent, type KnotSimulator } from "../tools/simulators/knot-simulator.js";
import { type FakeCustody, startFakeCustody } from "../tools/testing/fake-custody.js";
import {
  gatewayConfig,
  injectInternal,
  readyCard,
  startTestKnot,
  TEST_CARD,
  waitFor,
} from "../tools/testing/gateway-env.js";
import { type RunningGateway, startGateway } from "./app.js";

const DEADLINE_MS = 4_000;
const ATTEMPT_MS = 800;
// No attempt outlives the deadline by design; this is only a timer firing late on a loaded machine.
const LATE_TIMER_MS = 1_000;
// Half a job's hang: a loop blocked by the hang would answer /healthz only after the whole of it.
const HEALTH_MS = DEADLINE_MS / 2;
let knot: KnotSimulator;
let custody: FakeCustody;
let gw: RunningGateway;
let taskSeq = 80_000;

beforeAll(async () => {
  knot = await startTestKnot();
  custody = await startFakeCustody();
  gw = await startGateway(
    gatewayConfig({
      knotUrl: knot.url,
      custodyAddress: custody.address,
      extra: {
        SEND_CARD_DEADLINE_MS: String(DEADLINE_MS),
        SEND_CARD_ATTEMPT_TIMEOUT_MS: String(ATTEMPT_MS),
        SEND_CARD_LEASE_MS: "1000",
        SEND_CARD_BACKOFF_BASE_MS: "20",
        SEND_CARD_BACKOFF_CAP_MS: "100",
      },
    }),
  );
}, 30_000);

afterAll(async () => {
  knot.faults.hangCard = false;
  knot.faults.hangKey = false;
  knot?.releaseHangs();
  await gw?.close();
  await knot?.close();
  await custody?.close();
});

const api = (method: "GET" | "PUT", url: string, payload?: unknown) =>
  injectInternal(gw, method, url, payload);

async function readyTask() {
  const { cardId, user } = await readyCard(gw, custody.publicKeyPem, TEST_CARD);
  return authenticatedEvent({ taskId: ++taskSeq, cardId, externalUserId: user });
}

interface Job {
  state: string;
  errorCode?: string;
  errorMessage?: string;
  attempts: number;
  deadlineAt: number;
  completedAt?: number;
}

/**
 * Runs `tasks` AUTHENTICATED webhooks against a hung Knot and, while their jobs hang, times /healthz
 * over the listener and the event loop's delay; returns the finished jobs and the measurements.
 */
async function underHang(tasks: number) {
  const hooks = await Promise.all(Array.from({ length: tasks }, readyTask));
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  for (const h of hooks) expect((await knot.sendWebhook(gw.url, h)).status).toBe(200);
  const health: number[] = [];
  const finished: Job[] = [];
  const pending = hooks.map((h) =>
    waitFor(async () => {
      const j = (await api("GET", `/v1/tasks/${h.task_id}`)).body.job as Job | undefined;
      return j && (j.state === "sent" || j.state === "failed") ? j : undefined;
    }, DEADLINE_MS + 5_000).then((j) => finished.push(j)),
  );
  while (finished.length < hooks.length) {
    const t0 = performance.now();
    const res = await fetch(`${gw.url}/healthz`, { signal: AbortSignal.timeout(5_000) });
    health.push(performance.now() - t0);
    expect(res.status).toBe(200);
    await new Promise((r) => setTimeout(r, 50));
  }
  await Promise.all(pending);
  loop.disable();
  return { finished, health, loopMedianMs: loop.percentile(50) / 1e6 };
}

describe("Knot accepts the connection and never answers", () => {
  // First: no key is cached yet (a fetch that fails caches nothing), so every attempt meets the hang.
  it("GET /jwe/key: the key fetch times out on each attempt, the job ends DEADLINE_EXCEEDED without posting", async () => {
    knot.faults.hangKey = true;
    const posts = knot.cardRequests;
    const keyRequests = knot.jwkRequests;
    try {
      const r = await underHang(3);
      for (const job of r.finished) {
        expect(job, JSON.stringify(job)).toMatchObject({ state: "failed", errorCode: "DEADLINE_EXCEEDED" });
        expect(job.errorMessage).toContain("GET /jwe/key: no answer in time");
        expect(job.completedAt!, JSON.stringify(job)).toBeLessThanOrEqual(job.deadlineAt + LATE_TIMER_MS);
      }
      // Retried: more than one key fetch per job's window, and nothing reached /card.
      expect(knot.jwkRequests - keyRequests).toBeGreaterThan(1);
      expect(knot.cardRequests).toBe(posts);
      expect(Math.max(...r.health), `healthz ms: ${r.health.map(Math.round)}`).toBeLessThan(HEALTH_MS);
      expect(r.loopMedianMs).toBeLessThan(100);
    } finally {
      knot.faults.hangKey = false;
      knot.releaseHangs();
    }
  }, 30_000);

  it("POST /card: every attempt times out, the job ends DEADLINE_EXCEEDED inside its window, /healthz stays quick", async () => {
    knot.faults.hangCard = true;
    const before = knot.cardRequests;
    try {
      const r = await underHang(4);
      expect(knot.cardRequests - before).toBeGreaterThanOrEqual(4);
      for (const job of r.finished) {
        expect(job, JSON.stringify(job)).toMatchObject({ state: "failed", errorCode: "DEADLINE_EXCEEDED" });
        expect(job.errorMessage).toContain("KNOT_TIMEOUT");
        expect(job.errorMessage).toContain("POST /card");
        // Each attempt is bounded by SEND_CARD_ATTEMPT_TIMEOUT_MS, so the job ends by its deadline.
        expect(job.completedAt!, JSON.stringify(job)).toBeLessThanOrEqual(job.deadlineAt + LATE_TIMER_MS);
      }
      // Hung sockets cost no CPU: the health route is answered at once throughout, and the loop's
      // typical delay stays near its 10 ms sampling resolution (the median, as one GC pause or a
      // neighbour on a shared machine makes the maximum meaningless).
      expect(r.health.length).toBeGreaterThanOrEqual(5);
      expect(Math.max(...r.health), `healthz ms: ${r.health.map(Math.round)}`).toBeLessThan(HEALTH_MS);
      expect(r.loopMedianMs).toBeLessThan(100);
    } finally {
      knot.faults.hangCard = false;
      knot.releaseHangs();
    }
  }, 30_000);

  it("once Knot answers again, the next card goes through", async () => {
    const h = await readyTask();
    expect((await knot.sendWebhook(gw.url, h)).status).toBe(200);
    const job = await waitFor(async () => {
      const j = (await api("GET", `/v1/tasks/${h.task_id}`)).body.job as Job | undefined;
      return j && j.state !== "running" && j.state !== "pending" ? j : undefined;
    }, DEADLINE_MS + 5_000);
    expect(job).toMatchObject({ state: "sent" });
  }, 20_000);
});
