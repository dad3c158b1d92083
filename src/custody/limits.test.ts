/**
 * custody's explicit limits, against the real listener on 127.0.0.1: a call cannot outlive
 * CUSTODY_MAX_CALL_DEADLINE_MS whatever deadline the client sends (or none); connections beyond
 * CUSTODY_MAX_CONNECTIONS and handshakes beyond CUSTODY_MAX_HANDSHAKES are closed on arrival while an
 * established client keeps working; a connection that never finishes its TLS handshake is closed after
 * CUSTODY_HANDSHAKE_TIMEOUT_MS; the health service answers only the ReencryptForKnot callers unless
 * CUSTODY_ALLOW_HEALTH says otherwise.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { type Socket, connect as tcpConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { CardCustodyClient } from "../contract/generated/custody/v1/CardCustody.js";
import {
  baseEnv,
  custodyClient,
  healthCheck,
  healthClient,
  type LogCapture,
  reencrypt,
  reencryptRequest,
  rsaKeyPair,
  startTestCustody,
  tempDir,
  testPki,
} from "../tools/testing/custody-harness.js";
import { STORE_FACTORIES, withGet } from "../tools/testing/stores.js";
import { ConfigError, loadConfig } from "./config.js";
import type { RunningCustody } from "./server.js";

const pki = testPki();
const knotJwk = readFileSync(pki.knotJwk, "utf8").trim();
const dotva = rsaKeyPair();
const fileStore = STORE_FACTORIES.find((f) => f.name === "file")!;

const request = (id: string) => reencryptRequest(dotva.publicKey, knotJwk, id);

/** Resolves when the server closes `socket`, with the milliseconds since `since`. */
function closedAfter(socket: Socket, since: number): Promise<number> {
  return new Promise((resolve) => {
    socket.on("error", () => undefined);
    socket.once("close", () => resolve(Date.now() - since));
  });
}

/** A TCP connection that sends nothing: a TLS handshake that never starts. */
async function silentSocket(port: number): Promise<Socket> {
  const socket = tcpConnect(port, "127.0.0.1");
  socket.on("error", () => undefined);
  await new Promise((resolve) => socket.once("connect", resolve));
  return socket;
}

describe("configuration of the limits", () => {
  it("refuses a default deadline above the cap, naming the variable", () => {
    expect(() =>
      loadConfig(baseEnv(pki, { CUSTODY_DEFAULT_DEADLINE_MS: "6000", CUSTODY_MAX_CALL_DEADLINE_MS: "5000" })),
    ).toThrow(ConfigError);
    expect(() =>
      loadConfig(baseEnv(pki, { CUSTODY_DEFAULT_DEADLINE_MS: "6000", CUSTODY_MAX_CALL_DEADLINE_MS: "5000" })),
    ).toThrow(/^CUSTODY_DEFAULT_DEADLINE_MS: must not exceed CUSTODY_MAX_CALL_DEADLINE_MS/);
    expect(() => loadConfig(baseEnv(pki, { CUSTODY_MAX_CONNECTIONS: "0" }))).toThrow(
      /^CUSTODY_MAX_CONNECTIONS:/,
    );
  });

  it("opens the health service to the ReencryptForKnot callers by default, to * only when told", () => {
    expect(loadConfig(baseEnv(pki)).callers.health).toBe("reencrypt-callers");
    expect(loadConfig(baseEnv(pki, { CUSTODY_ALLOW_HEALTH: "*" })).callers.health).toBe("any");
    const defaults = loadConfig(baseEnv(pki));
    expect(defaults.limits.maxCallDeadlineMs).toBe(5000);
    expect(defaults.connection).toMatchObject({
      maxConnections: 256,
      maxHandshakes: 64,
      handshakeTimeoutMs: 5000,
    });
  });
});

