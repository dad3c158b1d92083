/**
 * Assembles and runs the custody gRPC server: mTLS listener (or the loudly logged dev plaintext one),
 * the two services, the worker pool, key reloads and graceful drain. `main.ts` wires it to the process
 * (signals, environment); tests and the benchmark call `startCustody` directly.
 */

import { X509Certificate } from "node:crypto";
import { type FSWatcher, watch } from "node:fs";
import type { Server as HttpServer } from "node:http";
import { basename, dirname } from "node:path";
import { TLSSocket } from "node:tls";
import { Server, type ServerUnaryCall, type ServerWritableStream } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { loadCustodyProto, loadHealthProto } from "../contract/proto.js";
import type { AuditSink } from "./audit/sink.js";
import { CustodyAuditTrail, keyChanges, keySnapshot } from "./audit/trail.js";
import {
  type CallerIdentity,
  type CustodyMode,
  currentIdentity,
  identityFromCertificate,
  matchingEntry,
  type PeerIdentity,
} from "./caller-identity.js";
import { CallerLimits } from "./caller-limits.js";
import { type Grants, globalGrants, loadCallerPolicy } from "./caller-policy.js";
import { type CustodyConfig, clientCaExpiry, readTlsMaterial } from "./config.js";
import { HealthState } from "./health.js";
import type { ManagedKeyStore, ReloadResult } from "./keystore/key-store.js";
import { type CustodyListener, listenCustody } from "./listener.js";
import { CustodyMetrics, serveMetrics } from "./metrics.js";
import { openKeyStore } from "./open-key-store.js";
import { createReencryptor } from "./reencryptor.js";
import { reencryptHandler } from "./service.js";
import { MutualTls } from "./tls.js";

/**
 * What custody answers is one JWE for Knot (a few KiB even for a 4096-bit recipient key); the bound is
 * generous and explicit rather than grpc-js's default (unlimited for sends).
 */
const MAX_SEND_MESSAGE_BYTES = 1024 * 1024;
/**
 * Server-side HTTP/2 keepalive: a connection silent this long is pinged, and closed when the ping goes
 * unanswered for KEEPALIVE_TIMEOUT_MS, so a peer that vanished (no FIN, no RST) stops holding one of
 * CUSTODY_MAX_CONNECTIONS. The gateway pings every 30 s itself, so its channel never reaches this.
 */
const KEEPALIVE_MS = 60_000;
const KEEPALIVE_TIMEOUT_MS = 20_000;

export interface RunningCustody {
  readonly port: number;
  /** The metrics listener's port, when CUSTODY_METRICS_LISTEN is set. */
  readonly metricsPort?: number;
  readonly health: HealthState;
  readonly keys: ManagedKeyStore;
  /** The TCP listener: open connections and handshakes, refusals (tests read these). */
  readonly listener: CustodyListener;
  /** The audit chain (CUSTODY_AUDIT_FILE); absent in development without one. */
  readonly audit?: AuditSink;
  /** Reloads the key set; on failure logs why, keeps the previous set and rejects. */
  reload(): Promise<ReloadResult>;
  /**
   * Re-reads the server certificate, key, client CA and CRLs for later handshakes; true when applied,
   * false when the files are not a consistent set (logged; the previous material stays in force).
   */
  reloadTls(): boolean;
  /**
   * Re-reads CUSTODY_CALLER_POLICY_FILE (no-op without one); true when the new grants are in force, false
   * when the file is invalid, which is logged and leaves the previous grants in force.
   */
  reloadCallerPolicy(): boolean;
  /** Stops accepting calls, lets in-flight ones finish for up to `graceMs`, then closes everything. */
  shutdown(graceMs?: number): Promise<void>;
}

type AnyCall = ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>;

/**
 * grpc-js's getAuthContext() runs TLSSocket.getPeerCertificate() — a full certificate-to-object
 * conversion — on every call; measured at a sizeable share of the main thread under load. The
 * certificate cannot change within one TLS connection (TLS 1.3 has no renegotiation), so it is read once
 * per socket; what can change is the clock, so every call re-checks the certificate's expiry
 * (`currentIdentity`). Reaching the socket goes through grpc-js internals; when that path is not there
 * (another grpc-js version), every call takes the public, uncached route.
 */
const identityBySocket = new WeakMap<TLSSocket, PeerIdentity>();

interface InternalCall {
  nextCall?: InternalCall;
  stream?: { session?: { socket?: unknown } };
}

