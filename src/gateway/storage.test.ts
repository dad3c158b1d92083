/**
 * One suite, both drivers: every repository behaviour the gateway relies on, run against SQLite and a
 * PostgreSQL this file starts itself.
 */
import { generateKeyPairSync } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { fingerprintForms } from "../core/crypto/fingerprint.js";
import { startPostgres, type TestPostgres } from "../tools/testing/postgres.js";
import { keyUsage } from "./key-usage.js";
import { PostgresRepository } from "./storage/postgres.js";
import type { DotvaCard, GatewayRepository, KnotEventRecord } from "./storage/repository.js";
import { SqliteRepository } from "./storage/sqlite.js";

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

/** A Knot event; its own session unless given, since one body is accepted per (event, session_id). */
const knot = (over: Partial<KnotEventRecord> = {}): KnotEventRecord => {
  const digest = over.digest ?? `d-${Math.random()}`;
  return {
    digest,
    event: "AUTHENTICATED",
    sessionId: `s-${digest}`,
    taskId: "25605",
    externalUserId: "user-1",
    merchantId: "10",
    merchantName: "Uber",
    cardId: "345",
    timestamp: 1_000,
    receivedAt: 1_000,
    ...over,
  };
};

/** The stored card a task of `user` may use: bound first, as the back office does. */
async function cardFor(repo: GatewayRepository, user: string, cardId: string, workspaceId = "12") {
  await repo.bindCard(user, workspaceId, cardId, 1);
  const found = await repo.findCardForTask(user, cardId);
  return found.kind === "card" ? found.card : undefined;
}

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
    expect((await cardFor(repo, "user-1", "345"))?.secretsJwe).toBe("h.k.i.c.t");
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
    expect((await cardFor(repo, "user-1", "345"))?.secretsJwe).toBe("h.k.i.c.v");
    const view = await repo.getCard(card().cardUuid);
    expect(view?.unusableReason).toBeUndefined();
    expect(view?.conflicts).toBe(2);
    // Usable again: the next differing redelivery does not replace it.
    expect((await repo.storeDotvaCard(card({ secretsJwe: "h.k.i.c.w" }), "digest-4")).outcome).toBe(
      "conflict",
    );
    expect((await cardFor(repo, "user-1", "345"))?.secretsJwe).toBe("h.k.i.c.v");
  });

  it("keeps a ciphertext-sized id of 30 digits exactly", async () => {
    const big = "123456789012345678901234567890";
    await repo.storeDotvaCard(card({ cardId: big, workspaceId: big }), "d");
    expect(await repo.getCard(card().cardUuid)).toMatchObject({ cardId: big, workspaceId: big });
    expect((await cardFor(repo, "user-1", big, big))?.workspaceId).toBe(big);
  });

  it("quarantines a delivery once per body and lists its reason and member names", async () => {
    const d = {
      digest: "q1",
      reason: "data.card_last4 must be 4 digits",
      event: "card.issued.secrets",
      cardUuid: "u-1",
      members: "event,data,data.card_last4",
      receivedAt: 5,
    };
    expect(await repo.quarantineDotva(d)).toBe(true);
    expect(await repo.quarantineDotva(d)).toBe(false);
    expect(
      await repo.quarantineDotva({
        digest: "q2",
        reason: "body is not a JSON object",
        members: "",
        receivedAt: 6,
      }),
    ).toBe(true);
    const list = await repo.listQuarantine(10);
    expect(list.map((q) => q.reason)).toEqual([
      "body is not a JSON object",
      "data.card_last4 must be 4 digits",
    ]);
    expect(list[1]).toMatchObject({
      event: "card.issued.secrets",
      cardUuid: "u-1",
      members: "event,data,data.card_last4",
      receivedAt: 5,
    });
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

  it("finds a task's card only through its user's binding, by (workspace_id, card_id)", async () => {
    await repo.storeDotvaCard(card(), "d");
    // Same card_id in another workspace, delivered earlier: the old lookup (card_id across workspaces,
    // oldest first) would have picked it.
    await repo.storeDotvaCard(card({ cardUuid: "other", workspaceId: "99", receivedAt: 1 }), "e");
    expect(await repo.findCardForTask("user-1", "345")).toEqual({ kind: "not_bound" });
    expect(await repo.bindCard("user-1", "12", "345", 5)).toBe("created");
    expect(await repo.bindCard("user-1", "12", "345", 6)).toBe("unchanged");
    const found = await repo.findCardForTask("user-1", "345");
    expect(found).toMatchObject({ kind: "card", card: { cardUuid: card().cardUuid, workspaceId: "12" } });
    // Another user naming the same card_id: not theirs, whatever Knot's webhook says.
    expect(await repo.findCardForTask("attacker", "345")).toEqual({ kind: "not_bound" });
    expect(await repo.bindCard("attacker", "12", "345", 7)).toBe("owned_by_another_user");
    // card_uuid is no longer a way in.
    await repo.bindCard("user-1", "12", card().cardUuid, 8);
    expect(await repo.findCardForTask("user-1", card().cardUuid)).toEqual({
      kind: "not_found",
      workspaceId: "12",
    });
    // The same user cannot own one card_id in two workspaces: Knot's card_id would not say which.
    expect(await repo.bindCard("user-1", "99", "345", 9)).toBe("card_id_ambiguous");
    // Two deliveries of one (workspace_id, card_id) under different card_uuids: never a guess.
    await repo.storeDotvaCard(card({ cardUuid: "dup" }), "f");
    expect(await repo.findCardForTask("user-1", "345")).toEqual({
      kind: "ambiguous",
      workspaceId: "12",
      count: 2,
    });
    expect(await repo.deleteCardholder("user-1")).toBe(true);
    expect(await repo.findCardForTask("user-1", "345")).toEqual({ kind: "not_bound" });
    expect(await repo.deleteCardholder("user-1")).toBe(false);
  });

  it("purges secrets_jwe after the TTL, or after the first send plus the grace period", async () => {
    await repo.storeDotvaCard(card({ cardUuid: "old", cardId: "1", receivedAt: 1_000 }), "a");
    await repo.storeDotvaCard(card({ cardUuid: "sent", cardId: "2", receivedAt: 50_000 }), "b");
    await repo.storeDotvaCard(card({ cardUuid: "fresh", cardId: "3", receivedAt: 50_000 }), "c");
    await repo.recordKnotEvent(
      knot({ taskId: "t2", cardId: "2", sendCard: { send: true, deadlineAt: 99_000 } }),
    );
    const [job] = await repo.claimJobs("W", 60_000, 70_000, 1);
    expect(job?.taskId).toBe("t2");
    expect(
      await repo.finishJob("t2", "W", { state: "sent", completedAt: 61_000, sentCardUuid: "sent" }),
    ).toBe(true);
    expect(await repo.getCard("sent")).toMatchObject({ firstSentAt: 61_000 });
    // A second send does not move the first-send time (the grace period counts from the first).
    await repo.recordKnotEvent(
      knot({ taskId: "t3", cardId: "2", sendCard: { send: true, deadlineAt: 99_000 } }),
    );
    await repo.claimJobs("W", 62_000, 70_000, 1);
    await repo.finishJob("t3", "W", { state: "sent", completedAt: 63_000, sentCardUuid: "sent" });
    expect(await repo.getCard("sent")).toMatchObject({ firstSentAt: 61_000 });
    // now = 70_000, TTL 60 s (received at or before 10_000), grace 5 s (first sent at or before 65_000).
    expect((await repo.purgeSecrets(10_000, 65_000, 70_000)).sort()).toEqual(["old", "sent"]);
    expect(await repo.purgeSecrets(10_000, 65_000, 70_001)).toEqual([]);
    for (const uuid of ["old", "sent"]) {
      expect(await repo.getCard(uuid)).toMatchObject({ secretsPurgedAt: 70_000 });
    }
    expect(await repo.getCard("fresh")).not.toHaveProperty("secretsPurgedAt");
    expect(await cardFor(repo, "u", "2")).toMatchObject({ secretsJwe: "", secretsPurgedAt: 70_000 });
    expect((await cardFor(repo, "u", "3"))?.secretsJwe).toBe("h.k.i.c.t");
    // A redelivery of a purged card does not bring its secrets back.
    expect(
      (await repo.storeDotvaCard(card({ cardUuid: "old", cardId: "1", receivedAt: 1_000 }), "a")).outcome,
    ).toBe("duplicate");
    expect(await repo.getCard("old")).toMatchObject({ secretsPurgedAt: 70_000 });
  });

  it("counts, per key, the stored cards whose secrets still need it, whatever spelling Dotva used", async () => {
    const key = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey;
    const other = fingerprintForms(generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey);
    const forms = fingerprintForms(key);
    const hex = forms.canonical.slice("sha256:".length);
    const [b64, b64url, colons, thumbprint] = forms.aliases;
    const spellings = [
      forms.canonical,
      `SHA-256:${hex.toUpperCase()}`,
      hex,
      b64!,
      b64url!,
      colons!,
      thumbprint!,
    ];
    for (const [i, keyFingerprint] of spellings.entries()) {
      await repo.storeDotvaCard(
        card({ cardUuid: `k${i}`, cardId: String(100 + i), keyFingerprint }),
        `k${i}`,
      );
    }
    await repo.storeDotvaCard(
      card({ cardUuid: "other", cardId: "200", keyFingerprint: other.canonical }),
      "o",
    );
    await repo.storeDotvaCard(card({ cardUuid: "purged", cardId: "201", receivedAt: 500 }), "p");
    // "purged" is the only card received at or before 600: it needs no key any more.
    await repo.purgeSecrets(600, 0, 700);
    await repo.recordKnotEvent(
      knot({ taskId: "ts", cardId: "100", sendCard: { send: true, deadlineAt: 99_000 } }),
    );
    await repo.claimJobs("W", 1_000, 9_000, 1);
    await repo.finishJob("ts", "W", { state: "sent", completedAt: 1_500, sentCardUuid: "k0" });

    const groups = await repo.storedSecretsByFingerprint();
    const usage = keyUsage(groups, { fingerprint: forms.canonical, jwkThumbprint: thumbprint! });
    expect(usage).toMatchObject({ fingerprint: forms.canonical, withSecrets: 7, unsent: 6 });
    expect([...usage.spellings].sort()).toEqual([...spellings].sort());
    // Without the thumbprint, a card Dotva named that way is not counted: the route says so.
    expect(keyUsage(groups, { fingerprint: forms.canonical })).toMatchObject({ withSecrets: 6, unsent: 5 });
    expect(keyUsage(groups, { fingerprint: other.canonical })).toMatchObject({ withSecrets: 1, unsent: 1 });
    const purgedKey = card().keyFingerprint as typeof forms.canonical;
    expect(keyUsage(groups, { fingerprint: purgedKey })).toMatchObject({ withSecrets: 0, unsent: 0 });
  });

  it("accepts one body per Knot (event, session_id): the same body again is a duplicate, another is refused", async () => {
    const first = knot({ digest: "a1", sessionId: "S", sendCard: { send: true, deadlineAt: 16_000 } });
    expect(await repo.recordKnotEvent(first)).toBe("recorded_with_job");
    expect(await repo.recordKnotEvent(first)).toBe("duplicate");
    // The replay: same event and session_id (so the same signature), edited task and card.
    const edited = knot({
      digest: "a2",
      sessionId: "S",
      taskId: "666",
      cardId: "victim-card",
      sendCard: { send: true, deadlineAt: 16_000 },
    });
    expect(await repo.recordKnotEvent(edited)).toBe("session_conflict");
    expect(await repo.getTask("666")).toBeUndefined();
    expect(await repo.claimJobs("W", 1_000, 5_000, 10)).toEqual([
      expect.objectContaining({ taskId: "25605" }),
    ]);
    // Another event of the same session is its own pair; events without a session_id are not paired.
    expect(await repo.recordKnotEvent(knot({ digest: "a3", sessionId: "S", event: "CARD_UPDATED" }))).toBe(
      "recorded",
    );
    const status = { event: "MERCHANT_STATUS_UPDATE", sessionId: undefined, taskId: undefined };
    expect(await repo.recordKnotEvent(knot({ ...status, digest: "m1" }))).toBe("recorded");
    expect(await repo.recordKnotEvent(knot({ ...status, digest: "m2" }))).toBe("recorded");
  });

  it("records unknown events once per digest", async () => {
    const e = {
      source: "dotva" as const,
      eventType: "card.frozen",
      digest: "x",
      members: "event",
      receivedAt: 1,
    };
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
      sessionId: "s-a",
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

  it("stores and deletes cardholder profiles", async () => {
    expect(await repo.putCardholder("u1", { a: 1 }, 1)).toBe("created");
    expect(await repo.putCardholder("u1", { a: 2 }, 2)).toBe("updated");
    expect(await repo.getCardholder("u1")).toEqual({ a: 2 });
    expect(await repo.getCardholder("u2")).toBeUndefined();
    expect(await repo.deleteCardholder("u1")).toBe(true);
    expect(await repo.getCardholder("u1")).toBeUndefined();
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

  it("a POST begun and never answered is known to the next owner (issue 17 crash window)", async () => {
    await repo.recordKnotEvent(knot({ sendCard: { send: true, deadlineAt: 20_000 } }));
    const [a] = await repo.claimJobs("A", 1_000, 5_000, 10);
    expect(a?.postStartedAt).toBeUndefined();
    expect(await repo.beginPost("25605", "B", 1_500, 7_000)).toBe(false);
    expect(await repo.beginPost("25605", "A", 1_500, 7_000)).toBe(true);
    // beginPost extended A's lease to 7 s: nobody can take the job at 6 s.
    expect(await repo.claimJobs("B", 6_000, 10_000, 10)).toEqual([]);
    const [b] = await repo.claimJobs("B", 7_001, 12_000, 10);
    expect(b).toMatchObject({ taskId: "25605", postStartedAt: 1_500 });
  });

  it("reads Knot's word on a task's card: silent, received (CARD_UPDATING/UPDATED), failed with its reason", async () => {
    expect(await repo.knotCardWord("25605")).toEqual({ kind: "silent" });
    await repo.recordKnotEvent(
      knot({ digest: "f", event: "CARD_FAILED", failureReason: "card expired", timestamp: 2_000 }),
    );
    expect(await repo.knotCardWord("25605")).toEqual({ kind: "failed", reason: "card expired" });
    await repo.recordKnotEvent(knot({ digest: "u", event: "CARD_UPDATING", timestamp: 1_500 }));
    expect(await repo.knotCardWord("25605")).toEqual({ kind: "received", event: "CARD_UPDATING" });
    expect(await repo.knotCardWord("other")).toEqual({ kind: "silent" });
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

describe("SQLite files at rest", () => {
  it("creates the database, its -wal and -shm 0600 in a 0700 directory, whatever the umask", async () => {
    const dir = join(tmp, "modes", "nested");
    const path = join(dir, "gw.sqlite");
    const umask = process.umask(0o000);
    let repo: SqliteRepository;
    try {
      repo = new SqliteRepository(path);
    } finally {
      process.umask(umask);
    }
    try {
      await repo.migrate();
      await repo.storeDotvaCard(card(), "d");
      const mode = (p: string) => statSync(p).mode & 0o777;
      expect(mode(dir)).toBe(0o700);
      for (const file of [path, `${path}-wal`, `${path}-shm`]) {
        expect(existsSync(file)).toBe(true);
        expect(mode(file).toString(8)).toBe("600");
      }
    } finally {
      await repo.close();
    }
  });

  it("narrows an existing world-readable database file to 0600", async () => {
    const path = join(tmp, "loose.sqlite");
    writeFileSync(path, "");
    chmodSync(path, 0o644);
    const repo = new SqliteRepository(path);
    try {
      await repo.migrate();
      expect((statSync(path).mode & 0o777).toString(8)).toBe("600");
    } finally {
      await repo.close();
    }
  });
});
