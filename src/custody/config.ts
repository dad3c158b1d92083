/**
 * Custody's configuration: environment variables (and the files they name), validated once at start-up
 * into one typed object. A bad value stops the service with a message naming the variable.
 * `custody --help` prints CONFIG_VARIABLES.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { z } from "zod";
import { configFromUris, MECHANISMS, type Pkcs11StoreConfig } from "../keystore/pkcs11/config.js";
import { type IdentityMatcher, parseIdentityMatcher } from "./caller-identity.js";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

interface VariableDoc {
  readonly name: string;
  readonly help: string;
  readonly default?: string;
}

export const CONFIG_VARIABLES: readonly VariableDoc[] = [
  { name: "CUSTODY_LISTEN", help: "host:port to listen on", default: "127.0.0.1:7443" },
  {
    name: "CUSTODY_TLS_CERT",
    help: "PEM file: the server certificate chain (required unless dev plaintext)",
  },
  { name: "CUSTODY_TLS_KEY", help: "PEM file: the server certificate's private key" },
  {
    name: "CUSTODY_TLS_CLIENT_CA",
    help: "PEM file: CA(s) that issue client certificates; others never reach a handler",
  },
  {
    name: "CUSTODY_ALLOW_REENCRYPT",
    help: "callers allowed ReencryptForKnot: comma list of cn:<CN> / uri:<SAN URI>",
  },
  {
    name: "CUSTODY_ALLOW_HEALTH",
    help: "callers allowed grpc.health.v1 (same syntax); * = any authenticated client",
    default: "*",
  },
  { name: "CUSTODY_KEYSTORE", help: "key store kind: file or pkcs11", default: "file" },
  { name: "CUSTODY_KEY_DIR", help: "directory of PKCS#8 PEM Dotva keys + manifest.json (file store)" },
  {
    name: "CUSTODY_KEY_PASSPHRASE_FILE",
    help: "file holding the passphrase of encrypted PKCS#8 keys (mode 600)",
  },
  {
    name: "CUSTODY_KEY_WATCH",
    help: "1 = also reload when the key directory changes (SIGHUP always reloads)",
    default: "0",
  },
  {
    name: "CUSTODY_PKCS11_URI",
    help: "pkcs11 store: RFC 7512 key URI(s), space-separated, with module-path and pin-source=file:/path or env:NAME (docs/hsm.md)",
  },
  {
    name: "CUSTODY_PKCS11_MECHANISM",
    help: "pkcs11 store: auto, rsa-pkcs-oaep or rsa-x509 (raw RSA + in-process OAEP)",
    default: "auto",
  },
  {
    name: "CUSTODY_PKCS11_SESSIONS",
    help: "pkcs11 store: logged-in sessions (parallel token operations)",
    default: "4",
  },
  {
    name: "CUSTODY_PKCS11_TIMEOUT_MS",
    help: "pkcs11 store: deadline of one token operation",
    default: "5000",
  },
  {
    name: "CUSTODY_PKCS11_HEALTH_INTERVAL_MS",
    help: "pkcs11 store: how often an idle store checks the token",
    default: "5000",
  },
  { name: "CUSTODY_PKCS11_STATE_DIR", help: "pkcs11 store: directory of manifest.json holding key states" },
  { name: "CUSTODY_RECIPIENT_PINS", help: "comma list of allowed Knot key RFC 7638 thumbprints (base64url)" },
  { name: "CUSTODY_RECIPIENT_PINS_FILE", help: "file with one allowed thumbprint per line (# comments)" },
  { name: "CUSTODY_RECIPIENT_ROOTS", help: "PEM file: roots a Knot JWK's x5c chain may lead to" },
  {
    name: "CUSTODY_DEV_ALLOW_ANY_RECIPIENT",
    help: "1 = re-encrypt to ANY key (development only, logged on every call)",
    default: "0",
  },
  {
    name: "CUSTODY_DEV_PLAINTEXT",
    help: "1 = listen WITHOUT TLS and without caller checks (development only)",
    default: "0",
  },
  { name: "CUSTODY_RATE_PER_SECOND", help: "sustained calls per second per caller", default: "2000" },
  { name: "CUSTODY_RATE_BURST", help: "burst size per caller", default: "4000" },
  { name: "CUSTODY_MAX_IN_FLIGHT_PER_CALLER", help: "concurrent calls per caller", default: "256" },
  { name: "CUSTODY_MAX_MESSAGE_BYTES", help: "largest request message accepted", default: "65536" },
  { name: "CUSTODY_WORKERS", help: "re-encryption worker threads", default: "number of cores" },
  { name: "CUSTODY_MAX_QUEUE", help: "jobs waiting for a worker before RESOURCE_EXHAUSTED", default: "1024" },
  { name: "CUSTODY_DEFAULT_DEADLINE_MS", help: "deadline applied to calls that set none", default: "5000" },
  {
    name: "CUSTODY_SHUTDOWN_GRACE_MS",
    help: "on SIGTERM, time in-flight calls get before being cut",
    default: "10000",
  },
  { name: "CUSTODY_LOG_LEVEL", help: "pino level", default: "info" },
];

export function configHelp(): string {
  const width = Math.max(...CONFIG_VARIABLES.map((v) => v.name.length));
  const lines = CONFIG_VARIABLES.map(
    (v) => `  ${v.name.padEnd(width)}  ${v.help}${v.default ? ` [default: ${v.default}]` : ""}`,
  );
  return [
    "custody: the card custody gRPC service (custody.v1.CardCustody + grpc.health.v1.Health)",
    "",
    "Configuration comes from environment variables:",
    ...lines,
    "",
    "Signals: SIGHUP reloads the key directory; SIGTERM drains in-flight calls and exits.",
    "Details: docs/custody.md",
  ].join("\n");
}

export type KeyStoreConfig =
  | {
      readonly kind: "file";
      readonly dir: string;
      readonly passphraseFile?: string;
      readonly watch: boolean;
    }
  | { readonly kind: "pkcs11"; readonly pkcs11: Pkcs11StoreConfig };

export interface CustodyConfig {
  readonly listen: { readonly host: string; readonly port: number };
  /** Absent only in dev plaintext mode. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer; readonly clientCa: Buffer };
  readonly devPlaintext: boolean;
  readonly callers: {
    readonly reencrypt: readonly IdentityMatcher[];
    /** "any" = every client that presented a certificate from the client CA. */
    readonly health: readonly IdentityMatcher[] | "any";
  };
  readonly keyStore: KeyStoreConfig;
  readonly recipients: {
    readonly pinnedThumbprints: ReadonlySet<string>;
    readonly roots: readonly X509Certificate[];
    readonly allowAny: boolean;
  };
  readonly limits: {
    readonly ratePerSecond: number;
    readonly burst: number;
    readonly maxInFlightPerCaller: number;
    readonly maxMessageBytes: number;
    readonly maxQueue: number;
    readonly defaultDeadlineMs: number;
  };
  readonly workers: number;
  readonly shutdownGraceMs: number;
  readonly logLevel: string;
}

