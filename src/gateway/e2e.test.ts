/**
 * End to end over real processes: custody (mTLS, file key store, pinned Knot keys) and the gateway
 * (SQLite) are started as child processes; the Dotva and Knot simulators play the partners. Also crash
 * safety (kill -9 during a burst and during a send) and two gateways on one PostgreSQL.
 */
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rsaJwkThumbprint } from "../core/crypto/fingerprint.js";
import { makeDevPki } from "../tools/dev-pki.js";
import {
  dotvaPublicKeyPem,
  type Proc,
  startCustodyProcess,
  startDevKnot,
  startGatewayProcess,
  startTs,
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
  PROFILE,
  putProfile,
  waitFor,
} from "../tools/testing/gateway-env.js";
import { startPostgres, type TestPostgres } from "../tools/testing/postgres.js";

const EXPIRY = expiryFromNow(20);
// A two-digit year as Dotva's sample may send it; Knot receives MM/YYYY.
const CARD = {
  pan: TEST_PANS[2],
  cvv: "737",
  expiry_month: EXPIRY.month,
  expiry_year: String(EXPIRY.year % 100),
};
const tmp = mkdtempSync(join(tmpdir(), "gw-e2e-"));
const pki = makeDevPki(join(tmp, "pki"));
const rotatedKnotKey = generateKeyPairSync("rsa", { modulusLength: 2048 });
const rotatedPem = rotatedKnotKey.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const rotatedJwk = rotatedKnotKey.publicKey.export({ format: "jwk" });
const pins = [
  readFileSync(pki.knotThumbprint, "utf8").trim(),
  rsaJwkThumbprint({ n: rotatedJwk.n!, e: rotatedJwk.e! }),
];

let custody: { proc: Proc; address: string };
let knot: KnotSimulator;
let dotva: DotvaSimulator;
let taskSeq = 5_000;
const procs: Proc[] = [];

function env(
  extra: Record<string, string> = {},
  storage: { sqlitePath?: string; databaseUrl?: string } = {},
) {
  return {
    ...gatewayEnv({
      knotUrl: knot.url,
      custodyAddress: custody.address,
      sqlitePath: storage.sqlitePath ?? join(tmp, `gw-${randomUUID()}.sqlite`),
      ...(storage.databaseUrl ? { databaseUrl: storage.databaseUrl } : {}),
      tls: { ca: pki.caCert, cert: pki.gateway.cert, key: pki.gateway.key },
    }),
    // Every production check on (webhook signatures, Knot's source allow-list, mTLS to custody, a Dotva
    // sender check); development only because the Knot simulator is plain http, which production refuses.
    GATEWAY_ENV: "development",
    GATEWAY_LOG_LEVEL: "info",
    KNOT_IP_ALLOWLIST: "127.0.0.1, ::1",
    GATEWAY_CUSTODY_SERVER_NAME: "localhost",
    ...extra,
  };
}

async function gateway(extra: Record<string, string> = {}, storage = {}) {
  const g = await startGatewayProcess(env(extra, storage));
  procs.push(g.proc);
  return g;
}

beforeAll(async () => {
  knot = await startDevKnot(pki, KNOT_CLIENT_ID, KNOT_SECRET);
  custody = await startCustodyProcess(pki, pins);
  procs.push(custody.proc);
  dotva = new DotvaSimulator(dotvaPublicKeyPem(pki.dotvaKeyDir), {
    sharedSecret: DOTVA_SHARED,
    hmac: DOTVA_HMAC,
  });
}, 60_000);

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  await knot?.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function issueAndProfile(url: string) {
  const event = await dotva.issue(CARD);
  const d = event.data as { card_id: number; card_uuid: string };
  const user = `user-${randomUUID()}`;
  expect((await putProfile(url, user)).status).toBe(201);
  expect((await bindCard(url, user, String(d.card_id), String(event.workspace_id))).status).toBe(201);
  return { event, cardId: d.card_id, cardUuid: d.card_uuid, user, taskId: ++taskSeq };
}

const jobOf = (url: string, taskId: number, ms = 15_000) =>
  waitFor(async () => {
    const t = await internalGet(url, `/v1/tasks/${taskId}`);
    const job = t.body.job as { state: string } | undefined;
    return job && (job.state === "sent" || job.state === "failed")
      ? (t.body.job as Record<string, unknown>)
      : undefined;
  }, ms);

