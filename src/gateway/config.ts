/**
 * The gateway's configuration: environment variables (secrets may come from a file named by the same
 * variable with a `_FILE` suffix, so they need not sit in the environment), validated once at start-up
 * into one typed object. An invalid value stops the process with a message naming the variable, never
 * its value.
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { z } from "zod";

interface VariableSpec {
  readonly name: string;
  readonly help: string;
  readonly secret?: boolean;
  /** The value used when the variable is unset; the schema below reads it from here, nowhere else. */
  readonly default?: string;
}

/** Every variable the gateway reads, in the order `--help` prints them. */
export const VARIABLES = [
  {
    name: "GATEWAY_ENV",
    help: "production or development; development unlocks the unsafe switches",
    default: "production",
  },
  { name: "GATEWAY_HOST", help: "listen address for the partner webhooks", default: "127.0.0.1" },
  {
    name: "GATEWAY_PORT",
    help: "listen port for the partner webhooks (0 picks a free port)",
    default: "8080",
  },
  { name: "GATEWAY_INTERNAL_PORT", help: "if set, the internal /v1 API listens on this port instead" },
  { name: "GATEWAY_LOG_LEVEL", help: "pino level: fatal, error, warn, info, debug, trace", default: "info" },
  {
    name: "GATEWAY_TRUSTED_PROXIES",
    help: "comma-separated addresses/CIDRs of the proxies in front of the gateway: X-Forwarded-For is believed only from these, and the client IP is the nearest address in it that is not one of them; unset = no proxy, the peer address is the client",
  },
  {
    name: "GATEWAY_REQUEST_TIMEOUT_MS",
    help: "time a client has to send a whole request, headers and body (slow senders are cut off)",
    default: "10000",
  },
  {
    name: "GATEWAY_MAX_EVENT_LOOP_DELAY_MS",
    help: "partner webhooks are answered 503 OVERLOADED while the event loop's mean delay over the last 500 ms exceeds this",
    default: "1000",
  },
  {
    name: "GATEWAY_MAX_WEBHOOKS_IN_FLIGHT",
    help: "webhooks of one partner (Dotva, Knot) handled at once; one more is answered 503 OVERLOADED before anything is stored",
    default: "256",
  },
  {
    name: "GATEWAY_OVERLOAD_RETRY_AFTER_SECONDS",
    help: "Retry-After sent with 503 OVERLOADED",
    default: "10",
  },
  { name: "GATEWAY_STORAGE", help: "sqlite (embedded) or postgres (several instances)", default: "sqlite" },
  {
    name: "GATEWAY_SQLITE_PATH",
    help: "SQLite database file (created 0600)",
    default: "./data/gateway.sqlite",
  },
  {
    name: "GATEWAY_DATABASE_URL",
    help: "PostgreSQL URL, required for postgres; production requires sslmode=verify-full",
    secret: true,
  },
  {
    name: "GATEWAY_INTERNAL_TOKEN",
    help: "bearer token for the internal /v1 API (>= 32 chars)",
    secret: true,
  },
  {
    name: "GATEWAY_SECRETS_TTL_SECONDS",
    help: "a card's secrets_jwe is purged this long after Dotva delivered it (a later switch then cannot send it)",
    default: "2592000",
  },
  {
    name: "GATEWAY_SECRETS_KEEP_AFTER_SEND_SECONDS",
    help: "after the card's first successful send, secrets_jwe is kept this much longer (0: purged at once)",
    default: "3600",
  },
  { name: "DOTVA_SHARED_SECRET", help: "expected value of the Dotva shared-secret header", secret: true },
  { name: "DOTVA_SHARED_SECRET_HEADER", help: "header carrying it", default: "x-dotva-secret" },
  { name: "DOTVA_HMAC_SECRET", help: "key of the HMAC-SHA256 over Dotva's raw body", secret: true },
  {
    name: "DOTVA_HMAC_HEADER",
    help: "header carrying that HMAC, hex or base64",
    default: "x-dotva-signature",
  },
  { name: "DOTVA_IP_ALLOWLIST", help: "comma-separated addresses/CIDRs allowed to call /webhooks/dotva" },
  {
    name: "KNOT_BASE_URL",
    help: "Knot API base URL, https outside development, e.g. https://production.knotapi.com",
  },
  { name: "KNOT_CLIENT_ID", help: "Knot client id (Basic auth user)" },
  { name: "KNOT_CLIENT_SECRET", help: "Knot secret: Basic auth password and webhook HMAC key", secret: true },
  {
    name: "KNOT_WEBHOOK_VERIFY",
    help: "true; false is accepted only with GATEWAY_ENV=development",
    default: "true",
  },
  {
    name: "KNOT_IP_ALLOWLIST",
    help: "comma-separated addresses/CIDRs allowed to call /webhooks/knot (required in production)",
  },
  {
    name: "KNOT_WEBHOOK_TOLERANCE_SECONDS",
    help: "a Knot webhook whose timestamp is further than this from our clock is refused",
    default: "900",
  },
  { name: "KNOT_JWK_TTL_SECONDS", help: "how long a fetched Knot JWE key is reused", default: "300" },
  {
    name: "KNOT_REDIRECT_ORIGINS",
    help: "comma-separated origins besides KNOT_BASE_URL's that Knot may redirect POST /card to (307/308)",
  },
  {
    name: "GATEWAY_CUSTODY_ADDRESS",
    help: "custody gRPC target: host:port, dns:///name:port (every address the name resolves to) or ipv4:a:p,b:p / ipv6:[a]:p,[b]:p; calls are spread round-robin over the reachable ones",
  },
  { name: "GATEWAY_CUSTODY_CA_FILE", help: "PEM CA that signed custody's server certificate" },
  { name: "GATEWAY_CUSTODY_CERT_FILE", help: "PEM client certificate presented to custody (mTLS)" },
  { name: "GATEWAY_CUSTODY_KEY_FILE", help: "PEM private key of that client certificate" },
  {
    name: "GATEWAY_CUSTODY_SERVER_NAME",
    help: "TLS name expected in custody's certificate (default: the address's host part)",
  },
  {
    name: "GATEWAY_CUSTODY_INSECURE",
    help: "true = plaintext gRPC; only with GATEWAY_ENV=development",
    default: "false",
  },
  { name: "SEND_CARD_DEADLINE_MS", help: "time from AUTHENTICATED receipt to give up", default: "15000" },
  { name: "SEND_CARD_ATTEMPT_TIMEOUT_MS", help: "cap on one custody call or Knot request", default: "4000" },
  { name: "SEND_CARD_BACKOFF_BASE_MS", help: "first retry's backoff ceiling", default: "100" },
  { name: "SEND_CARD_BACKOFF_CAP_MS", help: "largest backoff ceiling", default: "2000" },
  {
    name: "SEND_CARD_LEASE_MS",
    help: "how long a claimed job is owned before another worker may take it",
    default: "6000",
  },
  {
    name: "SEND_CARD_POLL_MS",
    help: "how often to look for jobs (restart, other instances)",
    default: "250",
  },
  { name: "SEND_CARD_CONCURRENCY", help: "send-card jobs run at once per instance", default: "32" },
] as const satisfies readonly VariableSpec[];