type Env = Readonly<Record<string, string | undefined>>;

const flag = z.enum(["0", "1", "true", "false"]).transform((v) => v === "1" || v === "true");
const positiveInt = z.coerce.number().int().positive();
const THUMBPRINT = /^[A-Za-z0-9_-]{43}$/;

function read<T>(env: Env, name: string, schema: z.ZodType<T>, fallback?: string): T {
  const raw = env[name] ?? fallback;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`${name}: ${raw === undefined ? "is required" : issue.message}`);
  }
  return parsed.data;
}

function readFile(env: Env, name: string): Buffer {
  const path = read(env, name, z.string().min(1));
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${name}: cannot read ${path} (${(err as NodeJS.ErrnoException).code})`);
  }
}

function identities(env: Env, name: string, fallback?: string): IdentityMatcher[] | "any" {
  const raw = read(env, name, z.string().min(1, "must not be empty"), fallback);
  if (raw.trim() === "*") return "any";
  return raw.split(",").map((entry) => {
    const matcher = parseIdentityMatcher(entry);
    if (!matcher) throw new ConfigError(`${name}: "${entry.trim()}" is not cn:<name> or uri:<uri>`);
    return matcher;
  });
}

function pins(env: Env): Set<string> {
  const list: string[] = [];
  if (env.CUSTODY_RECIPIENT_PINS) list.push(...env.CUSTODY_RECIPIENT_PINS.split(","));
  if (env.CUSTODY_RECIPIENT_PINS_FILE) {
    const text = readFile(env, "CUSTODY_RECIPIENT_PINS_FILE").toString("utf8");
    list.push(...text.split("\n").map((line) => line.replace(/#.*/, "")));
  }
  const trimmed = list.map((p) => p.trim()).filter((p) => p.length > 0);
  for (const pin of trimmed) {
    if (!THUMBPRINT.test(pin)) {
      const where = env.CUSTODY_RECIPIENT_PINS?.includes(pin)
        ? "CUSTODY_RECIPIENT_PINS"
        : "CUSTODY_RECIPIENT_PINS_FILE";
      throw new ConfigError(
        `${where}: "${pin}" is not an RFC 7638 SHA-256 thumbprint (43 base64url characters)`,
      );
    }
  }
  return new Set(trimmed);
}

function roots(env: Env): X509Certificate[] {
  if (!env.CUSTODY_RECIPIENT_ROOTS) return [];
  const pem = readFile(env, "CUSTODY_RECIPIENT_ROOTS").toString("ascii");
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new ConfigError("CUSTODY_RECIPIENT_ROOTS: no PEM certificate in the file");
  try {
    return blocks.map((block) => new X509Certificate(block));
  } catch {
    throw new ConfigError("CUSTODY_RECIPIENT_ROOTS: a certificate in the file cannot be parsed");
  }
}

function pkcs11FromEnv(env: Env): Pkcs11StoreConfig {
  const uris = read(env, "CUSTODY_PKCS11_URI", z.string().min(1))
    .split(/\s+/)
    .filter((u) => u !== "");
  const int = (name: string, fallback: string) => read(env, name, z.coerce.number().int(), fallback);
  try {
    return configFromUris(uris, {
      mechanism: read(env, "CUSTODY_PKCS11_MECHANISM", z.enum(MECHANISMS), "auto"),
      sessions: int("CUSTODY_PKCS11_SESSIONS", "4"),
      operationTimeoutMs: int("CUSTODY_PKCS11_TIMEOUT_MS", "5000"),
      healthCheckIntervalMs: int("CUSTODY_PKCS11_HEALTH_INTERVAL_MS", "5000"),
      ...(env.CUSTODY_PKCS11_STATE_DIR ? { manifestDir: env.CUSTODY_PKCS11_STATE_DIR } : {}),
    });
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`CUSTODY_PKCS11_URI: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function loadConfig(env: Env = process.env): CustodyConfig {
  const listenText = read(env, "CUSTODY_LISTEN", z.string(), "127.0.0.1:7443");
  const listen = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(listenText);
  const port = Number(listen?.[2]);
  if (!listen || port > 65535)
    throw new ConfigError("CUSTODY_LISTEN: must be host:port, e.g. 127.0.0.1:7443");

  const devPlaintext = read(env, "CUSTODY_DEV_PLAINTEXT", flag, "0");
  const tls = devPlaintext
    ? undefined
    : {
        cert: readFile(env, "CUSTODY_TLS_CERT"),
        key: readFile(env, "CUSTODY_TLS_KEY"),
        clientCa: readFile(env, "CUSTODY_TLS_CLIENT_CA"),
      };

  const reencrypt = identities(env, "CUSTODY_ALLOW_REENCRYPT");
  if (reencrypt === "any")
    throw new ConfigError("CUSTODY_ALLOW_REENCRYPT: name the callers; * is not allowed");

  const kind = read(env, "CUSTODY_KEYSTORE", z.enum(["file", "pkcs11"]), "file");
  const keyStore: KeyStoreConfig =
    kind === "pkcs11"
      ? { kind, pkcs11: pkcs11FromEnv(env) }
      : {
          kind,
          dir: read(env, "CUSTODY_KEY_DIR", z.string().min(1)),
          ...(env.CUSTODY_KEY_PASSPHRASE_FILE ? { passphraseFile: env.CUSTODY_KEY_PASSPHRASE_FILE } : {}),
          watch: read(env, "CUSTODY_KEY_WATCH", flag, "0"),
        };

  const recipients = {
    pinnedThumbprints: pins(env),
    roots: roots(env),
    allowAny: read(env, "CUSTODY_DEV_ALLOW_ANY_RECIPIENT", flag, "0"),
  };
  if (recipients.pinnedThumbprints.size === 0 && recipients.roots.length === 0 && !recipients.allowAny) {
    throw new ConfigError(
      "CUSTODY_RECIPIENT_PINS: no recipient can be allowed; set it, CUSTODY_RECIPIENT_PINS_FILE or CUSTODY_RECIPIENT_ROOTS",
    );
  }

  return {
    listen: { host: listen[1]!.replace(/^\[|\]$/g, ""), port },
    ...(tls ? { tls } : {}),
    devPlaintext,
    callers: { reencrypt, health: identities(env, "CUSTODY_ALLOW_HEALTH", "*") },
    keyStore,
    recipients,
    limits: {
      ratePerSecond: read(env, "CUSTODY_RATE_PER_SECOND", positiveInt, "2000"),
      burst: read(env, "CUSTODY_RATE_BURST", positiveInt, "4000"),
      maxInFlightPerCaller: read(env, "CUSTODY_MAX_IN_FLIGHT_PER_CALLER", positiveInt, "256"),
      maxMessageBytes: read(env, "CUSTODY_MAX_MESSAGE_BYTES", positiveInt.max(4 * 1024 * 1024), "65536"),
      maxQueue: read(env, "CUSTODY_MAX_QUEUE", positiveInt, "1024"),
      defaultDeadlineMs: read(env, "CUSTODY_DEFAULT_DEADLINE_MS", positiveInt, "5000"),
    },
    workers: read(env, "CUSTODY_WORKERS", positiveInt.max(256), String(availableParallelism())),
    shutdownGraceMs: read(env, "CUSTODY_SHUTDOWN_GRACE_MS", positiveInt, "10000"),
    logLevel: read(
      env,
      "CUSTODY_LOG_LEVEL",
      z.enum(["fatal", "error", "warn", "info", "debug", "trace"]),
      "info",
    ),
  };
}