describe("connection and handshake limits", () => {
  const HANDSHAKE_TIMEOUT_MS = 1000;
  let custody: RunningCustody;
  let log: LogCapture;
  let gateway: CardCustodyClient;
  const closers: { close(): void }[] = [];
  const sockets: Socket[] = [];

  beforeAll(async () => {
    const store = await fileStore.create(tempDir("limits-keys"), [
      { name: "dotva", privateKey: dotva.privateKey, state: "active" },
    ]);
    ({ custody, log } = await startTestCustody(
      baseEnv(pki, {
        CUSTODY_WORKERS: "1",
        CUSTODY_MAX_CONNECTIONS: "4",
        CUSTODY_MAX_HANDSHAKES: "2",
        CUSTODY_HANDSHAKE_TIMEOUT_MS: String(HANDSHAKE_TIMEOUT_MS),
      }),
      store.source,
    ));
    gateway = custodyClient(custody.port, pki);
    closers.push(gateway);
    const first = await reencrypt(gateway, await request("warm-up"));
    expect(first.ok).toBe(true);
  });

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    for (const c of closers) c.close();
    await custody?.shutdown(2000);
  });

  it("closes a connection that never completes its TLS handshake after CUSTODY_HANDSHAKE_TIMEOUT_MS", async () => {
    const socket = await silentSocket(custody.port);
    sockets.push(socket);
    const elapsed = await closedAfter(socket, Date.now());
    expect(elapsed).toBeGreaterThanOrEqual(HANDSHAKE_TIMEOUT_MS - 50);
    expect(elapsed).toBeLessThan(HANDSHAKE_TIMEOUT_MS + 2000);
    await vi.waitFor(() => expect(custody.listener.handshakes).toBe(0), { timeout: 2000 });
  });

  it("closes a connection beyond CUSTODY_MAX_HANDSHAKES at once; the established client keeps working", async () => {
    const hanging = [await silentSocket(custody.port), await silentSocket(custody.port)];
    sockets.push(...hanging);
    await vi.waitFor(() => expect(custody.listener.handshakes).toBe(2), { timeout: 2000 });
    const refusedBefore = custody.listener.refused;

    const extra = await silentSocket(custody.port);
    sockets.push(extra);
    // Closed on arrival, well before the handshake timeout would have.
    expect(await closedAfter(extra, Date.now())).toBeLessThan(HANDSHAKE_TIMEOUT_MS / 2);
    expect(custody.listener.refused).toBe(refusedBefore + 1);
    expect(log.lines().some((l) => l.limit === "CUSTODY_MAX_HANDSHAKES")).toBe(true);

    const during = await reencrypt(gateway, await request("during-handshake-flood"));
    expect(during.ok ? "ok" : during.reason).toBe("ok");
    for (const s of hanging) s.destroy();
    await vi.waitFor(() => expect(custody.listener.handshakes).toBe(0), { timeout: 2000 });
  });

  it("closes a connection beyond CUSTODY_MAX_CONNECTIONS at once; the established client keeps working", async () => {
    await vi.waitFor(() => expect(custody.listener.connections).toBe(1), { timeout: 2000 });
    // Three more clients with valid certificates finish their handshakes and stay connected: 4 of 4.
    const ca = readFileSync(pki.caCert);
    // One after the other: three at once would be beyond CUSTODY_MAX_HANDSHAKES.
    const established: Socket[] = [];
    for (let i = 0; i < 3; i++) {
      established.push(
        await new Promise<Socket>((resolve, reject) => {
          const s = tlsConnect({
            host: "127.0.0.1",
            port: custody.port,
            servername: "localhost",
            ca,
            cert: readFileSync(pki.gateway.cert),
            key: readFileSync(pki.gateway.key),
            ALPNProtocols: ["h2"],
          });
          sockets.push(s);
          s.once("secureConnect", () => resolve(s));
          s.once("error", reject);
        }),
      );
    }
    await vi.waitFor(
      () => expect([custody.listener.connections, custody.listener.handshakes]).toEqual([4, 0]),
      { timeout: 2000 },
    );
    const refusedBefore = custody.listener.refused;

    const extra = await silentSocket(custody.port);
    sockets.push(extra);
    expect(await closedAfter(extra, Date.now())).toBeLessThan(HANDSHAKE_TIMEOUT_MS / 2);
    expect(custody.listener.refused).toBe(refusedBefore + 1);
    expect(log.lines().some((l) => l.limit === "CUSTODY_MAX_CONNECTIONS")).toBe(true);

    const during = await reencrypt(gateway, await request("at-connection-limit"));
    expect(during.ok ? "ok" : during.reason).toBe("ok");

    // A freed slot is usable again.
    for (const s of established) s.destroy();
    await vi.waitFor(() => expect(custody.listener.connections).toBe(1), { timeout: 2000 });
    const health = healthClient(custody.port, pki, "gateway");
    expect(await healthCheck(health)).toEqual({ status: "SERVING" });
    health.close();
    await vi.waitFor(() => expect(custody.listener.connections).toBe(1), { timeout: 2000 });
  });

  it("by default answers health checks from ReencryptForKnot callers only", async () => {
    const intruder = healthClient(custody.port, pki, "intruder");
    closers.push(intruder);
    // Authenticated (the handshake succeeded), but not a ReencryptForKnot caller.
    expect((await healthCheck(intruder)).code).toBe(status.PERMISSION_DENIED);
    const gatewayHealth = healthClient(custody.port, pki, "gateway");
    closers.push(gatewayHealth);
    expect(await healthCheck(gatewayHealth)).toEqual({ status: "SERVING" });
  });
});

