/**
 * SEND_CARD_CONCURRENCY on every path that starts a send-card job (issue 17, "Limits"): a job leased by
 * its AUTHENTICATED webhook, every retry, and the jobs a (re)started gateway finds in storage, alone and
 * all at once. The Knot simulator counts the POST /card in flight; the most it ever saw must not exceed
 * the setting. (Dotva deliveries and the internal API start no job: a task whose card has not arrived
 * fails CARD_NOT_FOUND, docs/gateway.md "Send-card jobs".)
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
import { SqliteRepository } from "./storage/sqlite.js";

const CONCURRENCY = 3;
const tmp = mkdtempSync(join(tmpdir(), "gw-conc-"));
const sqlitePath = join(tmp, "gw.sqlite");
let knot: KnotSimulator;
let custody: FakeCustody;
let gw: RunningGateway | undefined;
let taskSeq = 70_000;

const config = () =>
  gatewayConfig({
    knotUrl: knot.url,
    custodyAddress: custody.address,
    sqlitePath,
    extra: {
      SEND_CARD_CONCURRENCY: String(CONCURRENCY),
      SEND_CARD_POLL_MS: "50",
      SEND_CARD_BACKOFF_BASE_MS: "20",
      SEND_CARD_BACKOFF_CAP_MS: "100",
    },
  });

beforeAll(async () => {
  knot = await startTestKnot();
  // Knot takes a while over each card, so jobs overlap and a missing limit shows.
  knot.faults.delayMs = 120;
  custody = await startFakeCustody();
  gw = await startGateway(config());
}, 30_000);

afterAll(async () => {
  await gw?.close();
  await knot?.close();
  await custody?.close();
  rmSync(tmp, { recursive: true, force: true });
});

interface Ready {
  readonly cardId: string;
  readonly user: string;
  readonly taskId: number;
}

async function readyCards(g: RunningGateway, n: number): Promise<Ready[]> {
  const out: Ready[] = [];
  for (let i = 0; i < n; i++) {
    const { cardId, user } = await readyCard(g, custody.publicKeyPem, TEST_CARD);
    out.push({ cardId, user, taskId: ++taskSeq });
  }
  return out;
}

const hook = (c: Ready) => authenticatedEvent({ taskId: c.taskId, cardId: c.cardId, externalUserId: c.user });

async function allSent(g: RunningGateway, cards: readonly Ready[]) {
  for (const c of cards) {
    const job = await waitFor(async () => {
      const j = (await injectInternal(g, "GET", `/v1/tasks/${c.taskId}`)).body.job as
        | { state: string }
        | undefined;
      return j && (j.state === "sent" || j.state === "failed") ? j : undefined;
    }, 20_000);
    expect(job).toMatchObject({ state: "sent" });
    // Posted exactly once, 503s aside: the limiter queues jobs, it never runs one twice.
    expect(knot.received.filter((r) => r.taskId === String(c.taskId))).toHaveLength(1);
  }
}

describe(`SEND_CARD_CONCURRENCY=${CONCURRENCY}`, () => {
  it("bounds jobs started by a flood of AUTHENTICATED webhooks", async () => {
    const g = gw!;
    const cards = await readyCards(g, 18);
    knot.maxCardsInFlight = 0;
    const answers = await Promise.all(cards.map((c) => knot.sendWebhook(g.url, hook(c))));
    for (const a of answers) expect(a.status).toBe(200);
    await allSent(g, cards);
    expect(knot.maxCardsInFlight).toBeLessThanOrEqual(CONCURRENCY);
    // The limit is reached, not merely respected by a workload too small to hit it.
    expect(knot.maxCardsInFlight).toBe(CONCURRENCY);
  }, 40_000);

  it("bounds retries: Knot answering 503 keeps every job in its slot", async () => {
    const g = gw!;
    const cards = await readyCards(g, 9);
    knot.maxCardsInFlight = 0;
    const posts = knot.cardRequests;
    knot.faults.failNext = 12;
    try {
      await Promise.all(cards.map((c) => knot.sendWebhook(g.url, hook(c))));
      await allSent(g, cards);
    } finally {
      knot.faults.failNext = 0;
    }
    expect(knot.cardRequests - posts).toBe(cards.length + 12);
    expect(knot.maxCardsInFlight).toBeLessThanOrEqual(CONCURRENCY);
  }, 40_000);

  it("bounds a restart's leftover jobs together with new webhooks", async () => {
    const leftovers = await readyCards(gw!, 9);
    const fresh = await readyCards(gw!, 9);
    await gw!.close();
    gw = undefined;
    // Jobs recorded and never run (the instance that leased them died): pending in storage.
    const repo = new SqliteRepository(sqlitePath);
    await repo.migrate();
    const now = Date.now();
    for (const c of leftovers) {
      const outcome = await repo.recordKnotEvent({
        digest: `leftover-${c.taskId}`,
        event: "AUTHENTICATED",
        sessionId: `leftover-${c.taskId}`,
        taskId: String(c.taskId),
        externalUserId: c.user,
        cardId: c.cardId,
        timestamp: now,
        receivedAt: now,
        sendCard: { send: true, deadlineAt: now + 15_000 },
      });
      expect(outcome).toBe("recorded_with_job");
    }
    await repo.close();
    knot.maxCardsInFlight = 0;
    gw = await startGateway(config());
    const g = gw;
    const answers = await Promise.all(fresh.map((c) => knot.sendWebhook(g.url, hook(c))));
    for (const a of answers) expect(a.status).toBe(200);
    await allSent(g, [...leftovers, ...fresh]);
    expect(knot.maxCardsInFlight).toBeLessThanOrEqual(CONCURRENCY);
    expect(knot.maxCardsInFlight).toBe(CONCURRENCY);
  }, 40_000);
});
