/**
 * Shared pieces of the custody integration tests: a dev PKI in a temp directory, a running server with
 * its log captured, mTLS clients with each kind of certificate, and Dotva-side JWEs made with jose.
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { credentials, type Metadata, type ServiceError } from "@grpc/grpc-js";
import { CompactEncrypt } from "jose";
import type { CardCustodyClient } from "../../contract/generated/custody/v1/CardCustody.js";
import type { ReencryptForKnotRequest } from "../../contract/generated/custody/v1/ReencryptForKnotRequest.js";
import type { ReencryptForKnotResponse__Output } from "../../contract/generated/custody/v1/ReencryptForKnotResponse.js";
import { loadCustodyProto, loadHealthProto } from "../../contract/proto.js";
import { fingerprintForms } from "../../core/crypto/fingerprint.js";
import { createLogger } from "../../custody/audit.js";
import { loadConfig } from "../../custody/config.js";
import type { ManagedKeyStore } from "../../custody/keystore/key-store.js";
import { type RunningCustody, startCustody } from "../../custody/server.js";
import { type CertPaths, type DevPki, GATEWAY_SPIFFE, makeDevPki } from "../dev-pki.js";
import { expiryFromNow } from "./expiry.js";
import { USER } from "./profile.js";

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `custody-${prefix}-`));
}

let pkiCache: DevPki | undefined;
/** One PKI per test file (forge signing is the slow part). */
export function testPki(): DevPki {
  pkiCache ??= makeDevPki(tempDir("pki"));
  return pkiCache;
}

/** Everything the server writes to its log, as text and as parsed lines. */
export class LogCapture extends Writable {
  text = "";
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.text += chunk.toString("utf8");
    done();
  }
  lines(): Record<string, unknown>[] {
    return this.text
      .split("\n")
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
  audits(): Record<string, unknown>[] {
    return this.lines().filter((l) => l.audit === "ReencryptForKnot");
  }
}

export function baseEnv(pki: DevPki, extra: Record<string, string> = {}): Record<string, string> {
  return {
    CUSTODY_LISTEN: "127.0.0.1:0",
    CUSTODY_TLS_CERT: pki.server.cert,
    CUSTODY_TLS_KEY: pki.server.key,
    CUSTODY_TLS_CLIENT_CA: pki.caCert,
    CUSTODY_ALLOW_REENCRYPT: `uri:${GATEWAY_SPIFFE}`,
    CUSTODY_KEY_DIR: pki.dotvaKeyDir,
    CUSTODY_RECIPIENT_PINS: readFileSync(pki.knotThumbprint, "utf8").trim(),
    CUSTODY_WORKERS: "2",
    CUSTODY_LOG_LEVEL: "debug",
    // Each environment its own chain: a chain has one writer.
    CUSTODY_AUDIT_FILE: join(tempDir("audit"), "audit.jsonl"),
    ...extra,
  };
}

export async function startTestCustody(
  env: Record<string, string>,
  keys?: ManagedKeyStore,
): Promise<{ custody: RunningCustody; log: LogCapture }> {
  const log = new LogCapture();
  const config = loadConfig(env);
  const custody = await startCustody(config, {
    logger: createLogger(config.logLevel, log),
    ...(keys ? { keys } : {}),
  });
  return { custody, log };
}

export type Who = "gateway" | "intruder" | "expired" | "wrongCa" | "none";

const custodyProto = loadCustodyProto();
const healthProto = loadHealthProto();

/** A client presents one of the dev PKI's certificates, none, or a certificate a test minted. */
function channelCredentials(pki: DevPki, who: Who | CertPaths) {
  const ca = readFileSync(pki.caCert);
  if (who === "none") return credentials.createSsl(ca);
  const pair = typeof who === "string" ? pki[who] : who;
  return credentials.createSsl(ca, readFileSync(pair.key), readFileSync(pair.cert));
}

