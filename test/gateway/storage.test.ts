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
  cardId: "345",
  workspaceId: "12",
  cardLast4: "4242",
  cardBin: "424242",
  keyFingerprint: `sha256:${"a".repeat(64)}`,
  secretsJwe: "h.k.i.c.t",
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
  cardId: "345",
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
    expect(await repo.storeDotvaCard(card(), "digest-1")).toEqual({ outcome: "created", differing: [] });
    expect((await repo.storeDotvaCard(card({ receivedAt: 2_000 }), "digest-1")).outcome).toBe("duplicate");
    expect(
      await repo.storeDotvaCard(card({ cardLast4: "1111", secretsJwe: "h.k.i.c.u" }), "digest-2"),
    ).toEqual({ outcome: "conflict", differing: ["card_last4", "secrets_jwe"] });
    const view = await repo.getCard(card().cardUuid);
    expect(view).toMatchObject({ cardLast4: "4242", workspaceId: "12", receivedAt: 1_000, conflicts: 1 });
    expect(view).not.toHaveProperty("secretsJwe");
    expect((await repo.findCardForKnot("345"))?.secretsJwe).toBe("h.k.i.c.t");
  });

  it("a redelivery replaces secrets custody refused, and only those", async () => {
    await repo.storeDotvaCard(card(), "digest-1");
    await repo.markCardUnusable(card().cardUuid, "JWE_DECRYPT_FAILED");
    expect(await repo.getCard(card().cardUuid)).toMatchObject({ unusableReason: "JWE_DECRYPT_FAILED" });
    // Same secrets again: nothing to gain, still a conflict (here: only card_bin differs).
    expect((await repo.storeDotvaCard(card({ cardBin: "411111" }), "digest-2")).outcome).toBe("conflict");
    expect(await repo.storeDotvaCard(card({ secretsJwe: "h.k.i.c.v" }), "digest-3")).toEqual({
      outcome: "replaced",
      differing: ["secrets_jwe"],
    });
    expect((await repo.findCardForKnot("345"))?.secretsJwe).toBe("h.k.i.c.v");
    const view = await repo.getCard(card().cardUuid);
    expect(view?.unusableReason).toBeUndefined();
    expect(view?.conflicts).toBe(2);
    // Usable again: the next differing redelivery does not replace it.
    expect((await repo.storeDotvaCard(card({ secretsJwe: "h.k.i.c.w" }), "digest-4")).outcome).toBe(
      "conflict",
    );
    expect((await repo.findCardForKnot("345"))?.secretsJwe).toBe("h.k.i.c.v");
  });

  it("keeps a ciphertext-sized id of 30 digits exactly", async () => {
    const big = "123456789012345678901234567890";
    await repo.storeDotvaCard(card({ cardId: big, workspaceId: big }), "d");
    expect(await repo.getCard(card().cardUuid)).toMatchObject({ cardId: big, workspaceId: big });
    expect((await repo.findCardForKnot(big))?.workspaceId).toBe(big);
  });

  it("quarantines a delivery once per body and lists it without the body", async () => {
    const d = {
      digest: "q1",
      reason: "data.card_last4 must be 4 digits",
      event: "card.issued.secrets",
      cardUuid: "u-1",
      body: '{"marker":"BODYMARK"}',
      receivedAt: 5,
    };
    expect(await repo.quarantineDotva(d)).toBe(true);
    expect(await repo.quarantineDotva(d)).toBe(false);
    expect(
      await repo.quarantineDotva({
        digest: "q2",
        reason: "body is not a JSON object",
        body: "x",
        receivedAt: 6,
      }),
    ).toBe(true);
    const list = await repo.listQuarantine(10);
    expect(list.map((q) => q.reason)).toEqual([
      "body is not a JSON object",
      "data.card_last4 must be 4 digits",
    ]);
    expect(list[1]).toMatchObject({ event: "card.issued.secrets", cardUuid: "u-1", receivedAt: 5 });
    expect(JSON.stringify(list)).not.toContain("BODYMARK");
    expect(await repo.listQuarantine(1)).toHaveLength(1);
  });

  it("concurrent writes all commit (group commit) and each gets its own outcome", async () => {
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        repo.storeDotvaCard(card({ cardUuid: `uuid-${i % 25}`, cardId: `c${i % 25}` }), "same"),
      ),
    );
    expect(outcomes.filter((o) => o.outcome === "created")).toHaveLength(25);
    expect(outcomes.filter((o) => o.outcome === "duplicate")).toHaveLength(25);
    for (let i = 0; i < 25; i++) expect(await repo.getCard(`uuid-${i}`)).toBeDefined();
  });

  it("finds a card for Knot by Dotva card_id, then by card_uuid", async () => {
    await repo.storeDotvaCard(card(), "d");
    expect((await repo.findCardForKnot("345"))?.cardUuid).toBe(card().cardUuid);
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

  it("keeps per-merchant availability by type, platform and SDK version (null too), newest wins", async () => {
    const status = (
      digest: string,
      status: string,
      timestamp: number,
      platform = "ios",
      sdk: string | null = "1.0.0",
    ) =>
      knot({
        digest,
        event: "MERCHANT_STATUS_UPDATE",
        sessionId: undefined,
        taskId: undefined,
        timestamp,
        availability: { type: "card_switcher", platform, status, sdk },
      });
    await repo.recordKnotEvent(status("m1", "UP", 1));
    await repo.recordKnotEvent(status("m2", "DOWN", 3));
    await repo.recordKnotEvent(status("m3", "UP", 2));
    await repo.recordKnotEvent(status("m4", "UP", 2, "web"));
    await repo.recordKnotEvent(status("m5", "UP", 4, "ios", "2.0.0"));
    await repo.recordKnotEvent(status("m6", "DOWN", 4, "ios", null));
    await repo.recordKnotEvent(status("m7", "UP", 4, "visionos", null));
    const merchants = await repo.listMerchants();
    expect(merchants.map((m) => [m.platform, m.sdk, m.status])).toEqual([
      ["ios", null, "DOWN"],
      ["ios", "1.0.0", "DOWN"],
      ["ios", "2.0.0", "UP"],
      ["visionos", null, "UP"],
      ["web", "1.0.0", "UP"],
    ]);
  });

  it("keeps transaction events with UPDATED_TRANSACTIONS_AVAILABLE's ids, per user", async () => {
    const tx = (digest: string, event: string, ids: string[], user = "user-1") =>
      knot({
        digest,
        event,
        sessionId: undefined,
        taskId: undefined,
        externalUserId: user,
        merchantId: "36",
        merchantName: "Uber Eats",
        transactions: { ids },
      });
    await repo.recordKnotEvent(tx("t1", "NEW_TRANSACTIONS_AVAILABLE", []));
    await repo.recordKnotEvent(tx("t2", "UPDATED_TRANSACTIONS_AVAILABLE", ["123abc456def", "789ghi012jkl"]));
    await repo.recordKnotEvent(tx("t3", "NEW_TRANSACTIONS_AVAILABLE", [], "user-2"));
    expect(await repo.recordKnotEvent(tx("t2", "UPDATED_TRANSACTIONS_AVAILABLE", ["x"]))).toBe("duplicate");
    const events = await repo.listTransactionEvents("user-1", 10);
    expect(events.map((e) => [e.event, e.transactionIds])).toEqual([
      ["UPDATED_TRANSACTIONS_AVAILABLE", ["123abc456def", "789ghi012jkl"]],
      ["NEW_TRANSACTIONS_AVAILABLE", []],
    ]);
    expect(events[0]).toMatchObject({
      merchantId: "36",
      merchantName: "Uber Eats",
      externalUserId: "user-1",
    });
    expect(await repo.listTransactionEvents(undefined, 10)).toHaveLength(3);
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