function tlsSocketOf(call: AnyCall): TLSSocket | undefined {
  // ServerUnaryCall.call is the base call, or a chain of interceptor calls ending in it.
  let inner = (call as unknown as { call?: InternalCall }).call;
  for (let depth = 0; inner && !inner.stream && depth < 8; depth++) inner = inner.nextCall;
  const socket = inner?.stream?.session?.socket;
  return socket instanceof TLSSocket && socket.authorized ? socket : undefined;
}

function callerResolver(mode: CustodyMode, logger: Logger) {
  return (call: AnyCall): PeerIdentity => {
    const socket = tlsSocketOf(call);
    let peer = socket ? identityBySocket.get(socket) : undefined;
    if (!peer) {
      const cert = call.getAuthContext()?.sslPeerCertificate;
      peer = identityFromCertificate(cert, mode);
      if (socket) {
        identityBySocket.set(socket, peer);
        // Once per connection: shows which certificate a caller uses, e.g. after a rotation.
        logger.debug(
          { caller: peer.ok ? peer.identity.display : peer.display, serial: cert?.serialNumber },
          "caller connection",
        );
      }
    }
    return currentIdentity(peer, Date.now());
  };
}

/**
 * Who may call grpc.health.v1: CUSTODY_ALLOW_HEALTH's list, any authenticated client when it says `*`,
 * and by default whoever the grants in force let call ReencryptForKnot (following policy reloads): a
 * caller already trusted with re-encryption learns nothing new from the serving status, and a separate
 * probe identity must be named.
 */
function healthCallers(
  setting: CustodyConfig["callers"]["health"],
  grants: () => Grants,
): (identity: CallerIdentity) => boolean {
  if (setting === "any") return () => true;
  if (setting === "reencrypt-callers") return (identity) => grants().grantFor(identity) !== undefined;
  return (identity) => matchingEntry(identity, setting) !== undefined;
}

