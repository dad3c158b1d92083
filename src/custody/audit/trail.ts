/**
 * What the custody service records in its audit chain besides calls (service.ts writes those): start and
 * stop, TLS handshakes that failed, key reloads with the fingerprints that came, went or changed state,
 * caller-policy and TLS reloads (applied or refused), and the chain head in the operator log at start,
 * every minute it moved, and at shutdown, so a copy of the head lives outside the file (a plain hash
 * chain cannot show that its tail was cut off or rewritten; a head kept elsewhere can).
 *
 * Nothing here throws: an audit line that cannot be written is an operator-log error, and the reload or
 * handshake it describes goes on. Calls are different: a call is not answered without its line.
 */
import type { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import type { Logger } from "pino";
import { ConfigError, type CustodyConfig, type CustodyEnv } from "../config.js";
import type { KeyInfo, KeyState } from "../keystore/key-store.js";
import { type AuditEvent, AuditFileError, AuditSink } from "./sink.js";

/** At most this many handshake failures are written per second; the rest are counted. */
const HANDSHAKE_LINES_PER_SECOND = 20;
/**
 * A connection closed before it sent a TLS record (a TCP health probe, a port scan) is no handshake;
 * a client whose certificate failed verification also shows as ECONNRESET but carries the reason.
 */
const NOT_A_HANDSHAKE = new Set(["ECONNRESET", "EPIPE"]);

export type KeySnapshot = ReadonlyMap<string, KeyState>;

export function keySnapshot(keys: readonly KeyInfo[]): KeySnapshot {
  return new Map(keys.map((k) => [k.fingerprint, k.state]));
}

/** The fingerprints a reload added or removed, and the state changes, as `<fingerprint> <from>-><to>`. */
export function keyChanges(before: KeySnapshot, after: KeySnapshot) {
  const added = [...after.keys()].filter((fp) => !before.has(fp));
  const removed = [...before.keys()].filter((fp) => !after.has(fp));
  const stateChanged = [...after]
    .filter(([fp, state]) => before.has(fp) && before.get(fp) !== state)
    .map(([fp, state]) => `${fp} ${before.get(fp)}->${state}`);
  return { added, removed, state_changed: stateChanged };
}

export class CustodyAuditTrail {
  private anchorTimer: NodeJS.Timeout | undefined;
  private anchoredSeq: number;
  private windowStart = 0;
  private windowCount = 0;
  private suppressed = 0;

  private constructor(
    readonly sink: AuditSink | undefined,
    private readonly logger: Logger,
  ) {
    this.anchoredSeq = sink?.head.seq ?? -1;
  }

  /**
   * Opens CUSTODY_AUDIT_FILE (ConfigError naming it when that fails). In development without one there is
   * no chain: the call records stay in the operator log, as a start-up warning says.
   */
  static open(
    config: CustodyConfig["audit"],
    env: CustodyEnv,
    logger: Logger,
    opts: { readonly anchorIntervalMs?: number } = {},
  ): CustodyAuditTrail {
    if (config.file === undefined) {
      logger.warn(
        { env },
        "DEV MODE: CUSTODY_AUDIT_FILE is not set: audit records go to the operator log only (no chain, not written before the answer)",
      );
      return new CustodyAuditTrail(undefined, logger);
    }
    let sink: AuditSink;
    try {
      sink = AuditSink.open(config.file, { writer: "custody", fsync: config.fsync });
    } catch (err) {
      if (err instanceof AuditFileError) throw new ConfigError(`CUSTODY_AUDIT_FILE: ${err.message}`);
      throw err;
    }
    for (const warning of sink.warnings) logger.warn({ warning }, "audit file");
    if (sink.recovered !== undefined) {
      logger.warn(
        { reason: sink.recovered, file: sink.file },
        "audit chain: the end of the file did not verify; a chain_break line records it (custody-keys audit verify)",
      );
    }
    const trail = new CustodyAuditTrail(sink, logger);
    trail.anchor("audit chain opened");
    trail.anchorTimer = setInterval(() => {
      if (sink.head.seq !== trail.anchoredSeq) trail.anchor("audit chain head");
    }, opts.anchorIntervalMs ?? 60_000);
    trail.anchorTimer.unref();
    return trail;
  }

  record(event: AuditEvent, fields: object): void {
    if (!this.sink) return;
    try {
      this.sink.append(event, fields);
    } catch (err) {
      this.logger.error(
        { event, reason: err instanceof Error ? err.message : String(err), file: this.sink.file },
        "audit write failed",
      );
    }
  }

  /**
   * Records every failed handshake on `tlsServer` (a node:tls Server): remote address, Node's error code
   * and, when the certificate was the problem, OpenSSL's verification result (CERT_HAS_EXPIRED, ...).
   * Bursts are capped at HANDSHAKE_LINES_PER_SECOND lines; the rest are counted in a
   * `tls_handshake_failures_suppressed` line.
   */
  watchHandshakes(tlsServer: EventEmitter): void {
    if (!this.sink) return;
    // The TLS socket of a failed handshake is destroyed by the time it is reported, and has forgotten its
    // peer; the TCP socket underneath it is remembered from the moment it was accepted.
    const remote = new WeakMap<object, string>();
    tlsServer.prependListener("connection", (socket: Socket) => {
      if (socket.remoteAddress !== undefined) remote.set(socket, socket.remoteAddress);
    });
    tlsServer.on("tlsClientError", (err: NodeJS.ErrnoException, socket: Socket) => {
      const tlsSocket = socket as Socket & { authorizationError?: string | null; _parent?: object };
      const verifyError = tlsSocket.authorizationError ?? undefined;
      const code = err.code ?? "unknown";
      if (verifyError === undefined && NOT_A_HANDSHAKE.has(code)) return;
      const parent = tlsSocket._parent;
      this.handshakeFailed({
        remote_address: (parent ? remote.get(parent) : undefined) ?? socket.remoteAddress ?? "unknown",
        code,
        ...(verifyError !== undefined ? { verify_error: verifyError } : {}),
      });
    });
  }

  private handshakeFailed(fields: object): void {
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      this.flushSuppressed();
      this.windowStart = now;
      this.windowCount = 0;
    }
    if (this.windowCount >= HANDSHAKE_LINES_PER_SECOND) {
      this.suppressed++;
      return;
    }
    this.windowCount++;
    this.record("tls_handshake_failed", fields);
  }

  private flushSuppressed(): void {
    if (this.suppressed === 0) return;
    this.record("tls_handshake_failures_suppressed", {
      count: this.suppressed,
      since: new Date(this.windowStart).toISOString(),
    });
    this.suppressed = 0;
  }

  /** The last lines of a stopping service: suppressed handshake count, `stop`, and the head to the log. */
  close(fields: object): void {
    clearInterval(this.anchorTimer);
    if (!this.sink) return;
    this.flushSuppressed();
    this.record("stop", fields);
    this.anchor("audit chain head at shutdown");
    this.sink.close();
  }

  private anchor(msg: string): void {
    if (!this.sink) return;
    const head = this.sink.head;
    this.anchoredSeq = head.seq;
    this.logger.info(
      { audit_file: this.sink.file, audit_head_seq: head.seq, audit_head_hash: head.hash },
      msg,
    );
  }
}