describe("end to end on SQLite", () => {
  let gw: Awaited<ReturnType<typeof gateway>>;
  beforeAll(async () => {
    gw = await gateway({ SEND_CARD_DEADLINE_MS: "4000", SEND_CARD_BACKOFF_CAP_MS: "500" });
  }, 60_000);

  it("is ready: storage and custody over mTLS", async () => {
    const res = await fetch(`${gw.url}/readyz`);
    expect(await res.json()).toEqual({ status: "ready", checks: { storage: true, custody: true } });
  });

  it("Dotva webhook (delivered 3 times) → stored once → AUTHENTICATED → card at Knot, decryptable and exact", async () => {
    const c = await issueAndProfile(gw.url);
    const delivery = await dotva.deliver(gw.url, c.event, { copies: 3 });
    expect(delivery.statuses).toEqual([200, 200, 200]);
    expect((await internalGet(gw.url, `/v1/cards/${c.cardUuid}`)).body).toMatchObject({
      cardLast4: "4444",
      conflicts: 0,
    });
    const t0 = Date.now();
    const hook = authenticatedEvent({ taskId: c.taskId, cardId: c.cardId, externalUserId: c.user });
    expect((await knot.sendWebhook(gw.url, hook)).status).toBe(200);
    // Knot's retry of the same webhook must not send the card twice.
    expect((await knot.sendWebhook(gw.url, hook)).body).toMatchObject({ outcome: "duplicate" });
    expect(await jobOf(gw.url, c.taskId)).toMatchObject({ state: "sent", knotStatus: 200 });
    const got = knot.received.filter((r) => r.taskId === String(c.taskId));
    expect(got).toHaveLength(1);
    expect(got[0]!.payload).toEqual({
      user: PROFILE,
      card: { number: CARD.pan, expiration: EXPIRY.mmYyyy, cvv: "737" },
    });
    // Well inside Knot's 15 s even on a loaded shared machine (typically tens of ms).
    expect(got[0]!.receivedAt - t0).toBeLessThan(5_000);
  });

  it("Knot 5xx, then success", async () => {
    const c = await issueAndProfile(gw.url);
    await dotva.deliver(gw.url, c.event);
    knot.faults.failNext = 2;
    await knot.sendWebhook(
      gw.url,
      authenticatedEvent({ taskId: c.taskId, cardId: c.cardId, externalUserId: c.user }),
    );
    expect(await jobOf(gw.url, c.taskId)).toMatchObject({ state: "sent" });
    expect(knot.received.some((r) => r.taskId === String(c.taskId))).toBe(true);
  });

  it("INVALID_JWE after Knot rotates its key, then a key refresh and success", async () => {
    const c = await issueAndProfile(gw.url);
    await dotva.deliver(gw.url, c.event);
    const fetches = knot.jwkRequests;
    knot.rotateKey(rotatedPem, "knot-rotated");
    await knot.sendWebhook(
      gw.url,
      authenticatedEvent({ taskId: c.taskId, cardId: c.cardId, externalUserId: c.user }),
    );
    expect(await jobOf(gw.url, c.taskId)).toMatchObject({ state: "sent" });
    expect(knot.rejected).toContainEqual({ taskId: String(c.taskId), code: "INVALID_JWE" });
    expect(knot.jwkRequests - fetches).toBe(1);
    expect(knot.received.find((r) => r.taskId === String(c.taskId))?.kid).toBe("knot-rotated");
  });

  it("deadline exhaustion is recorded as failed", async () => {
    const c = await issueAndProfile(gw.url);
    await dotva.deliver(gw.url, c.event);
    knot.faults.failNext = 1_000;
    try {
      await knot.sendWebhook(
        gw.url,
        authenticatedEvent({ taskId: c.taskId, cardId: c.cardId, externalUserId: c.user }),
      );
      expect(await jobOf(gw.url, c.taskId)).toMatchObject({
        state: "failed",
        errorCode: "DEADLINE_EXCEEDED",
      });
    } finally {
      knot.faults.failNext = 0;
    }
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/gateway_send_card_deadline_misses_total [1-9]/);
  });

  it("send_card false sends nothing and records why", async () => {
    const c = await issueAndProfile(gw.url);
    await dotva.deliver(gw.url, c.event);
    const before = knot.cardRequests;
    const hook = authenticatedEvent({
      taskId: c.taskId,
      cardId: c.cardId,
      externalUserId: c.user,
      sendCard: false,
    });
    await knot.sendWebhook(gw.url, hook);
    const t = await internalGet(gw.url, `/v1/tasks/${c.taskId}`);
    expect(t.body).toMatchObject({ sendCard: false });
    // Only stored jobs are ever sent, and none was recorded for this task.
    expect(t.body.job).toBeUndefined();
    expect(knot.cardRequests).toBe(before);
  });

  it("nothing secret in either process's output", () => {
    const out = procs.map((p) => p.output()).join("");
    expect(out.length).toBeGreaterThan(0);
    for (const s of [CARD.pan, KNOT_SECRET, DOTVA_SHARED.value]) expect(out).not.toContain(s);
    expect(out).not.toMatch(/eyJhbGciOiJSU0EtT0FFUC0yNTYi/);
  });
});