export type VariableName = (typeof VARIABLES)[number]["name"];

/** The default of each variable that has one, as the environment would spell it. */
export const DEFAULTS = Object.fromEntries(
  VARIABLES.flatMap((v) => ("default" in v ? [[v.name, v.default]] : [])),
) as {
  readonly [K in (typeof VARIABLES)[number] as K extends { default: string } ? K["name"] : never]: string;
};

/**
 * Names this gateway read before issue 14 renamed them: custody has variables of its own, and a
 * gateway variable must not look like one of them. Set in the gateway's environment, each stops the
 * start-up naming its replacement, so a deployment is never half-configured by a silently ignored name.
 */
export const RENAMED: Readonly<Record<string, VariableName>> = {
  CUSTODY_ADDRESS: "GATEWAY_CUSTODY_ADDRESS",
  CUSTODY_CA_FILE: "GATEWAY_CUSTODY_CA_FILE",
  CUSTODY_CERT_FILE: "GATEWAY_CUSTODY_CERT_FILE",
  CUSTODY_KEY_FILE: "GATEWAY_CUSTODY_KEY_FILE",
  CUSTODY_SERVER_NAME: "GATEWAY_CUSTODY_SERVER_NAME",
  CUSTODY_INSECURE: "GATEWAY_CUSTODY_INSECURE",
};