export async function startCustody(
  config: CustodyConfig,
  opts: { logger: Logger; keys?: ManagedKeyStore; auditAnchorIntervalMs?: number },
): Promise<RunningCustody> {
  const { logger } = opts;
  // First: a custody that cannot keep its audit chain does not start (ConfigError naming the variable).
  const trail = CustodyAuditTrail.open(config.audit, config.env, logger, {
    ...(opts.auditAnchorIntervalMs !== undefined ? { anchorIntervalMs: opts.auditAnchorIntervalMs } : {}),
  });
  // A policy file that does not validate at start-up stops the process (ConfigError, naming the
  // variable), before anything is opened.
  let grants: Grants =
    config.callerPolicyFile !== undefined
      ? loadCallerPolicy(config.callerPolicyFile, config.env)
      : globalGrants(config.callers.reencrypt, config.recipients);
  const keys = opts.keys ?? (await openKeyStore(config.keyStore, logger));
  const reencryptor = createReencryptor({ workers: config.workers, maxQueue: config.limits.maxQueue });
  await reencryptor.warmUp();
  const metrics = config.metricsListen ? new CustodyMetrics(() => reencryptor.queued) : undefined;
  if (metrics && config.tls) {
    metrics.setCertificateExpiry(
      new Date(new X509Certificate(config.tls.cert).validTo),
      clientCaExpiry(config.tls.clientCa),
    );
  }
  const health = new HealthState();
  const server = new Server({
    "grpc.max_receive_message_length": config.limits.maxMessageBytes,
    "grpc.max_send_message_length": MAX_SEND_MESSAGE_BYTES,
    // Connections are long-lived (the gateway keeps one channel); bound what one client can open at once.
    "grpc.max_concurrent_streams": config.limits.maxInFlightPerCaller,
    // ... and how long: a client re-handshakes at least this often, so a revoked (CRL) or replaced
    // certificate stops working within this age even on a channel that never goes idle.
    "grpc.max_connection_age_ms": config.connection.maxAgeMs,
    "grpc.max_connection_age_grace_ms": config.connection.maxAgeGraceMs,
    "grpc.keepalive_time_ms": KEEPALIVE_MS,
    "grpc.keepalive_timeout_ms": KEEPALIVE_TIMEOUT_MS,
  });
  const callerOf = callerResolver(config.env, logger);

  const skipCallerCheck = config.devPlaintext;
  const proto = loadCustodyProto();
  server.addService(proto.custody.v1.CardCustody.service, {
    ReencryptForKnot: reencryptHandler({
      keys,
      reencryptor,
      grants: () => grants,
      ...(metrics ? { metrics } : {}),
      limits: new CallerLimits({
        ratePerSecond: config.limits.ratePerSecond,
        burst: config.limits.burst,
        maxInFlight: config.limits.maxInFlightPerCaller,
      }),
      defaultDeadlineMs: config.limits.defaultDeadlineMs,
      maxCallDeadlineMs: config.limits.maxCallDeadlineMs,
      logger,
      ...(trail.sink ? { audit: trail.sink } : {}),
      callerOf,
      skipCallerCheck,
    }),
  });
  server.addService(
    loadHealthProto().grpc.health.v1.Health.service,
    health.implementation(
      healthCallers(config.callers.health, () => grants),
      callerOf,
      skipCallerCheck,
    ),
  );

  const mutualTls = config.tls
    ? new MutualTls(config.tls, { handshakeTimeoutMs: config.connection.handshakeTimeoutMs })
    : undefined;
  if (!mutualTls) {
    logger.warn(
      "DEV MODE: CUSTODY_DEV_PLAINTEXT is set: listening WITHOUT TLS and WITHOUT caller checks. Never in production.",
    );
  }
  const listener = await listenCustody(server, {
    host: config.listen.host,
    port: config.listen.port,
    ...(mutualTls ? { tls: mutualTls } : {}),
    limits: {
      maxConnections: config.connection.maxConnections,
      maxHandshakes: config.connection.maxHandshakes,
    },
    logger,
  });
  const port = listener.port;
  if (mutualTls) trail.watchHandshakes(mutualTls.server);
  if (config.recipients.allowAny)
    logger.warn("DEV MODE: CUSTODY_DEV_ALLOW_ANY_RECIPIENT is set: any recipient key is accepted");

  const reload = async (): Promise<ReloadResult> => {
    const before = keySnapshot(keys.list());
    try {
      const result = await keys.reload();
      // Now, not when the next call comes: a key the reload removed leaves the workers' memory.
      reencryptor.keySetChanged(result.generation);
      trail.record("key_reload", {
        accepted: true,
        generation: result.generation,
        keys: result.keys,
        ...keyChanges(before, keySnapshot(keys.list())),
      });
      logger.info({ generation: result.generation, keys: result.keys }, "key set reloaded");
      for (const warning of result.warnings) logger.warn({ warning }, "key set warning");
      return result;
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      trail.record("key_reload", { accepted: false, reason });
      logger.error({ reason }, "key reload failed; keeping the previous key set");
      throw err;
    }
  };

  let tlsSerial = config.tls ? new X509Certificate(config.tls.cert).serialNumber : undefined;
  const reloadTls = (): boolean => {
    if (!config.tls || !mutualTls) return true;
    try {
      const material = readTlsMaterial(config.tls, new Date());
      mutualTls.setMaterial(material);
      trail.record("tls_reload", {
        accepted: true,
        serial_before: tlsSerial,
        serial: material.serial,
        not_after: material.notAfter.toISOString(),
        client_crls: material.crl.length,
      });
      tlsSerial = material.serial;
      metrics?.setCertificateExpiry(material.notAfter, material.caNotAfter);
      logger.info(
        {
          serial: material.serial,
          not_after: material.notAfter.toISOString(),
          client_crls: material.crl.length,
        },
        "TLS material reloaded",
      );
      return true;
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      trail.record("tls_reload", { accepted: false, serial_in_force: tlsSerial, reason });
      logger.error(
        { reason },
        "TLS reload failed; keeping the previous certificate, key, client CA and CRLs",
      );
      return false;
    }
  };

  // Short-lived certificates (SPIFFE SVIDs live hours) are replaced on disk by an agent; handshakes from
  // then on use the new ones. Directories, not files: a replace by rename changes the inode.
  const tlsWatchers: FSWatcher[] = [];
  let tlsTimer: NodeJS.Timeout | undefined;
  if (config.tls) {
    const files = [
      config.tls.files.cert,
      config.tls.files.key,
      config.tls.files.clientCa,
      ...config.tls.crlFiles,
    ];
    const names = new Set(files.map((f) => basename(f)));
    for (const dir of new Set(files.map((f) => dirname(f)))) {
      tlsWatchers.push(
        watch(dir, (_event, name) => {
          if (name !== null && !names.has(name) && !name.startsWith("..")) return;
          clearTimeout(tlsTimer);
          tlsTimer = setTimeout(reloadTls, 200);
        }),
      );
    }
  }

  const reloadCallerPolicy = (): boolean => {
    if (config.callerPolicyFile === undefined) return true;
    const versionBefore = grants.version;
    try {
      grants = loadCallerPolicy(config.callerPolicyFile, config.env);
      trail.record("caller_policy_reload", {
        accepted: true,
        version_before: versionBefore,
        version: grants.version,
      });
      logger.info({ policy_version: grants.version }, "caller policy reloaded");
      return true;
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      trail.record("caller_policy_reload", { accepted: false, version_in_force: versionBefore, reason });
      logger.error(
        { reason, policy_version: grants.version },
        "caller policy reload failed; keeping the previous policy",
      );
      return false;
    }
  };

  let policyWatcher: FSWatcher | undefined;
  let policyTimer: NodeJS.Timeout | undefined;
  if (config.callerPolicyFile !== undefined) {
    // The directory, not the file: an atomic replace (write + rename, as config management and Kubernetes
    // ConfigMaps do) swaps the inode a file watch would follow.
    const file = basename(config.callerPolicyFile);
    policyWatcher = watch(dirname(config.callerPolicyFile), (_event, name) => {
      if (name !== null && name !== file && !name.startsWith("..")) return;
      clearTimeout(policyTimer);
      policyTimer = setTimeout(reloadCallerPolicy, 200);
    });
  }

  let watcher: FSWatcher | undefined;
  if (config.keyStore.kind === "file" && config.keyStore.watch) {
    let timer: NodeJS.Timeout | undefined;
    // Debounced: a rotation writes a key file and then the manifest; reload once both are in place.
    watcher = watch(config.keyStore.dir, () => {
      clearTimeout(timer);
      timer = setTimeout(() => reload().catch(() => undefined), 500);
    });
  }

  let metricsServer: HttpServer | undefined;
  let metricsPort: number | undefined;
  if (metrics && config.metricsListen) {
    ({ server: metricsServer, port: metricsPort } = await serveMetrics(
      metrics,
      config.metricsListen.host,
      config.metricsListen.port,
    ));
    logger.info({ host: config.metricsListen.host, port: metricsPort }, "metrics listening");
  }

  health.set(keys.health?.healthy() ?? true);
  let stoppingHealth = false;
  // The token going away and coming back flips NOT_SERVING / SERVING, until shutdown takes over.
  const stopWatchingKeys = keys.health?.onChange((up) => {
    if (!stoppingHealth) health.set(up);
  });
  logger.info(
    {
      port,
      env: config.env,
      workers: reencryptor.workers,
      keys: keys.list().length,
      mtls: config.tls !== undefined,
      client_crls: config.tls?.crlFiles.length ?? 0,
      policy_version: grants.version,
    },
    "custody listening",
  );
  trail.record("start", {
    pid: process.pid,
    env: config.env,
    port,
    mtls: config.tls !== undefined,
    ...(tlsSerial !== undefined ? { tls_serial: tlsSerial } : {}),
    policy_version: grants.version,
    keys: keys.list().map((k) => `${k.fingerprint} ${k.state}`),
  });

  let stopping: Promise<void> | undefined;
  const shutdown = (graceMs = config.shutdownGraceMs) => {
    stopping ??= (async () => {
      stoppingHealth = true;
      stopWatchingKeys?.();
      health.set(false);
      watcher?.close();
      policyWatcher?.close();
      for (const w of tlsWatchers) w.close();
      clearTimeout(policyTimer);
      clearTimeout(tlsTimer);
      health.endWatchers();
      // One grace period for the whole drain, as documented: in-flight calls, then their connections.
      const graceEnd = Date.now() + graceMs;
      const listenerClosed = listener.close();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          logger.warn("grace period over; cutting remaining calls");
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      await reencryptor.close();
      // grpc-js reports its drain done once every session is told to close (GOAWAY), not once its last
      // call has answered; a connection closes by itself after that answer. Whatever is still open when
      // the grace period ends is cut.
      const cut = setTimeout(() => listener.destroy(), Math.max(0, graceEnd - Date.now()));
      await listenerClosed;
      clearTimeout(cut);
      await keys.close();
      await new Promise((resolve) => (metricsServer ? metricsServer.close(resolve) : resolve(undefined)));
      trail.close({ pid: process.pid });
      logger.info("custody stopped");
    })();
    return stopping;
  };

  return {
    port,
    ...(metricsPort !== undefined ? { metricsPort } : {}),
    health,
    keys,
    listener,
    ...(trail.sink ? { audit: trail.sink } : {}),
    reload,
    reloadTls,
    reloadCallerPolicy,
    shutdown,
  };
}
