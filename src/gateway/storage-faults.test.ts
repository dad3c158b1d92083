/**
 * Storage that cannot write (issue 17, "Load and faults"): a partner webhook is answered
 * 503 STORAGE_UNAVAILABLE (both partners retry any non-2xx), never 200 for something that was not
 * committed; the gateway stays up; and once storage is back the partner's redelivery is accepted and
 * processed exactly once (docs/design.md invariants 5 and 6).
 *
 * Two ways: a repository refusing writes at the storage interface (each write path of both webhook
 * routes), and a real file system: the SQLite database on a tmpfs with a size limit, filled to the last
 * byte (SQLITE_FULL), then given room again.
 */
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { authenticatedEvent, type KnotSimulator } from "../tools/simulators/knot-simulator.js";
import { type FakeCustody, startFakeCustody } from "../tools/testing/fake-custody.js";
import {
  dotvaDelivery,
  gatewayConfig,
  injectDotva,
  injectInternal,
  readyCard,
  startTestKnot,
  TEST_CARD,
  waitFor,
} from "../tools/testing/gateway-env.js";
import { type RunningGateway, startGateway } from "./app.js";

const STORAGE_UNAVAILABLE = {
  error: { code: "STORAGE_UNAVAILABLE", message: expect.stringContaining("retry") },
};
const tmp = mkdtempSync(join(tmpdir(), "gw-storage-faults-"));
let knot: KnotSimulator;
let custody: FakeCustody;
let taskSeq = 90_000;

beforeAll(async () => {
  knot = await startTestKnot();
  custody = await startFakeCustody();
}, 30_000);