/**
 * Variables whose meaning changed, not just their name: set, each stops the start-up saying what to set
 * instead.
 */
export const REPLACED: Readonly<Record<string, string>> = {
  GATEWAY_TRUST_PROXY:
    "no longer read: it believed X-Forwarded-For by hop count, from whoever sent it; list the proxies' addresses or CIDRs in GATEWAY_TRUSTED_PROXIES",
};

const bool = z.enum(["true", "false"]).transform((v) => v === "true");
const port = z.coerce.number().int().min(0).max(65535);
const positiveMs = z.coerce.number().int().min(1).max(600_000);
const seconds = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

function parseAllowlist(text: string): string[] {
  const entries = text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  for (const entry of entries) {
    const [address, prefix] = entry.split("/");
    const family = isIP(address ?? "");
    const maxPrefix = family === 4 ? 32 : 128;
    const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= maxPrefix);
    if (family === 0 || !prefixOk) throw new Error("must be comma-separated IP addresses or CIDR ranges");
  }
  return entries;
}
const HOST_PORT = /^([A-Za-z0-9.-]{1,253}):(\d{1,5})$/;
const IPV6_PORT = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/;
const validPort = (p: string) => Number(p) >= 1 && Number(p) <= 65535;

/**
 * The gRPC target forms grpc-js resolves that a deployment needs: one host, a DNS name standing for
 * several custody instances (a Kubernetes headless Service), or a fixed list of addresses. Anything
 * else (unix sockets, xds:, an authority in dns://) is refused here rather than failing at first call.
 */
export function isCustodyTarget(text: string): boolean {
  const one = (re: RegExp, family: 0 | 4 | 6) => (entry: string) => {
    const m = re.exec(entry);
    return m !== null && validPort(m[2]!) && (family === 0 || isIP(m[1]!) === family);
  };
  if (text.startsWith("dns:///")) return one(HOST_PORT, 0)(text.slice("dns:///".length));
  if (text.startsWith("ipv4:")) return text.slice(5).split(",").every(one(HOST_PORT, 4));
  if (text.startsWith("ipv6:")) return text.slice(5).split(",").every(one(IPV6_PORT, 6));
  return one(HOST_PORT, 0)(text);
}

const allowlist = z.string().transform((text, ctx) => {
  try {
    return parseAllowlist(text);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
    return z.NEVER;
  }
});