// Connect to the IP, verify the server certificate's DNS name (Node warns about IPs as TLS server names).
const CHANNEL_OPTIONS = { "grpc.ssl_target_name_override": "localhost" };

export function custodyClient(
  port: number,
  pki: DevPki,
  who: Who | CertPaths = "gateway",
): CardCustodyClient {
  return new custodyProto.custody.v1.CardCustody(
    `127.0.0.1:${port}`,
    channelCredentials(pki, who),
    CHANNEL_OPTIONS,
  );
}

export function healthClient(port: number, pki: DevPki, who: Who | CertPaths = "gateway") {
  return new healthProto.grpc.health.v1.Health(
    `127.0.0.1:${port}`,
    channelCredentials(pki, who),
    CHANNEL_OPTIONS,
  );
}

export type CallOutcome =
  | { ok: true; value: ReencryptForKnotResponse__Output }
  | { ok: false; code: number; details: string; reason: string | undefined; metadata: Metadata };

export function reencrypt(
  client: CardCustodyClient,
  request: ReencryptForKnotRequest,
  deadlineMs = 10_000,
): Promise<CallOutcome> {
  return new Promise((resolve) => {
    client.ReencryptForKnot(
      request,
      { deadline: Date.now() + deadlineMs },
      (err: ServiceError | null, value) => {
        if (err) {
          const reason = err.metadata?.get("custody-reason")[0];
          resolve({
            ok: false,
            code: err.code,
            details: err.details,
            reason: typeof reason === "string" ? reason : undefined,
            metadata: err.metadata,
          });
        } else resolve({ ok: true, value: value! });
      },
    );
  });
}

export function healthCheck(
  client: ReturnType<typeof healthClient>,
  service = "",
): Promise<{ status?: string; code?: number }> {
  return new Promise((resolve) => {
    client.Check({ service }, { deadline: Date.now() + 5000 }, (err, value) =>
      resolve(err ? { code: err.code } : { status: value!.status }),
    );
  });
}

// About five years ahead, whatever today is: never expired, and a year no log line has reason to print.
const TEST_EXPIRY = expiryFromNow(60);
export const TEST_SECRETS = {
  pan: "4242424242424242",
  cvv: "9731",
  expiry_month: String(TEST_EXPIRY.month),
  expiry_year: String(TEST_EXPIRY.year),
};
/** TEST_SECRETS' expiry as Knot receives it (MM/YYYY). */
export const TEST_EXPIRATION = TEST_EXPIRY.mmYyyy;

/**
 * `token` standing on its own, not inside a longer run of digits, hex, base64url or a decimal. A short
 * secret (the CVV, a year, a field name) searched for with a plain `toContain` turns up by chance in a
 * per-run fingerprint, thumbprint or heap size in about one run in a hundred; a leak prints it as a value.
 */
export function standalone(token: string): RegExp {
  const escaped = token.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(?<![0-9A-Za-z_.:-])${escaped}(?![0-9A-Za-z_-])`);
}

export async function dotvaJwe(publicKey: KeyObject, secrets: object = TEST_SECRETS): Promise<string> {
  return new CompactEncrypt(new TextEncoder().encode(JSON.stringify(secrets)))
    .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM" })
    .encrypt(publicKey);
}

/**
 * A ReencryptForKnot request for TEST_SECRETS sealed to `dotvaKey`, naming that key by its canonical
 * fingerprint, for the test cardholder USER.
 */
export async function reencryptRequest(
  dotvaKey: KeyObject,
  knotJwk: string,
  requestId: string,
): Promise<ReencryptForKnotRequest> {
  return {
    secrets_jwe: await dotvaJwe(dotvaKey),
    key_fingerprint: fingerprintForms(dotvaKey).canonical,
    knot_jwk: knotJwk,
    user: USER,
    request_id: requestId,
  };
}

export function rsaKeyPair() {
  return generateKeyPairSync("rsa", { modulusLength: 2048 });
}
