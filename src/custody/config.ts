/**
 * Custody's configuration: environment variables (and the files they name), validated once at start-up
 * into one typed object. A bad value stops the service with a message naming the variable.
 * `custody --help` prints CONFIG_VARIABLES.
 */
import "reflect-metadata";
import { createPrivateKey, X509Certificate as NodeX509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { availableParallelism } from "node:os";
import { dirname, resolve } from "node:path";
import { BasicConstraintsExtension, X509Certificate, X509Crl } from "@peculiar/x509";
import { z } from "zod";
import { type IdentityMatcher, isSpiffeId, parseIdentityMatcher } from "./caller-identity.js";
import { configFromUris, MECHANISMS, type Pkcs11StoreConfig } from "./keystore/pkcs11/config.js";
import { canonicalSubject, type X5cPolicyEntry } from "./recipient-policy.js";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

interface VariableDoc {
  readonly name: string;
  readonly help: string;
  readonly default?: string;
}

export const CONFIG_VARIABLES: readonly VariableDoc[] = [
  {
    name: "CUSTODY_ENV",
    help: "production or development; development unlocks the CUSTODY_DEV_* switches and cn: callers, and listens on loopback only",
    default: "production",
  },
  { name: "CUSTODY_LISTEN", help: "host:port to listen on", default: "127.0.0.1:7443" },
  {
    name: "CUSTODY_TLS_CERT",
    help: "PEM file: the server certificate chain (required unless dev plaintext); re-read with its key when either changes, and on SIGHUP",
  },
  { name: "CUSTODY_TLS_KEY", help: "PEM file: the server certificate's private key" },
  {
    name: "CUSTODY_TLS_CLIENT_CA",
    help: "PEM file: CA(s) that issue client certificates; others never reach a handler",
  },
  {
    name: "CUSTODY_TLS_CLIENT_CRL",
    help: "comma list of PEM CRL files of the client CA(s), checked at every handshake (re-read on change and on SIGHUP, like the certificate, key and client CA)",
  },
  {
    name: "CUSTODY_MAX_CONNECTION_AGE_MS",
    help: "connections older than this are closed (GOAWAY), so clients re-handshake and revocation applies",
    default: "600000",
  },
  {
    name: "CUSTODY_MAX_CONNECTION_AGE_GRACE_MS",
    help: "time calls on a closing connection get to finish",
    default: "30000",
  },
  {
    name: "CUSTODY_ALLOW_REENCRYPT",
    help: "without CUSTODY_CALLER_POLICY_FILE: callers allowed ReencryptForKnot with any key, comma list of uri:<SPIFFE ID> (cn:<CN> in development only)",
  },
  {
    name: "CUSTODY_CALLER_POLICY_FILE",
    help: "JSON file of per-caller grants: the Dotva keys each SPIFFE ID may decrypt with and the Knot recipients it may encrypt to (docs/custody.md); replaces CUSTODY_ALLOW_REENCRYPT and CUSTODY_RECIPIENT_*; re-read on SIGHUP and on change",
  },
  {
    name: "CUSTODY_ALLOW_HEALTH",
    help: "callers allowed grpc.health.v1 (same syntax); * = any authenticated client (explicit only); unset = the callers allowed ReencryptForKnot (CUSTODY_ALLOW_REENCRYPT or the caller policy file)",
    default: "the ReencryptForKnot callers",
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
    help: "pkcs11 store: RFC 7512 key URI(s), space-separated, with module-path and pin-source=file:/path (env:NAME with CUSTODY_ENV=development only) (docs/hsm.md)",
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
  {
    name: "CUSTODY_RECIPIENT_X5C_POLICY",
    help: 'JSON file binding each x5c root to Knot\'s leaf: {"entries":[{"root":"file.pem","leaf_dns":"..."}]}',
  },
  {
    name: "CUSTODY_DEV_ALLOW_ANY_RECIPIENT",
    help: "1 = re-encrypt to ANY key (CUSTODY_ENV=development only, logged on every call)",
    default: "0",
  },
  {
    name: "CUSTODY_DEV_PLAINTEXT",
    help: "1 = listen WITHOUT TLS and without caller checks (CUSTODY_ENV=development only)",
    default: "0",
  },
  { name: "CUSTODY_RATE_PER_SECOND", help: "sustained calls per second per caller", default: "2000" },
  { name: "CUSTODY_RATE_BURST", help: "burst size per caller", default: "4000" },
  { name: "CUSTODY_MAX_IN_FLIGHT_PER_CALLER", help: "concurrent calls per caller", default: "256" },
  { name: "CUSTODY_MAX_MESSAGE_BYTES", help: "largest request message accepted", default: "65536" },
  {
    name: "CUSTODY_WORKERS",
    help: "re-encryption worker threads; 0 = inline on the main thread (one core per process: run one process per core)",
    default: "number of cores",
  },
  { name: "CUSTODY_MAX_QUEUE", help: "jobs waiting for a worker before RESOURCE_EXHAUSTED", default: "1024" },
  {
    name: "CUSTODY_DEFAULT_DEADLINE_MS",
    help: "deadline applied to calls that set none (at most CUSTODY_MAX_CALL_DEADLINE_MS)",
    default: "5000",
  },
  {
    name: "CUSTODY_MAX_CALL_DEADLINE_MS",
    help: "cap on any call's deadline: a longer or absent one is cut here and answered DEADLINE_EXCEEDED (keep it above the gateway's SEND_CARD_ATTEMPT_TIMEOUT_MS)",
    default: "5000",
  },
  {
    name: "CUSTODY_MAX_CONNECTIONS",
    help: "open TCP connections (TLS or not yet); one more is closed at once",
    default: "256",
  },
  {
    name: "CUSTODY_MAX_HANDSHAKES",
    help: "TLS handshakes in progress; a connection beyond it is closed at once",
    default: "64",
  },
  {
    name: "CUSTODY_HANDSHAKE_TIMEOUT_MS",
    help: "a connection whose TLS handshake has not finished after this long is closed",
    default: "5000",
  },
  {
    name: "CUSTODY_SHUTDOWN_GRACE_MS",
    help: "on SIGTERM, time in-flight calls get before being cut",
    default: "10000",
  },
  {
    name: "CUSTODY_METRICS_LISTEN",
    help: "Prometheus metrics (GET /metrics, plain HTTP) on a separate listener: port (loopback) or host:port; unset = off",
  },
  {
    name: "CUSTODY_AUDIT_FILE",
    help: "the audit chain: append-only (mode 600), hash-chained JSON lines, one per call written before the answer, plus handshake failures and reloads (docs/custody.md); its directory must be writable; required in production; in development, unset = the audit record goes to the operator log only",
  },
  {
    name: "CUSTODY_AUDIT_FSYNC",
    help: "1 = fdatasync after every audit line, so lines also survive power loss (a disk flush per call); 0 = lines survive the process being killed, not the machine losing power",
    default: "0",
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
    "Signals: SIGHUP reloads the key directory, the client CRLs and the caller policy file; SIGTERM drains in-flight calls and exits.",
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

export type CustodyEnv = "production" | "development";

export interface TlsConfig {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly clientCa: Buffer;
  /** Where cert, key and clientCa came from: watched, and re-read on change and on SIGHUP. */
  readonly files: { readonly cert: string; readonly key: string; readonly clientCa: string };
  /** CRL files of the client CA(s), re-read on SIGHUP; empty = no revocation check. */
  readonly crlFiles: readonly string[];
  readonly crl: readonly Buffer[];
}

export interface CustodyConfig {
  readonly env: CustodyEnv;
  readonly listen: { readonly host: string; readonly port: number };
  /** Absent only in dev plaintext mode. */
  readonly tls?: TlsConfig;
  readonly devPlaintext: boolean;
  readonly connection: {
    readonly maxAgeMs: number;
    readonly maxAgeGraceMs: number;
    /** Open TCP connections, handshaking or not; one more is closed on arrival. */
    readonly maxConnections: number;
    /** TLS handshakes in progress; one more connection is closed on arrival. */
    readonly maxHandshakes: number;
    readonly handshakeTimeoutMs: number;
  };
  /** Per-caller grants (caller-policy.ts); when set, callers.reencrypt and recipients are empty. */
  readonly callerPolicyFile?: string;
  readonly callers: {
    readonly reencrypt: readonly IdentityMatcher[];
    /**
     * "any" = every client that presented a certificate from the client CA; "reencrypt-callers" (the
     * default) = whoever the grants in force allow ReencryptForKnot.
     */
    readonly health: readonly IdentityMatcher[] | "any" | "reencrypt-callers";
  };
  readonly keyStore: KeyStoreConfig;
  readonly recipients: {
    readonly pinnedThumbprints: ReadonlySet<string>;
    readonly x5c: readonly X5cPolicyEntry[];
    readonly allowAny: boolean;
  };
  readonly limits: {
    readonly ratePerSecond: number;
    readonly burst: number;
    readonly maxInFlightPerCaller: number;
    readonly maxMessageBytes: number;
    readonly maxQueue: number;
    readonly defaultDeadlineMs: number;
    /** No call runs longer: a later or absent client deadline is replaced by this one. */
    readonly maxCallDeadlineMs: number;
  };
  /** Re-encryption worker threads; 0 = inline on the main thread. */
  readonly workers: number;
  readonly shutdownGraceMs: number;
  readonly logLevel: string;
  /** The audit chain; `file` absent only in development. */
  readonly audit: { readonly file?: string; readonly fsync: boolean };
  /** Absent = no metrics listener. */
  readonly metricsListen?: { readonly host: string; readonly port: number };
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

function identities(env: Env, name: string, mode: CustodyEnv, fallback?: string): IdentityMatcher[] | "any" {
  const raw = read(env, name, z.string().min(1, "must not be empty"), fallback);
  if (raw.trim() === "*") return "any";
  return raw.split(",").map((entry) => {
    const matcher = parseIdentityMatcher(entry);
    if (!matcher) throw new ConfigError(`${name}: "${entry.trim()}" is not cn:<name> or uri:<uri>`);
    // In production a caller is its one SPIFFE ID: a CN is whatever the CA's customer asked for.
    if (mode === "production" && matcher.kind === "cn") {
      throw new ConfigError(
        `${name}: "${entry.trim()}": cn: entries are refused outside CUSTODY_ENV=development; name the caller's SPIFFE ID as uri:spiffe://...`,
      );
    }
    if (mode === "production" && !isSpiffeId(matcher.value)) {
      throw new ConfigError(
        `${name}: "${entry.trim()}" is not a SPIFFE ID (uri:spiffe://<trust domain>/<path>)`,
      );
    }
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

export const X5C_ENTRY = z
  .object({
    root: z.string().min(1),
    leaf_dns: z
      .string()
      .regex(/^(\*\.)?([A-Za-z0-9-]{1,63}\.)*[A-Za-z0-9-]{1,63}$/, "is not a DNS name")
      .optional(),
    leaf_subject: z.string().min(1).optional(),
  })
  .strict()
  .refine((e) => e.leaf_dns !== undefined || e.leaf_subject !== undefined, {
    message:
      "each entry needs leaf_dns and/or leaf_subject: a root alone would trust every certificate it issues",
  });

const X5C_POLICY_FILE = z.object({ entries: z.array(X5C_ENTRY).min(1) }).strict();

function x5cPolicy(env: Env): X5cPolicyEntry[] {
  if (env.CUSTODY_RECIPIENT_ROOTS !== undefined) {
    throw new ConfigError(
      "CUSTODY_RECIPIENT_ROOTS: no longer accepted (it trusted anything under a root); use CUSTODY_RECIPIENT_X5C_POLICY, which binds each root to Knot's leaf name",
    );
  }
  const name = "CUSTODY_RECIPIENT_X5C_POLICY";
  if (!env[name]) return [];
  let parsed: z.infer<typeof X5C_POLICY_FILE>;
  try {
    parsed = X5C_POLICY_FILE.parse(JSON.parse(readFile(env, name).toString("utf8")));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const detail =
      err instanceof z.ZodError
        ? `${err.issues[0]!.path.join(".")} ${err.issues[0]!.message}`
        : "not valid JSON";
    throw new ConfigError(`${name}: ${detail}`);
  }
  return resolveX5cEntries(parsed.entries, dirname(resolve(env[name]!)), `${name}: entries`);
}

/**
 * Turns validated x5c entries into policy entries: each root file (relative to `base`) must hold exactly
 * one CA certificate, each leaf_subject must be written in canonical form. `where` prefixes errors.
 */
export function resolveX5cEntries(
  entries: readonly z.infer<typeof X5C_ENTRY>[],
  base: string,
  where: string,
): X5cPolicyEntry[] {
  return entries.map((entry, i) => {
    const at = `${where}.${i}`;
    const file = resolve(base, entry.root);
    let root: X509Certificate;
    try {
      const pem = readFileSync(file, "ascii");
      const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
      if (blocks.length !== 1)
        throw new ConfigError(`${at}.root: ${file} must hold exactly one PEM certificate`);
      root = new X509Certificate(blocks[0]!);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`${at}.root: cannot read a certificate from ${file}`);
    }
    if (!root.getExtension(BasicConstraintsExtension)?.ca) {
      throw new ConfigError(`${at}.root: ${file} is not a CA certificate (basicConstraints cA)`);
    }
    let leafSubject: string | undefined;
    if (entry.leaf_subject !== undefined) {
      try {
        leafSubject = canonicalSubject(entry.leaf_subject);
      } catch {
        throw new ConfigError(
          `${at}.leaf_subject: not a distinguished name written as "CN=..., O=..." (certificate order, no spaces around =)`,
        );
      }
    }
    return {
      root,
      label: entry.root,
      ...(entry.leaf_dns !== undefined ? { leafDns: entry.leaf_dns.toLowerCase() } : {}),
      ...(leafSubject !== undefined ? { leafSubject } : {}),
    };
  });
}

/**
 * Reads and checks the client CRLs: each must come from one of the client CAs and not be past its
 * nextUpdate. OpenSSL then refuses, at the handshake, a certificate a CRL lists (and, failing closed,
 * every certificate of a CA whose CRL has expired). The CRL's signature is checked by OpenSSL, which
 * ignores a CRL whose signature does not verify and then refuses that CA's clients.
 */
export function loadClientCrls(files: readonly string[], clientCa: Buffer, now: Date): Buffer[] {
  const name = "CUSTODY_TLS_CLIENT_CRL";
  const caSubjects = new Set(
    (
      clientCa.toString("ascii").match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
    ).map((pem) => new X509Certificate(pem).subject),
  );
  return files.map((file) => {
    let pem: Buffer;
    try {
      pem = readFileSync(file);
    } catch (err) {
      throw new ConfigError(`${name}: cannot read ${file} (${(err as NodeJS.ErrnoException).code})`);
    }
    const blocks =
      pem.toString("ascii").match(/-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g) ?? [];
    if (blocks.length === 0) throw new ConfigError(`${name}: ${file} holds no PEM CRL (BEGIN X509 CRL)`);
    for (const block of blocks) {
      let crl: X509Crl;
      try {
        crl = new X509Crl(block);
      } catch {
        throw new ConfigError(`${name}: ${file}: a CRL cannot be parsed`);
      }
      if (!caSubjects.has(crl.issuer)) {
        throw new ConfigError(`${name}: ${file}: a CRL is not issued by a CA in CUSTODY_TLS_CLIENT_CA`);
      }
      if (crl.nextUpdate !== undefined && crl.nextUpdate <= now) {
        throw new ConfigError(
          `${name}: ${file}: the CRL's nextUpdate (${crl.nextUpdate.toISOString()}) has passed; fetch a fresh CRL`,
        );
      }
    }
    return pem;
  });
}

/**
 * Re-reads the TLS files for a reload and checks them as a whole: the key must be the certificate's, the
 * certificate valid now, the client CA file must hold certificates, the CRLs must pass loadClientCrls.
 * A rotation writes several files one after the other; until the set is consistent this throws and the
 * caller keeps what it has.
 */
export function readTlsMaterial(
  tls: TlsConfig,
  now: Date,
): {
  cert: Buffer;
  key: Buffer;
  clientCa: Buffer;
  crl: Buffer[];
  serial: string;
  notAfter: Date;
  caNotAfter: Date;
} {
  const read = (name: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError(`${name}: cannot read ${file} (${(err as NodeJS.ErrnoException).code})`);
    }
  };
  const cert = read("CUSTODY_TLS_CERT", tls.files.cert);
  const key = read("CUSTODY_TLS_KEY", tls.files.key);
  const clientCa = read("CUSTODY_TLS_CLIENT_CA", tls.files.clientCa);
  let leaf: NodeX509Certificate;
  try {
    leaf = new NodeX509Certificate(cert);
  } catch {
    throw new ConfigError("CUSTODY_TLS_CERT: no PEM certificate can be parsed");
  }
  let matches = false;
  try {
    matches = leaf.checkPrivateKey(createPrivateKey(key));
  } catch {
    throw new ConfigError("CUSTODY_TLS_KEY: not a PEM private key");
  }
  if (!matches)
    throw new ConfigError("CUSTODY_TLS_KEY: is not the key of the certificate in CUSTODY_TLS_CERT");
  const notAfter = new Date(leaf.validTo);
  if (new Date(leaf.validFrom) > now || notAfter < now) {
    throw new ConfigError("CUSTODY_TLS_CERT: the certificate is not valid now");
  }
  let caNotAfter: Date;
  try {
    caNotAfter = clientCaExpiry(clientCa);
  } catch {
    throw new ConfigError("CUSTODY_TLS_CLIENT_CA: must hold PEM CA certificates only");
  }
  const crl = loadClientCrls(tls.crlFiles, clientCa, now);
  return { cert, key, clientCa, crl, serial: leaf.serialNumber, notAfter, caNotAfter };
}

/** The earliest notAfter of the client CA certificates; throws unless every block is a CA certificate. */
export function clientCaExpiry(clientCa: Buffer): Date {
  const blocks =
    clientCa.toString("ascii").match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const cas = blocks.map((block) => new NodeX509Certificate(block));
  if (cas.length === 0 || !cas.every((ca) => ca.ca)) throw new Error("not CA certificates");
  return new Date(Math.min(...cas.map((ca) => Date.parse(ca.validTo))));
}

function deadlines(env: Env): { defaultDeadlineMs: number; maxCallDeadlineMs: number } {
  const maxCallDeadlineMs = read(env, "CUSTODY_MAX_CALL_DEADLINE_MS", positiveInt.max(600_000), "5000");
  const defaultDeadlineMs = read(env, "CUSTODY_DEFAULT_DEADLINE_MS", positiveInt, "5000");
  if (defaultDeadlineMs > maxCallDeadlineMs) {
    throw new ConfigError(
      `CUSTODY_DEFAULT_DEADLINE_MS: must not exceed CUSTODY_MAX_CALL_DEADLINE_MS (${maxCallDeadlineMs})`,
    );
  }
  return { defaultDeadlineMs, maxCallDeadlineMs };
}

function metricsListen(env: Env): { metricsListen?: { host: string; port: number } } {
  const text = env.CUSTODY_METRICS_LISTEN?.trim();
  if (!text) return {};
  const m = /^(?:(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):)?(\d{1,5})$/.exec(text);
  const port = Number(m?.[2]);
  if (!m || port > 65535) {
    throw new ConfigError("CUSTODY_METRICS_LISTEN: must be a port (loopback) or host:port, e.g. 9464");
  }
  return { metricsListen: { host: m[1]?.replace(/^\[|\]$/g, "") ?? "127.0.0.1", port } };
}

function auditConfig(env: Env, mode: CustodyEnv): CustodyConfig["audit"] {
  const file = env.CUSTODY_AUDIT_FILE?.trim() || undefined;
  if (file === undefined && mode === "production") {
    throw new ConfigError(
      "CUSTODY_AUDIT_FILE: is required in production: name a file on a writable volume for the audit chain",
    );
  }
  return { ...(file !== undefined ? { file } : {}), fsync: read(env, "CUSTODY_AUDIT_FSYNC", flag, "0") };
}

const LOOPBACK_NAMES = new Set(["localhost", "::1"]);

function isLoopback(host: string): boolean {
  if (LOOPBACK_NAMES.has(host.toLowerCase())) return true;
  return isIP(host) === 4 && host.startsWith("127.");
}

function pkcs11FromEnv(env: Env, mode: CustodyEnv): Pkcs11StoreConfig {
  const uris = read(env, "CUSTODY_PKCS11_URI", z.string().min(1))
    .split(/\s+/)
    .filter((u) => u !== "");
  const int = (name: string, fallback: string) => read(env, name, z.coerce.number().int(), fallback);
  let config: Pkcs11StoreConfig;
  try {
    config = configFromUris(uris, {
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
  // An environment variable stays readable for the life of the process (/proc/<pid>/environ, every
  // child process, crash reports); a 0600 file is read at login and its bytes wiped.
  if (mode === "production" && "env" in config.pin) {
    throw new ConfigError(
      `CUSTODY_PKCS11_URI: pin-source=env:${config.pin.env} is refused with CUSTODY_ENV=production; use pin-source=file:/path to a mode 0600 file`,
    );
  }
  return config;
}

export function loadConfig(env: Env = process.env): CustodyConfig {
  const mode = read(env, "CUSTODY_ENV", z.enum(["production", "development"]), "production");
  if (mode === "development" && env.NODE_ENV === "production") {
    throw new ConfigError("CUSTODY_ENV: development is refused when NODE_ENV=production");
  }
  const listenText = read(env, "CUSTODY_LISTEN", z.string(), "127.0.0.1:7443");
  const listen = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(listenText);
  const port = Number(listen?.[2]);
  if (!listen || port > 65535)
    throw new ConfigError("CUSTODY_LISTEN: must be host:port, e.g. 127.0.0.1:7443");
  const host = listen[1]!.replace(/^\[|\]$/g, "");

  // The unsafe switches turn custody into an unauthenticated decryption oracle: they need the explicit
  // development mode, and that mode never listens beyond this machine.
  const devPlaintext = read(env, "CUSTODY_DEV_PLAINTEXT", flag, "0");
  const allowAny = read(env, "CUSTODY_DEV_ALLOW_ANY_RECIPIENT", flag, "0");
  for (const [name, on] of [
    ["CUSTODY_DEV_PLAINTEXT", devPlaintext],
    ["CUSTODY_DEV_ALLOW_ANY_RECIPIENT", allowAny],
  ] as const) {
    if (on && mode !== "development") {
      throw new ConfigError(
        `${name}: only allowed with CUSTODY_ENV=development (on a loopback CUSTODY_LISTEN)`,
      );
    }
  }
  if (mode === "development" && !isLoopback(host)) {
    throw new ConfigError(
      "CUSTODY_LISTEN: CUSTODY_ENV=development listens on loopback only (127.0.0.1, ::1 or localhost)",
    );
  }

  let tls: TlsConfig | undefined;
  if (!devPlaintext) {
    const cert = readFile(env, "CUSTODY_TLS_CERT");
    const key = readFile(env, "CUSTODY_TLS_KEY");
    const clientCa = readFile(env, "CUSTODY_TLS_CLIENT_CA");
    const crlFiles = (env.CUSTODY_TLS_CLIENT_CRL ?? "")
      .split(",")
      .map((f) => f.trim())
      .filter((f) => f !== "");
    tls = {
      cert,
      key,
      clientCa,
      files: {
        cert: env.CUSTODY_TLS_CERT!,
        key: env.CUSTODY_TLS_KEY!,
        clientCa: env.CUSTODY_TLS_CLIENT_CA!,
      },
      crlFiles,
      crl: loadClientCrls(crlFiles, clientCa, new Date()),
    };
  }

  const callerPolicyFile = env.CUSTODY_CALLER_POLICY_FILE || undefined;
  if (callerPolicyFile !== undefined) {
    // One source of truth per decision: a global list beside the file would leave the reader guessing
    // which one grants what.
    for (const name of [
      "CUSTODY_ALLOW_REENCRYPT",
      "CUSTODY_RECIPIENT_PINS",
      "CUSTODY_RECIPIENT_PINS_FILE",
      "CUSTODY_RECIPIENT_X5C_POLICY",
    ]) {
      if (env[name]) {
        throw new ConfigError(
          `${name}: not used with CUSTODY_CALLER_POLICY_FILE, which grants callers and recipients per caller; unset it`,
        );
      }
    }
    if (devPlaintext || allowAny) {
      throw new ConfigError(
        `${devPlaintext ? "CUSTODY_DEV_PLAINTEXT" : "CUSTODY_DEV_ALLOW_ANY_RECIPIENT"}: not combinable with CUSTODY_CALLER_POLICY_FILE`,
      );
    }
  }
  const reencrypt = callerPolicyFile === undefined ? identities(env, "CUSTODY_ALLOW_REENCRYPT", mode) : [];
  if (reencrypt === "any")
    throw new ConfigError("CUSTODY_ALLOW_REENCRYPT: name the callers; * is not allowed");

  const kind = read(env, "CUSTODY_KEYSTORE", z.enum(["file", "pkcs11"]), "file");
  const keyStore: KeyStoreConfig =
    kind === "pkcs11"
      ? { kind, pkcs11: pkcs11FromEnv(env, mode) }
      : {
          kind,
          dir: read(env, "CUSTODY_KEY_DIR", z.string().min(1)),
          ...(env.CUSTODY_KEY_PASSPHRASE_FILE ? { passphraseFile: env.CUSTODY_KEY_PASSPHRASE_FILE } : {}),
          watch: read(env, "CUSTODY_KEY_WATCH", flag, "0"),
        };

  const recipients = { pinnedThumbprints: pins(env), x5c: x5cPolicy(env), allowAny };
  if (
    callerPolicyFile === undefined &&
    recipients.pinnedThumbprints.size === 0 &&
    recipients.x5c.length === 0 &&
    !recipients.allowAny
  ) {
    throw new ConfigError(
      "CUSTODY_RECIPIENT_PINS: no recipient can be allowed; set it, CUSTODY_RECIPIENT_PINS_FILE or CUSTODY_RECIPIENT_X5C_POLICY",
    );
  }

  return {
    env: mode,
    listen: { host, port },
    ...(tls ? { tls } : {}),
    devPlaintext,
    ...(callerPolicyFile !== undefined ? { callerPolicyFile } : {}),
    connection: {
      maxAgeMs: read(env, "CUSTODY_MAX_CONNECTION_AGE_MS", positiveInt, "600000"),
      maxAgeGraceMs: read(env, "CUSTODY_MAX_CONNECTION_AGE_GRACE_MS", positiveInt, "30000"),
      maxConnections: read(env, "CUSTODY_MAX_CONNECTIONS", positiveInt.max(65536), "256"),
      maxHandshakes: read(env, "CUSTODY_MAX_HANDSHAKES", positiveInt.max(65536), "64"),
      handshakeTimeoutMs: read(env, "CUSTODY_HANDSHAKE_TIMEOUT_MS", positiveInt.max(120_000), "5000"),
    },
    callers: {
      reencrypt,
      // Not "*" by default: the health service tells whoever asks whether this instance serves and
      // that its client CA admits them; a probe identity is named explicitly, like any other caller.
      health:
        env.CUSTODY_ALLOW_HEALTH === undefined
          ? "reencrypt-callers"
          : identities(env, "CUSTODY_ALLOW_HEALTH", mode),
    },
    keyStore,
    recipients,
    limits: {
      ratePerSecond: read(env, "CUSTODY_RATE_PER_SECOND", positiveInt, "2000"),
      burst: read(env, "CUSTODY_RATE_BURST", positiveInt, "4000"),
      maxInFlightPerCaller: read(env, "CUSTODY_MAX_IN_FLIGHT_PER_CALLER", positiveInt, "256"),
      maxMessageBytes: read(env, "CUSTODY_MAX_MESSAGE_BYTES", positiveInt.max(4 * 1024 * 1024), "65536"),
      maxQueue: read(env, "CUSTODY_MAX_QUEUE", positiveInt, "1024"),
      ...deadlines(env),
    },
    workers: read(
      env,
      "CUSTODY_WORKERS",
      z.coerce.number().int().min(0).max(256),
      String(availableParallelism()),
    ),
    shutdownGraceMs: read(env, "CUSTODY_SHUTDOWN_GRACE_MS", positiveInt, "10000"),
    ...metricsListen(env),
    audit: auditConfig(env, mode),
    logLevel: read(
      env,
      "CUSTODY_LOG_LEVEL",
      z.enum(["fatal", "error", "warn", "info", "debug", "trace"]),
      "info",
    ),
  };
}