const d = DEFAULTS;
const schema = z.object({
  GATEWAY_ENV: z.enum(["production", "development"]).default(d.GATEWAY_ENV as "production"),
  GATEWAY_HOST: z.string().min(1).default(d.GATEWAY_HOST),
  GATEWAY_PORT: port.default(Number(d.GATEWAY_PORT)),
  GATEWAY_INTERNAL_PORT: port.optional(),
  GATEWAY_LOG_LEVEL: z
    .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
    .default(d.GATEWAY_LOG_LEVEL as "info"),
  GATEWAY_TRUSTED_PROXIES: allowlist.optional(),
  GATEWAY_REQUEST_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(1000)
    .max(60_000)
    .default(Number(d.GATEWAY_REQUEST_TIMEOUT_MS)),
  GATEWAY_MAX_EVENT_LOOP_DELAY_MS: z.coerce
    .number()
    .int()
    .min(10)
    .max(10_000)
    .default(Number(d.GATEWAY_MAX_EVENT_LOOP_DELAY_MS)),
  GATEWAY_MAX_WEBHOOKS_IN_FLIGHT: z.coerce
    .number()
    .int()
    .min(1)
    .max(100_000)
    .default(Number(d.GATEWAY_MAX_WEBHOOKS_IN_FLIGHT)),
  GATEWAY_OVERLOAD_RETRY_AFTER_SECONDS: seconds(1, 3600).default(
    Number(d.GATEWAY_OVERLOAD_RETRY_AFTER_SECONDS),
  ),
  GATEWAY_STORAGE: z.enum(["sqlite", "postgres"]).default(d.GATEWAY_STORAGE as "sqlite"),
  GATEWAY_SQLITE_PATH: z.string().min(1).default(d.GATEWAY_SQLITE_PATH),
  GATEWAY_DATABASE_URL: z.string().min(1).optional(),
  GATEWAY_INTERNAL_TOKEN: z.string().min(32, "must be at least 32 characters"),
  GATEWAY_SECRETS_TTL_SECONDS: seconds(60, 10 * 365 * 86_400).default(Number(d.GATEWAY_SECRETS_TTL_SECONDS)),
  GATEWAY_SECRETS_KEEP_AFTER_SEND_SECONDS: seconds(0, 10 * 365 * 86_400).default(
    Number(d.GATEWAY_SECRETS_KEEP_AFTER_SEND_SECONDS),
  ),
  DOTVA_SHARED_SECRET: z.string().min(16, "must be at least 16 characters").optional(),
  DOTVA_SHARED_SECRET_HEADER: z.string().min(1).default(d.DOTVA_SHARED_SECRET_HEADER),
  DOTVA_HMAC_SECRET: z.string().min(16, "must be at least 16 characters").optional(),
  DOTVA_HMAC_HEADER: z.string().min(1).default(d.DOTVA_HMAC_HEADER),
  DOTVA_IP_ALLOWLIST: allowlist.optional(),
  KNOT_BASE_URL: z.url({ protocol: /^https?$/ }),
  KNOT_CLIENT_ID: z.string().min(1),
  KNOT_CLIENT_SECRET: z.string().min(1),
  KNOT_WEBHOOK_VERIFY: bool.default(d.KNOT_WEBHOOK_VERIFY === "true"),
  KNOT_IP_ALLOWLIST: allowlist.optional(),
  KNOT_WEBHOOK_TOLERANCE_SECONDS: seconds(30, 86_400).default(Number(d.KNOT_WEBHOOK_TOLERANCE_SECONDS)),
  KNOT_JWK_TTL_SECONDS: seconds(1, 86_400).default(Number(d.KNOT_JWK_TTL_SECONDS)),
  KNOT_REDIRECT_ORIGINS: z
    .string()
    .transform((text, ctx) => {
      const origins: string[] = [];
      for (const entry of text
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s.length > 0)) {
        let url: URL | undefined;
        try {
          url = new URL(entry);
        } catch {
          url = undefined;
        }
        if (!url || !/^https?:$/.test(url.protocol) || url.origin !== entry.replace(/\/$/, "")) {
          ctx.addIssue({
            code: "custom",
            message: "must be comma-separated origins such as https://api.knotapi.com",
          });
          return z.NEVER;
        }
        origins.push(url.origin);
      }
      return origins;
    })
    .optional(),
  GATEWAY_CUSTODY_ADDRESS: z.string().transform((text, ctx) => {
    if (isCustodyTarget(text)) return text;
    ctx.addIssue({
      code: "custom",
      message: "must be host:port, dns:///name:port, ipv4:a:port,b:port or ipv6:[a]:port,[b]:port",
    });
    return z.NEVER;
  }),
  GATEWAY_CUSTODY_CA_FILE: z.string().min(1).optional(),
  GATEWAY_CUSTODY_CERT_FILE: z.string().min(1).optional(),
  GATEWAY_CUSTODY_KEY_FILE: z.string().min(1).optional(),
  GATEWAY_CUSTODY_SERVER_NAME: z.string().min(1).optional(),
  GATEWAY_CUSTODY_INSECURE: bool.default(d.GATEWAY_CUSTODY_INSECURE === "true"),
  SEND_CARD_DEADLINE_MS: positiveMs.default(Number(d.SEND_CARD_DEADLINE_MS)),
  SEND_CARD_ATTEMPT_TIMEOUT_MS: positiveMs.default(Number(d.SEND_CARD_ATTEMPT_TIMEOUT_MS)),
  SEND_CARD_BACKOFF_BASE_MS: positiveMs.default(Number(d.SEND_CARD_BACKOFF_BASE_MS)),
  SEND_CARD_BACKOFF_CAP_MS: positiveMs.default(Number(d.SEND_CARD_BACKOFF_CAP_MS)),
  SEND_CARD_LEASE_MS: positiveMs.default(Number(d.SEND_CARD_LEASE_MS)),
  SEND_CARD_POLL_MS: positiveMs.default(Number(d.SEND_CARD_POLL_MS)),
  SEND_CARD_CONCURRENCY: z.coerce.number().int().min(1).max(1024).default(Number(d.SEND_CARD_CONCURRENCY)),
});

