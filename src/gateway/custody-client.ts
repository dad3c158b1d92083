/**
 * The gateway's side of custody.v1.CardCustody over mTLS (grpc-js). One long-lived channel per custody
 * address, shared by the ReencryptForKnot and health stubs and kept alive by HTTP/2 pings, so a card
 * send never pays a TCP + TLS handshake and a silently dropped connection is noticed between sends
 * rather than on one. Every call carries a deadline so a slow custody never holds a send-card job past
 * Knot's window.
 *
 * The address may name several custody instances (`dns:///name:port`, `ipv4:a:p,b:p`): the channel then
 * holds one connection per instance and spreads calls round-robin over those that are connected. An
 * instance that dies or drains (TCP reset, GOAWAY, unanswered keepalive) leaves the rotation until it
 * accepts connections again, and the calls it was holding fail UNAVAILABLE, which the send-card job
 * retries on another instance inside its deadline. grpc-js (1.14) does not implement the service
 * config's `healthCheckConfig` (checked in node_modules/@grpc/grpc-js: nothing reads it), so an
 * instance that stays connected while NOT_SERVING (its HSM token gone) keeps its turn: its calls fail
 * UNAVAILABLE (KEY_STORE_UNAVAILABLE) and the job's retry goes to the next instance. On SIGTERM custody
 * stops accepting calls (tryShutdown sends GOAWAY), which takes it out of the rotation at once.
 *
 * Client certificate rotation: when the CA, certificate or key file changes (an agent renewing a
 * short-lived SVID), the three are re-read and, once the key matches the certificate, a new channel is
 * made for calls from then on; the old one is closed when its last call has finished, so a rotation
 * fails no call. A set that is not consistent yet (the certificate written, the key not) is ignored until
 * the next change.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { type FSWatcher, readFileSync, watch } from "node:fs";
import { basename, dirname } from "node:path";
import {
  Channel,
  type ChannelCredentials,
  type ChannelOptions,
  credentials,
  Metadata,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import type { CardCustodyClient } from "../contract/generated/custody/v1/CardCustody.js";
import type { ReencryptForKnotRequest } from "../contract/generated/custody/v1/ReencryptForKnotRequest.js";
import type { ReencryptForKnotResponse__Output } from "../contract/generated/custody/v1/ReencryptForKnotResponse.js";
import { loadCustodyProto, loadHealthProto } from "../contract/proto.js";
import { isReasonCode, type ReasonCode } from "../contract/reason-codes.js";
import type { CustodyTls, GatewayConfig } from "./config.js";
import { SendCardError } from "./errors.js";

// Worth retrying inside the deadline: the service or network is momentarily unable, not the request.
/**
 * A send-card job's code for a custody refusal: custody's reason, prefixed so that a job's record tells
 * custody's reasons apart from Knot's and the gateway's own.
 */
export function custodyJobCode(reason: ReasonCode): string {
  return `CUSTODY_${reason}`;
}

const RETRYABLE = new Set([
  status.UNAVAILABLE,
  status.DEADLINE_EXCEEDED,
  status.RESOURCE_EXHAUSTED,
  status.ABORTED,
]);

export interface CustodyCaller {
  reencrypt(req: ReencryptForKnotRequest, timeoutMs: number): Promise<ReencryptForKnotResponse__Output>;
  /** grpc.health.v1 check; resolves true when SERVING. */
  healthy(timeoutMs: number): Promise<boolean>;
  close(): void;
}

/** What the client reports about certificate reloads (the gateway's logger). */
export interface TlsReloadLog {
  info(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

/** Re-reads the client's TLS files; throws unless the key is the certificate's. */
function readClientTls(
  tls: CustodyTls,
  files: NonNullable<CustodyTls["files"]>,
): CustodyTls & { serial: string } {
  const ca = readFileSync(files.ca);
  const cert = readFileSync(files.cert);
  const key = readFileSync(files.key);
  const leaf = new X509Certificate(cert);
  if (!leaf.checkPrivateKey(createPrivateKey(key))) {
    throw new Error("GATEWAY_CUSTODY_KEY_FILE is not the key of GATEWAY_CUSTODY_CERT_FILE's certificate");
  }
  if (!new X509Certificate(ca).ca)
    throw new Error("GATEWAY_CUSTODY_CA_FILE does not start with a CA certificate");
  return { ...tls, ca, cert, key, serial: leaf.serialNumber };
}

function channelCredentials(tls: GatewayConfig["custody"]["tls"]): ChannelCredentials {
  if (tls === "insecure") return credentials.createInsecure();
  return credentials.createSsl(tls.ca, tls.key, tls.cert);
}

/** HTTP/2 keepalive of the custody channel: a ping after this long without traffic, also between calls. */
export const CUSTODY_KEEPALIVE_MS = 30_000;
const KEEPALIVE_TIMEOUT_MS = 10_000;

/** Reconnection back-off towards a custody instance that went away (grpc-js channel options). */
export const CUSTODY_RECONNECT_BACKOFF_MS = { initial: 250, max: 1_000 } as const;

/** gRPC service config: spread calls over every resolved custody address, not just the first. */
export const CUSTODY_SERVICE_CONFIG = JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] });