describe("start-up", () => {
  it("a gateway given an old custody variable name stops with exit code 2 naming the new one", async () => {
    const full: Record<string, string> = env();
    const { GATEWAY_CUSTODY_ADDRESS: address, ...rest } = full;
    const proc = startTs("src/gateway/main.ts", { ...rest, CUSTODY_ADDRESS: address! });
    const code = await new Promise<number | null>((resolve) => proc.child.once("exit", resolve));
    expect(code).toBe(2);
    expect(proc.output()).toContain(
      "CUSTODY_ADDRESS: the gateway no longer reads this name; rename it to GATEWAY_CUSTODY_ADDRESS",
    );
  });
});

describe("crash safety (kill -9)", () => {
  it("every Dotva delivery answered 200 before the kill is in storage after restart", async () => {
    const sqlitePath = join(tmp, "crash.sqlite");
    let gw = await gateway({}, { sqlitePath });
    const events = await Promise.all(Array.from({ length: 240 }, () => dotva.issue(CARD)));
    const acked: string[] = [];
    let next = 0;
    let killed = false;
    const sender = async () => {
      while (next < events.length) {
        const e = events[next++]!;
        const body = JSON.stringify(e);
        const status = await fetch(`${gw.url}/webhooks/dotva`, {
          method: "POST",
          headers: dotva.headers(body),
          body,
        }).then(
          (r) => r.status,
          () => 0,
        );
        if (status === 200) acked.push((e.data as { card_uuid: string }).card_uuid);
        if (!killed && acked.length >= 60) {
          killed = true;
          gw.proc.child.kill("SIGKILL");
        }
      }
    };
    await Promise.all(Array.from({ length: 16 }, sender));
    expect(killed).toBe(true);
    expect(acked.length).toBeGreaterThanOrEqual(60);
    expect(acked.length).toBeLessThan(events.length);
    gw = await gateway({}, { sqlitePath });
    for (const uuid of acked) {
      expect((await internalGet(gw.url, `/v1/cards/${uuid}`)).status).toBe(200);
    }
  });

  it("a send-card job interrupted by the kill completes after restart within its deadline", async () => {
    const sqlitePath = join(tmp, "crash-job.sqlite");
    const jobEnv = {
      SEND_CARD_DEADLINE_MS: "12000",
      SEND_CARD_LEASE_MS: "1000",
      SEND_CARD_ATTEMPT_TIMEOUT_MS: "800",
    };
    let gw = await gateway(jobEnv, { sqlitePath });
    const c = await issueAndProfile(gw.url);
    await dotva.deliver(gw.url, c.event);
    knot.faults.delayMs = 3_000;
    const before = knot.cardRequests;
    try {
      await knot.sendWebhook(
        gw.url,
        authenticatedEvent({ taskId: c.taskId, cardId: c.cardId, externalUserId: c.user }),
      );
      await waitFor(async () => (knot.cardRequests > before ? true : undefined), 5_000, 5);
      gw.proc.child.kill("SIGKILL");
      await new Promise((r) => gw.proc.child.once("exit", r));
    } finally {
      knot.faults.delayMs = 0;
    }
    gw = await gateway(jobEnv, { sqlitePath });
    const job = await jobOf(gw.url, c.taskId);
    expect(job).toMatchObject({ state: "sent" });
    expect(job.attempts).toBeGreaterThanOrEqual(2);
    expect(Number(job.completedAt)).toBeLessThanOrEqual(Number(job.deadlineAt));
  }, 40_000);
});

describe("two gateways on one PostgreSQL", () => {
  let pg: TestPostgres;
  beforeAll(async () => {
    pg = await startPostgres();
  }, 60_000);
  afterAll(() => pg?.stop());

  it("send each card exactly once, even when Knot's webhook reaches both", async () => {
    const databaseUrl = pg.createDatabase("twogw");
    const a = await gateway({ SEND_CARD_POLL_MS: "20" }, { databaseUrl });
    const b = await gateway({ SEND_CARD_POLL_MS: "20" }, { databaseUrl });
    const cards = await Promise.all(Array.from({ length: 12 }, () => issueAndProfile(a.url)));
    await Promise.all(cards.map((c, i) => dotva.deliver(i % 2 ? a.url : b.url, c.event)));
    await Promise.all(
      cards.flatMap((c) => {
        const hook = authenticatedEvent({ taskId: c.taskId, cardId: c.cardId, externalUserId: c.user });
        return [knot.sendWebhook(a.url, hook), knot.sendWebhook(b.url, hook)];
      }),
    );
    for (const c of cards) expect(await jobOf(a.url, c.taskId)).toMatchObject({ state: "sent" });
    for (const c of cards) {
      expect(knot.received.filter((r) => r.taskId === String(c.taskId))).toHaveLength(1);
    }
  }, 60_000);
});