afterAll(async () => {
  await knot?.close();
  await custody?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const gateway = (sqlitePath: string) =>
  startGateway(gatewayConfig({ knotUrl: knot.url, custodyAddress: custody.address, sqlitePath }));

async function healthy(gw: RunningGateway) {
  const res = await fetch(`${gw.url}/healthz`, { signal: AbortSignal.timeout(2_000) });
  return res.status;
}

async function jobOf(gw: RunningGateway, taskId: number) {
  return waitFor(async () => {
    const j = (await injectInternal(gw, "GET", `/v1/tasks/${taskId}`)).body.job as
      | { state: string }
      | undefined;
    return j && (j.state === "sent" || j.state === "failed") ? j : undefined;
  }, 15_000);
}

/** A stored card bound to a fresh cardholder, and the AUTHENTICATED Knot would send for it. */
async function readyTask(gw: RunningGateway) {
  const { cardId, user } = await readyCard(gw, custody.publicKeyPem, TEST_CARD);
  const taskId = ++taskSeq;
  return { taskId, hook: authenticatedEvent({ taskId, cardId, externalUserId: user }) };
}

describe("a repository that refuses writes (injected at the storage interface)", () => {
  let gw: RunningGateway;
  beforeAll(async () => {
    gw = await gateway(join(tmp, "injected.sqlite"));
  });
  afterAll(() => gw?.close());
  afterEach(() => vi.restoreAllMocks());

  const readOnly = () =>
    Object.assign(new Error("attempt to write a readonly database"), { code: "SQLITE_READONLY" });

  it.each([
    [
      "a card.issued.secrets",
      "storeDotvaCard",
      async () => (await dotvaDelivery(custody.publicKeyPem, TEST_CARD)).text,
    ],
    [
      "a delivery to quarantine",
      "quarantineDotva",
      async () => JSON.stringify({ data: { card_uuid: randomUUID() } }),
    ],
    [
      "an unknown Dotva event",
      "recordUnknownEvent",
      async () => JSON.stringify({ event: `card.other.${randomUUID()}`, workspace_id: 1, data: {} }),
    ],
  ] as const)(
    "Dotva: %s is answered 503 STORAGE_UNAVAILABLE, then accepted once on redelivery",
    async (_what, method, body) => {
      const text = await body();
      const write = vi.spyOn(gw.repo, method).mockRejectedValue(readOnly());
      const refused = await injectDotva(gw, text);
      expect(refused).toMatchObject({ status: 503, body: STORAGE_UNAVAILABLE });
      expect(write).toHaveBeenCalledTimes(1);
      // Nothing of the cause reaches the partner.
      expect(JSON.stringify(refused.body)).not.toMatch(/readonly|SQLITE/i);
      expect(await healthy(gw)).toBe(200);
      write.mockRestore();
      const accepted = await injectDotva(gw, text);
      expect(accepted.status).toBe(200);
      expect(accepted.body.outcome).not.toBe("duplicate");
      // Dotva's next retry of the same bytes changes nothing.
      const again = await injectDotva(gw, text);
      expect(again.status).toBe(200);
      if (method === "storeDotvaCard") expect(again.body.outcome).toBe("duplicate");
    },
  );

  it("Knot: an AUTHENTICATED that was not stored is answered 503 and starts no job; Knot's retry sends the card once", async () => {
    const { taskId, hook } = await readyTask(gw);
    const write = vi.spyOn(gw.repo, "recordKnotEvent").mockRejectedValue(readOnly());
    expect(await knot.sendWebhook(gw.url, hook)).toMatchObject({ status: 503, body: STORAGE_UNAVAILABLE });
    expect(await healthy(gw)).toBe(200);
    expect((await injectInternal(gw, "GET", `/v1/tasks/${taskId}`)).status).toBe(404);
    write.mockRestore();
    expect(await knot.sendWebhook(gw.url, hook)).toMatchObject({
      status: 200,
      body: { outcome: "recorded_with_job" },
    });
    expect(await jobOf(gw, taskId)).toMatchObject({ state: "sent" });
    expect(knot.cardPostsByTask.get(String(taskId))).toBe(1);
    // Knot's third delivery of the same webhook is a duplicate: no second job, no second card.
    expect((await knot.sendWebhook(gw.url, hook)).body).toMatchObject({ outcome: "duplicate" });
    expect(knot.cardPostsByTask.get(String(taskId))).toBe(1);
  });
});

describe("disk full: SQLite on a tmpfs with a size limit", () => {
  const mountPoint = join(tmp, "small-disk");
  const dbPath = join(mountPoint, "db", "gateway.sqlite");
  const filler = join(mountPoint, "filler");
  let mounted = false;
  let gw: RunningGateway | undefined;

  beforeAll(() => {
    mkdirSync(mountPoint);
    // Tests run as root in this project's CI and containers; a file mode cannot stop root, a full file
    // system does.
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", mountPoint]);
    mounted = true;
  });
  afterAll(async () => {
    await gw?.close();
    if (mounted) execFileSync("umount", ["-l", mountPoint]);
  });

  /** Writes zeros until the file system refuses (ENOSPC). */
  function fillDisk(): void {
    const fd = openSync(filler, "w");
    const chunk = Buffer.alloc(4096);
    try {
      for (;;) writeSync(fd, chunk);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
    } finally {
      closeSync(fd);
    }
  }

  it("answers 503 while the disk is full, loses nothing it acknowledged, and takes the redeliveries once after", async () => {
    gw = await gateway(dbPath);
    const { taskId, hook } = await readyTask(gw);
    fillDisk();

    const acked: string[] = [];
    const refused: { uuid: string; text: string }[] = [];
    // Some deliveries may still fit in pages SQLite already holds; the disk runs out within a few.
    for (let i = 0; i < 200 && refused.length < 5; i++) {
      const d = await dotvaDelivery(custody.publicKeyPem, TEST_CARD);
      const res = await injectDotva(gw, d.text);
      if (res.status === 200) acked.push(d.cardUuid);
      else {
        expect(res).toMatchObject({ status: 503, body: STORAGE_UNAVAILABLE });
        refused.push({ uuid: d.cardUuid, text: d.text });
      }
    }
    expect(refused).toHaveLength(5);
    expect(await knot.sendWebhook(gw.url, hook)).toMatchObject({ status: 503, body: STORAGE_UNAVAILABLE });
    expect(await healthy(gw)).toBe(200);
    expect(knot.cardPostsByTask.get(String(taskId))).toBeUndefined();

    // Room again: the partners' retries are accepted, each exactly once.
    unlinkSync(filler);
    for (const r of refused) {
      expect((await injectDotva(gw, r.text)).body).toMatchObject({ outcome: "created" });
      expect((await injectDotva(gw, r.text)).body).toMatchObject({ outcome: "duplicate" });
    }
    expect(await knot.sendWebhook(gw.url, hook)).toMatchObject({
      status: 200,
      body: { outcome: "recorded_with_job" },
    });
    expect(await jobOf(gw, taskId)).toMatchObject({ state: "sent" });
    expect(knot.cardPostsByTask.get(String(taskId))).toBe(1);

    // Durable: a new process on the same file finds every card it ever acknowledged.
    await gw.close();
    gw = await gateway(dbPath);
    for (const uuid of [...acked, ...refused.map((r) => r.uuid)]) {
      expect((await injectInternal(gw, "GET", `/v1/cards/${uuid}`)).status).toBe(200);
    }
  }, 60_000);
});