export function custodyClient(
  cfg: GatewayConfig["custody"],
  keepaliveMs: number = CUSTODY_KEEPALIVE_MS,
  log?: TlsReloadLog,
): CustodyCaller {
  const options: ChannelOptions = {
    "grpc.keepalive_time_ms": keepaliveMs,
    "grpc.keepalive_timeout_ms": KEEPALIVE_TIMEOUT_MS,
    "grpc.keepalive_permit_without_calls": 1,
    // grpc-js's default back-off between reconnection attempts grows from 1 s to 120 s: a custody that
    // restarts in a few seconds would be tried again only after Knot's 15 s window had closed for every
    // job waiting on it (src/gateway/custody-restart.test.ts). Trying a lost instance every second at
    // most costs one TCP SYN a second.
    "grpc.initial_reconnect_backoff_ms": CUSTODY_RECONNECT_BACKOFF_MS.initial,
    "grpc.max_reconnect_backoff_ms": CUSTODY_RECONNECT_BACKOFF_MS.max,
    "grpc.service_config": CUSTODY_SERVICE_CONFIG,
    // The resolver's answer wins over a service config published in DNS TXT records, which nobody signs.
    "grpc.service_config_disable_resolution": 1,
    ...(cfg.tls !== "insecure" && cfg.tls.serverName
      ? { "grpc.ssl_target_name_override": cfg.tls.serverName }
      : {}),
  };
  const Health = loadHealthProto().grpc.health.v1.Health;
  interface Generation {
    readonly channel: Channel;
    readonly client: CardCustodyClient;
    readonly health: {
      Check(
        req: { service: string },
        opts: { deadline: number },
        cb: (e: ServiceError | null, r?: { status: string }) => void,
      ): void;
    };
    inFlight: number;
    retired: boolean;
  }
  const open = (tls: GatewayConfig["custody"]["tls"]): Generation => {
    const creds = channelCredentials(tls);
    const channel = new Channel(cfg.address, creds, options);
    return {
      channel,
      client: new (loadCustodyProto().custody.v1.CardCustody)(cfg.address, creds, {
        channelOverride: channel,
      }) as CardCustodyClient,
      health: new Health(cfg.address, creds, { channelOverride: channel }) as unknown as Generation["health"],
      inFlight: 0,
      retired: false,
    };
  };
  let current = open(cfg.tls);
  // A call holds its generation until it ends; a retired generation closes with its last call.
  const begin = () => {
    const gen = current;
    gen.inFlight++;
    return () => {
      gen.inFlight--;
      if (gen.retired && gen.inFlight === 0) gen.channel.close();
    };
  };

  const watchers: FSWatcher[] = [];
  // A reload due after close() must not open a channel nobody closes.
  let reloadTimer: NodeJS.Timeout | undefined;
  const tls = cfg.tls;
  if (tls !== "insecure" && tls.files) {
    const files = tls.files;
    const names = new Set([files.ca, files.cert, files.key].map((f) => basename(f)));
    const reload = () => {
      let next: ReturnType<typeof readClientTls>;
      try {
        next = readClientTls(tls, files);
      } catch (err) {
        log?.error(
          { reason: err instanceof Error ? err.message : String(err) },
          "custody client TLS reload failed; keeping the current certificate",
        );
        return;
      }
      const old = current;
      current = open(next);
      old.retired = true;
      if (old.inFlight === 0) old.channel.close();
      log?.info({ serial: next.serial }, "custody client certificate reloaded");
    };
    for (const dir of new Set([files.ca, files.cert, files.key].map((f) => dirname(f)))) {
      watchers.push(
        watch(dir, (_event, name) => {
          if (name !== null && !names.has(name) && !name.startsWith("..")) return;
          clearTimeout(reloadTimer);
          reloadTimer = setTimeout(reload, 200);
        }),
      );
    }
  }

  return {
    reencrypt(req, timeoutMs) {
      const end = begin();
      const { client } = current;
      return new Promise((resolve, reject) => {
        client.ReencryptForKnot(
          req,
          new Metadata(),
          { deadline: Date.now() + timeoutMs },
          (error, response) => {
            end();
            if (!error && response) return resolve(response);
            const e = error as ServiceError;
            const reason = e?.metadata?.get("custody-reason")[0];
            const code = typeof reason === "string" && isReasonCode(reason) ? reason : undefined;
            const name = status[e?.code ?? status.UNKNOWN] ?? "UNKNOWN";
            reject(
              new SendCardError(
                code ? custodyJobCode(code) : `CUSTODY_${name}`,
                `custody ReencryptForKnot failed: ${name}${code ? ` (${code})` : ""}`,
                RETRYABLE.has(e?.code),
              ),
            );
          },
        );
      });
    },
    healthy(timeoutMs) {
      const end = begin();
      const { health } = current;
      return new Promise((resolve) => {
        health.Check({ service: "" }, { deadline: Date.now() + timeoutMs }, (error, response) => {
          end();
          resolve(!error && response?.status === "SERVING");
        });
      });
    },
    close() {
      clearTimeout(reloadTimer);
      for (const w of watchers) w.close();
      current.channel.close();
    },
  };
}