type Env = z.infer<typeof schema>;

export interface CustodyTls {
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly serverName?: string;
  /** Where ca, cert and key came from: the custody client re-reads them when they change. */
  readonly files?: { readonly ca: string; readonly cert: string; readonly key: string };
}

export interface GatewayConfig {
  readonly env: "production" | "development";
  readonly host: string;
  readonly port: number;
  readonly internalPort?: number;
  readonly logLevel: Env["GATEWAY_LOG_LEVEL"];
  /** Addresses and CIDRs of the proxies whose X-Forwarded-For is believed; empty = none. */
  readonly trustedProxies: readonly string[];
  readonly requestTimeoutMs: number;
  /** When partner webhooks are shed with 503 OVERLOADED (docs/gateway.md, "Overload"). */
  readonly overload: {
    readonly maxEventLoopDelayMs: number;
    readonly maxWebhooksInFlight: number;
    readonly retryAfterSeconds: number;
  };
  readonly storage:
    | { readonly driver: "sqlite"; readonly path: string }
    | { readonly driver: "postgres"; readonly url: string };
  readonly internalToken: string;
  /** When a stored card's `secrets_jwe` is purged (see docs/gateway.md, "Data retention"). */
  readonly secrets: { readonly ttlMs: number; readonly keepAfterSendMs: number };
  readonly dotva: {
    readonly sharedSecret?: { readonly header: string; readonly value: string };
    readonly hmac?: { readonly header: string; readonly secret: string };
    readonly ipAllowlist?: readonly string[];
  };
  readonly knot: {
    readonly baseUrl: string;
    readonly clientId: string;
    readonly clientSecret: string;
    readonly verifyWebhooks: boolean;
    readonly ipAllowlist?: readonly string[];
    readonly webhookToleranceMs: number;
    readonly jwkTtlMs: number;
    readonly redirectOrigins: readonly string[];
  };
  readonly custody: { readonly address: string; readonly tls: CustodyTls | "insecure" };
  readonly sendCard: {
    readonly deadlineMs: number;
    readonly attemptTimeoutMs: number;
    readonly backoffBaseMs: number;
    readonly backoffCapMs: number;
    readonly leaseMs: number;
    readonly pollMs: number;
    readonly concurrency: number;
  };
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** Reads `NAME` or, for secrets, the file named by `NAME_FILE` (trailing newline trimmed). */
function collect(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const { name, secret } of VARIABLES as readonly VariableSpec[]) {
    const fileVar = `${name}_FILE`;
    if (secret && env[fileVar] !== undefined) {
      if (env[name] !== undefined)
        throw new ConfigError(`${name}: set either ${name} or ${fileVar}, not both`);
      try {
        out[name] = readFileSync(env[fileVar]!, "utf8").replace(/\r?\n$/, "");
      } catch {
        throw new ConfigError(`${fileVar}: cannot read the file it names`);
      }
    } else {
      const value = env[name];
      out[name] = value === "" ? undefined : value;
    }
  }
  return out;
}

function readPem(variable: string, path: string | undefined): Buffer {
  if (path === undefined) throw new ConfigError(`${variable}: required unless GATEWAY_CUSTODY_INSECURE=true`);
  try {
    return readFileSync(path);
  } catch {
    throw new ConfigError(`${variable}: cannot read the file it names`);
  }
}