describe("call deadline cap", () => {
  const CAP_MS = 600;
  let custody: RunningCustody;
  let gateway: CardCustodyClient;
  const closers: { close(): void }[] = [];
  /** Unwraps the slow store has not answered yet. */
  const waiting: ((cek: Buffer) => void)[] = [];

  beforeAll(async () => {
    const store = await fileStore.create(tempDir("deadline-keys"), [
      { name: "dotva", privateKey: dotva.privateKey, state: "active" },
    ]);
    // A key store whose unwrap never answers by itself: the call can end only through a deadline.
    const slow = withGet(store.source, (fp) => {
      const key = store.source.get(fp);
      return (
        key && {
          info: key.info,
          generation: key.generation,
          unwrap: () => new Promise<Buffer>((resolve) => waiting.push(resolve)),
        }
      );
    });
    ({ custody } = await startTestCustody(
      baseEnv(pki, {
        CUSTODY_WORKERS: "1",
        CUSTODY_MAX_CALL_DEADLINE_MS: String(CAP_MS),
        CUSTODY_DEFAULT_DEADLINE_MS: String(CAP_MS),
        CUSTODY_ALLOW_HEALTH: "*",
      }),
      slow,
    ));
    gateway = custodyClient(custody.port, pki);
    closers.push(gateway);
  });

  afterAll(async () => {
    for (const answer of waiting.splice(0)) answer(randomBytes(32));
    for (const c of closers) c.close();
    await custody?.shutdown(2000);
  });

  it("answers DEADLINE_EXCEEDED with its reason code at the cap when the client's deadline is later", async () => {
    const started = Date.now();
    const out = await reencrypt(gateway, await request("long-deadline"), 30_000);
    const elapsed = Date.now() - started;
    expect(out.ok ? "ok" : [out.code, out.reason]).toEqual([status.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"]);
    expect(elapsed).toBeGreaterThanOrEqual(CAP_MS - 50);
    expect(elapsed).toBeLessThan(CAP_MS + 2000);
    expect(waiting.length).toBeGreaterThan(0);
  });

  it("answers DEADLINE_EXCEEDED at the cap when the client sends no deadline at all", async () => {
    const req = await request("no-deadline");
    const started = Date.now();
    const err = await new Promise<ServiceError | null>((resolve) =>
      gateway.ReencryptForKnot(req, (e: ServiceError | null) => resolve(e)),
    );
    const elapsed = Date.now() - started;
    expect(err?.code).toBe(status.DEADLINE_EXCEEDED);
    expect(err?.metadata.get("custody-reason")[0]).toBe("DEADLINE_EXCEEDED");
    expect(elapsed).toBeGreaterThanOrEqual(CAP_MS - 50);
    expect(elapsed).toBeLessThan(CAP_MS + 2000);
  });

  it("CUSTODY_ALLOW_HEALTH=* opens the health service to any authenticated client", async () => {
    const intruder = healthClient(custody.port, pki, "intruder");
    closers.push(intruder);
    expect(await healthCheck(intruder)).toEqual({ status: "SERVING" });
  });
});
