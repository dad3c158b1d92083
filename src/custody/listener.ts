/**
 * custody's TCP listener, in front of grpc-js. grpc-js binds its own HTTP/2 server and bounds only
 * what happens inside one connection (streams, message sizes, keepalive, age); nothing limits how many
 * connections a peer opens or how many handshakes it leaves half-done, each of which holds a socket and,
 * for TLS, handshake state. So custody accepts connections itself:
 *
 *   - a `net.Server` accepts and counts; beyond CUSTODY_MAX_CONNECTIONS open connections, or
 *     CUSTODY_MAX_HANDSHAKES handshakes in progress, a new connection is closed at once (no TLS byte is
 *     read from it), while connections already open keep working;
 *   - the TLS server of tls.ts does the handshake (client certificate required and verified, CRLs,
 *     TLS 1.3, h2) and destroys a connection whose handshake outlives CUSTODY_HANDSHAKE_TIMEOUT_MS;
 *   - a finished handshake is handed to grpc-js through its connection injector
 *     (`Server.createConnectionInjector`, given insecure credentials because the socket arrives already
 *     secured: grpc-js reads the peer certificate from the socket either way).
 *
 * Refusals are counted and logged at most once per REFUSAL_LOG_INTERVAL_MS and limit, so a flood does
 * not become a log flood.
 */
import { createServer, type Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { type Server as GrpcServer, ServerCredentials } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { MutualTls } from "./tls.js";

const REFUSAL_LOG_INTERVAL_MS = 10_000;

export interface ListenerLimits {
  readonly maxConnections: number;
  readonly maxHandshakes: number;
}

export interface CustodyListener {
  readonly port: number;
  /** Open connections, handshaking or established. */
  readonly connections: number;
  /** Connections whose TLS handshake has not finished. */
  readonly handshakes: number;
  /** Connections closed on arrival because a limit was reached, since start. */
  readonly refused: number;
  /**
   * Stops accepting and closes connections still in their handshake; established ones are grpc-js's to
   * drain. Resolves once every connection has closed.
   */
  close(): Promise<void>;
  /** Closes every connection still open (after grpc-js's drain, for those it did not close). */
  destroy(): void;
}

/** The peer's address and port: the TCP socket and the TLS socket over it report the same. */
const peerOf = (socket: Socket) => `${socket.remoteAddress}|${socket.remotePort}`;

export async function listenCustody(
  grpc: GrpcServer,
  opts: {
    readonly host: string;
    readonly port: number;
    /** Absent only in dev plaintext mode: connections then go to grpc-js as they are. */
    readonly tls?: MutualTls;
    readonly limits: ListenerLimits;
    readonly logger: Logger;
  },
): Promise<CustodyListener> {
  const { tls, limits, logger } = opts;
  const injector = grpc.createConnectionInjector(ServerCredentials.createInsecure());
  let open = 0;
  let refused = 0;
  const lastRefusalLog = new Map<string, number>();
  const handshaking = new Map<string, Socket>();
  /** Every open connection's TCP socket, and the TLS socket over it once the handshake is done. */
  const sockets = new Set<Socket>();

  const refuse = (socket: Socket, limit: "CUSTODY_MAX_CONNECTIONS" | "CUSTODY_MAX_HANDSHAKES") => {
    socket.destroy();
    refused++;
    const now = Date.now();
    if (now - (lastRefusalLog.get(limit) ?? Number.NEGATIVE_INFINITY) >= REFUSAL_LOG_INTERVAL_MS) {
      lastRefusalLog.set(limit, now);
      logger.warn(
        { limit, connections: open, handshakes: handshaking.size, refused_total: refused },
        "connection refused: limit reached",
      );
    }
  };

  const tcp = createServer({ noDelay: true }, (socket) => {
    // A peer resetting the connection is its own business; without a listener it would crash the process.
    socket.on("error", () => undefined);
    if (socket.remoteAddress === undefined) return void socket.destroy();
    if (open >= limits.maxConnections) return refuse(socket, "CUSTODY_MAX_CONNECTIONS");
    if (tls && handshaking.size >= limits.maxHandshakes) return refuse(socket, "CUSTODY_MAX_HANDSHAKES");
    open++;
    sockets.add(socket);
    const peer = peerOf(socket);
    // Also fires when the TLS socket over it closes.
    socket.once("close", () => {
      open--;
      sockets.delete(socket);
      if (handshaking.get(peer) === socket) handshaking.delete(peer);
    });
    if (!tls) return injector.injectConnection(socket);
    handshaking.set(peer, socket);
    tls.server.emit("connection", socket);
  });

  if (tls) {
    tls.server.on("secureConnection", (secure: TLSSocket) => {
      handshaking.delete(peerOf(secure));
      sockets.add(secure);
      secure.once("close", () => sockets.delete(secure));
      secure.on("error", () => undefined);
      // Node's HTTP/2 server would wait for an 'unknownProtocol' handler first; nothing here speaks anything else.
      if (secure.alpnProtocol !== "h2") return void secure.destroy();
      injector.injectConnection(secure);
    });
    // A failed or timed-out handshake: Node reports it but leaves the socket open (a timed-out one
    // would stay open for good), so it is closed here.
    tls.server.on("tlsClientError", (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      logger.debug({ code: err.code ?? err.name }, "TLS handshake failed");
      socket.destroy();
    });
  }

  const port = await new Promise<number>((resolve, reject) => {
    tcp.once("error", reject);
    // One address per listener: "localhost" (development) is the IPv4 loopback, whichever family the
    // resolver would list first.
    const host = opts.host.toLowerCase() === "localhost" ? "127.0.0.1" : opts.host;
    tcp.listen({ host, port: opts.port }, () => {
      tcp.off("error", reject);
      const address = tcp.address();
      resolve(typeof address === "object" && address ? address.port : opts.port);
    });
  });

  return {
    port,
    get connections() {
      return open;
    },
    get handshakes() {
      return handshaking.size;
    },
    get refused() {
      return refused;
    },
    close() {
      return new Promise<void>((resolve) => {
        tcp.close(() => resolve());
        for (const socket of handshaking.values()) socket.destroy();
        handshaking.clear();
      });
    },
    destroy() {
      for (const socket of sockets) socket.destroy();
    },
  };
}
