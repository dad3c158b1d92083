/**
 * The gateway's custody client keeps one connection per custody address, for ReencryptForKnot and
 * health checks alike, and keeps it alive with HTTP/2 pings while idle. Observed from outside: a TCP
 * relay in front of a grpc-js server counts connections and the bytes the client sends.
 */
import { connect, createServer, type Server as NetServer, type Socket } from "node:net";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { loadCustodyProto, loadHealthProto } from "../contract/proto.js";
import { custodyClient } from "./custody-client.js";

let grpcServer: Server;
let relay: NetServer;
let relayPort: number;
const connections: Socket[] = [];
let clientBytes = 0;

beforeAll(async () => {
  grpcServer = new Server();
  grpcServer.addService(loadCustodyProto().custody.v1.CardCustody.service, {
    ReencryptForKnot: (_call: unknown, cb: (e: null, r: object) => void) =>
      cb(null, {
        jwe: "a.b.c.d.e",
        key_fingerprint: "sha256:x",
        recipient_thumbprint: "t",
        card_last4: "4242",
      }),
  });
  grpcServer.addService(loadHealthProto().grpc.health.v1.Health.service, {
    Check: (_call: unknown, cb: (e: null, r: object) => void) => cb(null, { status: "SERVING" }),
    Watch: () => undefined,
  });
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    ),
  );
  relay = createServer((socket) => {
    connections.push(socket);
    const upstream = connect(grpcPort, "127.0.0.1");
    socket.on("data", (d) => {
      clientBytes += d.length;
    });
    socket.pipe(upstream).pipe(socket);
    socket.on("error", () => upstream.destroy());
    upstream.on("error", () => socket.destroy());
  });
  relayPort = await new Promise<number>((resolve) =>
    relay.listen(0, "127.0.0.1", () => resolve((relay.address() as { port: number }).port)),
  );
});

afterAll(async () => {
  for (const socket of connections) socket.destroy();
  relay.close();
  grpcServer.forceShutdown();
});

describe("gateway custody client channel", () => {
  it("sends re-encryptions and health checks over one connection and pings it while idle", async () => {
    const client = custodyClient({ address: `127.0.0.1:${relayPort}`, tls: "insecure" }, 100);
    try {
      expect(await client.healthy(2_000)).toBe(true);
      const request = {
        secrets_jwe: "x",
        key_fingerprint: "sha256:x",
        knot_jwk: "{}",
        user: {},
        request_id: "t",
      };
      await Promise.all(Array.from({ length: 8 }, () => client.reencrypt(request, 2_000)));
      expect(await client.healthy(2_000)).toBe(true);
      expect(connections).toHaveLength(1);

      // Idle now: only keepalive pings can make the client write to the connection.
      const idleFrom = clientBytes;
      await vi.waitFor(() => expect(clientBytes).toBeGreaterThan(idleFrom), { timeout: 5_000, interval: 20 });
      expect(connections).toHaveLength(1);
    } finally {
      client.close();
    }
  });
});