/** Whether a PostgreSQL URL asks for TLS with the server's certificate chain and name both verified. */
function verifiesServer(url: string): boolean {
  try {
    return new URL(url).searchParams.get("sslmode") === "verify-full";
  } catch {
    return false;
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  for (const [old, replacement] of Object.entries(RENAMED)) {
    if (env[old] !== undefined) {
      throw new ConfigError(`${old}: the gateway no longer reads this name; rename it to ${replacement}`);
    }
  }
  for (const [old, instead] of Object.entries(REPLACED)) {
    if (env[old] !== undefined) throw new ConfigError(`${old}: ${instead}`);
  }
  const parsed = schema.safeParse(collect(env));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0] ?? "configuration");
    const reason = issue.code === "invalid_type" ? "is required" : issue.message;
    throw new ConfigError(`${variable}: ${reason} (see --help)`);
  }
  const e = parsed.data;
  const dev = e.GATEWAY_ENV === "development";
  if (!e.KNOT_WEBHOOK_VERIFY && !dev) {
    throw new ConfigError("KNOT_WEBHOOK_VERIFY: false is only allowed with GATEWAY_ENV=development");
  }
  if (e.GATEWAY_CUSTODY_INSECURE && !dev) {
    throw new ConfigError("GATEWAY_CUSTODY_INSECURE: true is only allowed with GATEWAY_ENV=development");
  }
  // Basic credentials go with every request to Knot, and Knot's JWK decides who can read the card.
  if (!dev && !e.KNOT_BASE_URL.startsWith("https://")) {
    throw new ConfigError("KNOT_BASE_URL: must be an https URL outside GATEWAY_ENV=development");
  }
  if (!dev && (e.KNOT_REDIRECT_ORIGINS ?? []).some((o) => !o.startsWith("https://"))) {
    throw new ConfigError(
      "KNOT_REDIRECT_ORIGINS: every origin must be https outside GATEWAY_ENV=development",
    );
  }
  // Knot's signature leaves task_id, external_user_id and data unsigned: only Knot's own addresses may
  // present one (docs/gateway.md, "Replayed Knot signatures").
  if (!dev && !e.KNOT_IP_ALLOWLIST?.length) {
    throw new ConfigError(
      "KNOT_IP_ALLOWLIST: required in production (Knot's published webhook source addresses, or the proxy in front that only Knot reaches)",
    );
  }
  if (!dev && !e.DOTVA_SHARED_SECRET && !e.DOTVA_HMAC_SECRET && !e.DOTVA_IP_ALLOWLIST) {
    throw new ConfigError(
      "DOTVA_SHARED_SECRET: production needs at least one Dotva sender check (DOTVA_SHARED_SECRET, DOTVA_HMAC_SECRET or DOTVA_IP_ALLOWLIST)",
    );
  }
  if (e.GATEWAY_STORAGE === "postgres" && !e.GATEWAY_DATABASE_URL) {
    throw new ConfigError("GATEWAY_DATABASE_URL: required when GATEWAY_STORAGE=postgres");
  }
  if (e.GATEWAY_STORAGE === "postgres" && !dev && !verifiesServer(e.GATEWAY_DATABASE_URL!)) {
    throw new ConfigError(
      "GATEWAY_DATABASE_URL: production requires a postgres:// URL with sslmode=verify-full (TLS, server certificate and name verified)",
    );
  }
  if (
    e.GATEWAY_INTERNAL_PORT !== undefined &&
    e.GATEWAY_INTERNAL_PORT === e.GATEWAY_PORT &&
    e.GATEWAY_PORT !== 0
  ) {
    throw new ConfigError("GATEWAY_INTERNAL_PORT: must differ from GATEWAY_PORT");
  }
  if (e.SEND_CARD_LEASE_MS <= e.SEND_CARD_ATTEMPT_TIMEOUT_MS) {
    throw new ConfigError("SEND_CARD_LEASE_MS: must be longer than SEND_CARD_ATTEMPT_TIMEOUT_MS");
  }
  const tls: CustodyTls | "insecure" = e.GATEWAY_CUSTODY_INSECURE
    ? "insecure"
    : {
        ca: readPem("GATEWAY_CUSTODY_CA_FILE", e.GATEWAY_CUSTODY_CA_FILE),
        cert: readPem("GATEWAY_CUSTODY_CERT_FILE", e.GATEWAY_CUSTODY_CERT_FILE),
        key: readPem("GATEWAY_CUSTODY_KEY_FILE", e.GATEWAY_CUSTODY_KEY_FILE),
        ...(e.GATEWAY_CUSTODY_SERVER_NAME ? { serverName: e.GATEWAY_CUSTODY_SERVER_NAME } : {}),
        files: {
          ca: e.GATEWAY_CUSTODY_CA_FILE!,
          cert: e.GATEWAY_CUSTODY_CERT_FILE!,
          key: e.GATEWAY_CUSTODY_KEY_FILE!,
        },
      };
  return {
    env: e.GATEWAY_ENV,
    host: e.GATEWAY_HOST,
    port: e.GATEWAY_PORT,
    ...(e.GATEWAY_INTERNAL_PORT !== undefined ? { internalPort: e.GATEWAY_INTERNAL_PORT } : {}),
    logLevel: e.GATEWAY_LOG_LEVEL,
    trustedProxies: e.GATEWAY_TRUSTED_PROXIES ?? [],
    requestTimeoutMs: e.GATEWAY_REQUEST_TIMEOUT_MS,
    overload: {
      maxEventLoopDelayMs: e.GATEWAY_MAX_EVENT_LOOP_DELAY_MS,
      maxWebhooksInFlight: e.GATEWAY_MAX_WEBHOOKS_IN_FLIGHT,
      retryAfterSeconds: e.GATEWAY_OVERLOAD_RETRY_AFTER_SECONDS,
    },
    storage:
      e.GATEWAY_STORAGE === "postgres"
        ? { driver: "postgres", url: e.GATEWAY_DATABASE_URL! }
        : { driver: "sqlite", path: e.GATEWAY_SQLITE_PATH },
    internalToken: e.GATEWAY_INTERNAL_TOKEN,
    secrets: {
      ttlMs: e.GATEWAY_SECRETS_TTL_SECONDS * 1000,
      keepAfterSendMs: e.GATEWAY_SECRETS_KEEP_AFTER_SEND_SECONDS * 1000,
    },
    dotva: {
      ...(e.DOTVA_SHARED_SECRET
        ? {
            sharedSecret: {
              header: e.DOTVA_SHARED_SECRET_HEADER.toLowerCase(),
              value: e.DOTVA_SHARED_SECRET,
            },
          }
        : {}),
      ...(e.DOTVA_HMAC_SECRET
        ? { hmac: { header: e.DOTVA_HMAC_HEADER.toLowerCase(), secret: e.DOTVA_HMAC_SECRET } }
        : {}),
      ...(e.DOTVA_IP_ALLOWLIST ? { ipAllowlist: e.DOTVA_IP_ALLOWLIST } : {}),
    },
    knot: {
      baseUrl: e.KNOT_BASE_URL.replace(/\/+$/, ""),
      clientId: e.KNOT_CLIENT_ID,
      clientSecret: e.KNOT_CLIENT_SECRET,
      verifyWebhooks: e.KNOT_WEBHOOK_VERIFY,
      ...(e.KNOT_IP_ALLOWLIST ? { ipAllowlist: e.KNOT_IP_ALLOWLIST } : {}),
      webhookToleranceMs: e.KNOT_WEBHOOK_TOLERANCE_SECONDS * 1000,
      jwkTtlMs: e.KNOT_JWK_TTL_SECONDS * 1000,
      redirectOrigins: e.KNOT_REDIRECT_ORIGINS ?? [],
    },
    custody: { address: e.GATEWAY_CUSTODY_ADDRESS, tls },
    sendCard: {
      deadlineMs: e.SEND_CARD_DEADLINE_MS,
      attemptTimeoutMs: e.SEND_CARD_ATTEMPT_TIMEOUT_MS,
      backoffBaseMs: e.SEND_CARD_BACKOFF_BASE_MS,
      backoffCapMs: e.SEND_CARD_BACKOFF_CAP_MS,
      leaseMs: e.SEND_CARD_LEASE_MS,
      pollMs: e.SEND_CARD_POLL_MS,
      concurrency: e.SEND_CARD_CONCURRENCY,
    },
  };
}

export function helpText(): string {
  const width = Math.max(...VARIABLES.map((v) => v.name.length));
  const lines = (VARIABLES as readonly VariableSpec[]).map(
    (v) =>
      `  ${v.name.padEnd(width)}  ${v.help}${v.default !== undefined ? ` [default: ${v.default}]` : ""}${v.secret ? ` (or ${v.name}_FILE)` : ""}`,
  );
  return `card-custody gateway: Dotva and Knot webhooks, send-card jobs, internal status API.\n\nEnvironment variables:\n${lines.join("\n")}\n`;
}
