/**
 * One suite, both drivers: every repository behaviour the gateway relies on, run against SQLite and a
 * PostgreSQL this file starts itself.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { PostgresRepository } from "../../src/gateway/storage/postgres.js";
import type { DotvaCard, GatewayRepository, KnotEventRecord } from "../../src/gateway/storage/repository.js";
import { SqliteRepository } from "../../src/gateway/storage/sqlite.js";
import { startPostgres, type TestPostgres } from "../support/postgres.js";

let pg: TestPostgres;
const tmp = mkdtempSync(join(tmpdir(), "gw-store-"));
let dbCount = 0;

beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);
afterAll(() => {
  pg?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const drivers: Record<string, () => GatewayRepository> = {
  sqlite: () => new SqliteRepository(join(tmp, `db${++dbCount}.sqlite`)),
  postgres: () => new PostgresRepository(pg.createDatabase(`t${++dbCount}`)),
};

const card = (over: Partial<DotvaCard> = {}): DotvaCard => ({
  cardUuid: "0b9b3a52-8f0e-4c5b-9a57-5f1b0d7a1c01",
  cardId: "card_001",
  workspaceId: "ws_1",
  cardLast4: "4242",
  cardBin: "424242",
  keyFingerprint: `sha256:${"a".repeat(64)}`,
  secretsJwe: "h.k.i.c.t",
  eventCreatedAt: "2026-11-23T09:00:00Z",
  receivedAt: 1_000,
  ...over,
});

const knot = (over: Partial<KnotEventRecord> = {}): KnotEventRecord => ({
  digest: `d-${Math.random()}`,
  event: "AUTHENTICATED",
  sessionId: "s1",
  taskId: "25605",
  externalUserId: "user-1",
  merchantId: "10",
  merchantName: "Uber",
  cardId: "card_001",
  timestamp: 1_000,
  receivedAt: 1_000,
  body: "{}",
  ...over,
});

describe.each(Object.keys(drivers))("repository on %s", (driver) => {
  let repo: GatewayRepository;
  beforeEach(async () => {
    repo = drivers[driver]!();
    await repo.migrate();
    return async () => repo.close();
  });

  it("migrations are idempotent", async () => {
    await repo.migrate();
    await expect(repo.ping()).resolves.toBeUndefined();
  });

  it("stores a card once; same content is a duplicate, different content a recorded conflict", async () => {
    expect(await repo.storeDotvaCard(card(), "digest-1")).toBe("created");
    expect(await repo.storeDotvaCard(card({ receivedAt: 2_000 }), "digest-1")).toBe("duplicate");
    expect(await repo.storeDotvaCard(card({ cardLast4: "1111" }), "digest-2")).toBe("conflict");
    const view = await repo.getCard(card().cardUuid);
    expect(view).toMatchObject({ cardLast4: "4242", receivedAt: 1_000, conflicts: 1 });
    expect(view).not.toHaveProperty("secretsJwe");
  });

  it("concurrent writes all commit (group commit) and each gets its own outcome", async () => {
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        repo.storeDotvaCard(card({ cardUuid: `uuid-${i % 25}`, cardId: `c${i % 25}` }), "same"),
      ),
    );
    expect(outcomes.filter((o) => o === "created")).toHaveLength(25);
    expect(outcomes.filter((o) => o === "duplicate")).toHaveLength(25);
    for (let i = 0; i < 25; i++) expect(await repo.getCard(`uuid-${i}`)).toBeDefined();
  });

  it("finds a card for Knot by Dotva card_id, then by card_uuid", async () => {
    await repo.storeDotvaCard(card(), "d");
    expect((await repo.findCardForKnot("card_001"))?.cardUuid).toBe(card().cardUuid);
    expect((await repo.findCardForKnot(card().cardUuid))?.secretsJwe).toBe("h.k.i.c.t");
    expect(await repo.findCardForKnot("nope")).toBeUndefined();
  });

  it("records unknown events once per digest", async () => {
    const e = { source: "dotva" as const, eventType: "card.frozen", digest: "x", body: "{}", receivedAt: 1 };
    await repo.recordUnknownEvent(e);
    await repo.recordUnknownEvent(e);
    expect(await repo.countUnknownEvents("dotva")).toBe(1);
    expect(await repo.countUnknownEvents("knot")).toBe(0);
  });

  it("deduplicates Knot events and keeps the newest state per task", async () => {
    const first = knot({ digest: "a", sendCard: { send: true, deadlineAt: 16_000 } });
    expect(await repo.recordKnotEvent(first)).toBe("recorded_with_job");
    expect(await repo.recordKnotEvent(first)).toBe("duplicate");
    await repo.recordKnotEvent(
      knot({ digest: "b", event: "CARD_FAILED", failureReason: "card expired", timestamp: 3_000 }),
    );
    // Older retry arriving late must not move the state back.
    await repo.recordKnotEvent(knot({ digest: "c", event: "CARD_UPDATING", timestamp: 2_000 }));
    const task = await repo.getTask("25605");
    expect(task).toMatchObject({
      state: "CARD_FAILED",
      failureReason: "card expired",
      sessionId: "s1",
      merchantName: "Uber",
      sendCard: true,
      job: { state: "pending", deadlineAt: 16_000, attempts: 0 },
    });
  });

  it("send_card false records why and creates no job", async () => {
    await repo.recordKnotEvent(knot({ sendCard: { send: false } }));
    const task = await repo.getTask("25605");
    expect(task?.sendCard).toBe(false);
    expect(task?.sendCardNote).toMatch(/send_card=false/);
    expect(task?.job).toBeUndefined();
  });

  it("keeps per-merchant availability by type and platform, newest wins", async () => {
    const status = (digest: string, status: string, timestamp: number, platform = "ios") =>
      knot({
        digest,
        event: "MERCHANT_STATUS_UPDATE",
        sessionId: undefined,
        taskId: undefined,
        timestamp,
        availability: { type: "card_switcher", platform, status },
      });
    await repo.recordKnotEvent(status("m1", "UP", 1));
    await repo.recordKnotEvent(status("m2", "DOWN", 3));
    await repo.recordKnotEvent(status("m3", "UP", 2));
    await repo.recordKnotEvent(status("m4", "UP", 2, "web"));
    const merchants = await repo.listMerchants();
    expect(merchants.map((m) => [m.platform, m.status])).toEqual([
      ["ios", "DOWN"],
      ["web", "UP"],
    ]);
  });

  it("stores cardholder profiles", async () => {
    expect(await repo.putCardholder("u1", { a: 1 }, 1)).toBe("created");
    expect(await repo.putCardholder("u1", { a: 2 }, 2)).toBe("updated");
    expect(await repo.getCardholder("u1")).toEqual({ a: 2 });
    expect(await repo.getCardholder("u2")).toBeUndefined();
  });

  it("leases jobs: one owner at a time, reclaimable after the lease, finish only by the owner", async () => {
    await repo.recordKnotEvent(knot({ sendCard: { send: true, deadlineAt: 20_000 } }));
    const a = await repo.claimJobs("A", 1_000, 5_000, 10);
    expect(a.map((j) => [j.taskId, j.attempts])).toEqual([["25605", 1]]);
    expect(await repo.claimJobs("B", 2_000, 6_000, 10)).toEqual([]);
    const b = await repo.claimJobs("B", 5_001, 9_000, 10);
    expect(b).toHaveLength(1);
    expect(await repo.renewLease("25605", "A", 10_000)).toBe(false);
    expect(await repo.finishJob("25605", "A", { state: "sent", completedAt: 6_000 })).toBe(false);
    expect(await repo.finishJob("25605", "B", { state: "sent", completedAt: 6_000, knotStatus: 200 })).toBe(
      true,
    );
    expect((await repo.getTask("25605"))?.job).toMatchObject({ state: "sent", attempts: 2, knotStatus: 200 });
    expect(await repo.claimJobs("C", 30_000, 40_000, 10)).toEqual([]);
  });

  it("a job can be leased in the webhook's own transaction; a second AUTHENTICATED adds no job", async () => {
    const claimBy = { owner: "W", leaseUntil: 5_000 };
    expect(
      await repo.recordKnotEvent(
        knot({ digest: "x1", sendCard: { send: true, deadlineAt: 20_000, claimBy } }),
      ),
    ).toBe("recorded_with_job");
    expect(
      await repo.recordKnotEvent(
        knot({ digest: "x2", sendCard: { send: true, deadlineAt: 21_000, claimBy } }),
      ),
    ).toBe("recorded");
    expect(await repo.claimJobs("other", 4_000, 9_000, 10)).toEqual([]);
    expect(await repo.finishJob("25605", "W", { state: "sent", completedAt: 4_500 })).toBe(true);
    expect((await repo.getTask("25605"))?.job).toMatchObject({
      state: "sent",
      attempts: 1,
      deadlineAt: 20_000,
    });
  });

  it("concurrent claimers never share a job", async () => {
    for (let i = 0; i < 40; i++) {
      await repo.recordKnotEvent(knot({ taskId: `t${i}`, sendCard: { send: true, deadlineAt: 99_000 } }));
    }
    const claims = await Promise.all(
      Array.from({ length: 8 }, (_, i) => repo.claimJobs(`w${i}`, 1_000, 50_000, 7)),
    );
    const ids = claims.flat().map((j) => j.taskId);
    expect(ids.length).toBe(40);
    expect(new Set(ids).size).toBe(40);
  });

  it("expires jobs whose deadline passed unheld", async () => {
    await repo.recordKnotEvent(knot({ sendCard: { send: true, deadlineAt: 2_000 } }));
    expect(await repo.expireJobs(1_500)).toEqual([]);
    expect(await repo.claimJobs("A", 2_500, 9_000, 10)).toEqual([]);
    expect(await repo.expireJobs(2_500)).toEqual(["25605"]);
    expect((await repo.getTask("25605"))?.job).toMatchObject({
      state: "failed",
      errorCode: "DEADLINE_EXCEEDED",
    });
  });
});
