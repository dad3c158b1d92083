/**
 * A catalogue of hostile input against the running custody service (real mTLS, file key store): each
 * row is a request a hostile or broken caller could send, the gRPC status and reason it must get, and
 * afterwards the service log (audit lines included) must hold no PAN, CVV, JWE ciphertext or the row's
 * own hostile material. Header members that point at keys (jku, x5u, jwk) must never be fetched or
 * trusted: they point at a local server that records any request.
 */
import { execFile } from "node:child_process";
import { createPublicKey, type KeyObject, randomBytes, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { CompactEncrypt, exportJWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CardCustodyClient } from "../../contract/generated/custody/v1/CardCustody.js";
import { fingerprintForms } from "../../core/crypto/fingerprint.js";
import type { RunningCustody } from "../../custody/server.js";
import {
  baseEnv,
  type CallOutcome,
  custodyClient,
  type LogCapture,
  reencrypt,
  rsaKeyPair,
  standalone,
  startTestCustody,
  TEST_SECRETS,
  tempDir,
  testPki,
} from "../testing/custody-harness.js";
import { USER } from "../testing/profile.js";
import { STORE_FACTORIES, type TestKeyStore } from "../testing/stores.js";

const pki = testPki();
const knotJwk = readFileSync(pki.knotJwk, "utf8").trim();
const dotva = rsaKeyPair();
const attacker = rsaKeyPair();
const fingerprint = fingerprintForms(dotva.publicKey).canonical;
let store: TestKeyStore;
let custody: RunningCustody;
let log: LogCapture;
let client: CardCustodyClient;
let trap: Server;
let trapUrl: string;
const trapHits: string[] = [];
let otherRootJwk: string;
/** A valid JWE of the test card, for rows that change only the Knot JWK. */
let validJwe: string;

const b64 = (value: string | Buffer) => Buffer.from(value).toString("base64url");
const header = (h: object | string) => b64(typeof h === "string" ? h : JSON.stringify(h));
const GOOD = { alg: "RSA-OAEP-256", enc: "A256GCM" };

/** Well-formed key, IV, ciphertext and tag parts: only the header differs between rows that use it. */
const tail = `${b64(randomBytes(256))}.${b64(randomBytes(12))}.${b64(randomBytes(40))}.${b64(randomBytes(16))}`;

async function encrypt(
  plaintext: Buffer | string,
  key: KeyObject,
  protectedHeader: Record<string, unknown> = GOOD,
) {
  return new CompactEncrypt(typeof plaintext === "string" ? Buffer.from(plaintext) : plaintext)
    .setProtectedHeader(protectedHeader as { alg: string; enc: string })
    .encrypt(key);
}

/** An odd number of exactly `bits` bits as a JWK modulus: not a real key, which only the size check needs. */
function modulus(bits: number): string {
  const n = randomBytes(bits / 8);
  n[0]! |= 0x80;
  n[n.length - 1]! |= 1;
  return b64(n);
}

const secretsJson = (over: object) => JSON.stringify({ ...TEST_SECRETS, ...over });

type Row = [what: string, request: () => Promise<Record<string, unknown>>, code: status, reason: string];

const ROWS: Row[] = [
  [
    "alg none",
    async () => ({ secrets_jwe: `${header({ alg: "none", enc: "A256GCM" })}.${tail}` }),
    status.INVALID_ARGUMENT,
    "JWE_HEADER_UNSUPPORTED",
  ],
  [
    "RSA1_5 against the OAEP key",
    async () => {
      const good = (await encrypt(secretsJson({}), dotva.publicKey)).split(".");
      return { secrets_jwe: [header({ alg: "RSA1_5", enc: "A256GCM" }), ...good.slice(1)].join(".") };
    },
    status.INVALID_ARGUMENT,
    "JWE_HEADER_UNSUPPORTED",
  ],
  [
    "alg dir",
    async () => ({
      secrets_jwe: `${header({ alg: "dir", enc: "A256GCM" })}..${tail.split(".").slice(1).join(".")}`,
    }),
    status.INVALID_ARGUMENT,
    "JWE_HEADER_UNSUPPORTED",
  ],
  [
    "zip DEF",
    async () => ({ secrets_jwe: `${header({ ...GOOD, zip: "DEF" })}.${tail}` }),
    status.INVALID_ARGUMENT,
    "JWE_HEADER_UNSUPPORTED",
  ],
  [
    "an unknown crit extension",
    async () => ({ secrets_jwe: `${header({ ...GOOD, crit: ["exp"], exp: 1 })}.${tail}` }),
    status.INVALID_ARGUMENT,
    "JWE_HEADER_UNSUPPORTED",
  ],
  [
    "jku, x5u and an embedded jwk naming the attacker's key",
    async () => ({
      secrets_jwe: await encrypt(secretsJson({}), attacker.publicKey, {
        ...GOOD,
        jku: `${trapUrl}/jwks.json`,
        x5u: `${trapUrl}/cert.pem`,
        jwk: await exportJWK(attacker.publicKey),
      }),
    }),
    status.INVALID_ARGUMENT,
    "JWE_DECRYPT_FAILED",
  ],
  [
    "JSON serialization",
    async () => {
      const [p, k, iv, c, t] = (await encrypt(secretsJson({}), dotva.publicKey)).split(".");
      return { secrets_jwe: JSON.stringify({ protected: p, encrypted_key: k, iv, ciphertext: c, tag: t }) };
    },
    status.INVALID_ARGUMENT,
    "JWE_MALFORMED",
  ],
  ["five empty parts", async () => ({ secrets_jwe: "...." }), status.INVALID_ARGUMENT, "JWE_MALFORMED"],
  [
    "a header and four empty parts",
    async () => ({ secrets_jwe: `${header(GOOD)}....` }),
    status.INVALID_ARGUMENT,
    "JWE_MALFORMED",
  ],
  [
    "a JWE over the size limit",
    async () => ({ secrets_jwe: `${header(GOOD)}.${tail}${"A".repeat(20_000)}` }),
    status.INVALID_ARGUMENT,
    "JWE_TOO_LARGE",
  ],
  [
    "an oversized encrypted key",
    async () => ({
      secrets_jwe: `${header(GOOD)}.${b64(randomBytes(1024))}.${tail.split(".").slice(1).join(".")}`,
    }),
    status.INVALID_ARGUMENT,
    "JWE_MALFORMED",
  ],
  [
    "non-base64url characters",
    async () => {
      const parts = (await encrypt(secretsJson({}), dotva.publicKey)).split(".");
      parts[3] = `+/${parts[3]!.slice(2)}`;
      return { secrets_jwe: parts.join(".") };
    },
    status.INVALID_ARGUMENT,
    "JWE_MALFORMED",
  ],
  [
    "duplicate header members",
    async () => ({
      secrets_jwe: `${header('{"alg":"RSA-OAEP-256","enc":"A256GCM","alg":"RSA-OAEP-256"}')}.${tail}`,
    }),
    status.INVALID_ARGUMENT,
    "JWE_MALFORMED",
  ],
  [
    "a deeply nested header",
    async () => ({
      secrets_jwe: `${header(`{"alg":"RSA-OAEP-256","enc":"A256GCM","x":${"[".repeat(40)}${"]".repeat(40)}}`)}.${tail}`,
    }),
    status.INVALID_ARGUMENT,
    "JWE_MALFORMED",
  ],
  [
    "duplicate members in the secrets",
    async () => ({
      secrets_jwe: await encrypt(
        `{"pan":"4242424242424242","pan":"4000056655665556","cvv":"123","expiry_month":7,"expiry_year":2031}`,
        dotva.publicKey,
      ),
    }),
    status.INVALID_ARGUMENT,
    "SECRETS_MALFORMED",
  ],
  [
    "deeply nested secrets",
    async () => ({
      secrets_jwe: await encrypt(
        `${secretsJson({}).slice(0, -1)},"x":${"[".repeat(40)}${"]".repeat(40)}}`,
        dotva.publicKey,
      ),
    }),
    status.INVALID_ARGUMENT,
    "SECRETS_MALFORMED",
  ],
  [
    "a raw NUL byte in the PAN string",
    async () => ({
      secrets_jwe: await encrypt(
        Buffer.from(secretsJson({ pan: "4242424242\u0000424242" }).replace("\\u0000", "\u0000")),
        dotva.publicKey,
      ),
    }),
    status.INVALID_ARGUMENT,
    "SECRETS_MALFORMED",
  ],
  [
    "an escaped NUL in the PAN",
    async () => ({
      secrets_jwe: await encrypt(secretsJson({ pan: "4242424242\u0000424242" }), dotva.publicKey),
    }),
    status.INVALID_ARGUMENT,
    "PAN_INVALID",
  ],
  [
    "overlong UTF-8 digits in the PAN",
    async () => {
      // 0xC0 0xB4 is an overlong encoding of "4": a lenient decoder would read a digit there.
      const text = Buffer.from(secretsJson({ pan: "424242424242424#" }));
      const at = text.indexOf("#");
      return {
        secrets_jwe: await encrypt(
          Buffer.concat([text.subarray(0, at), Buffer.from([0xc0, 0xb4]), text.subarray(at + 1)]),
          dotva.publicKey,
        ),
      };
    },
    status.INVALID_ARGUMENT,
    "PAN_INVALID",
  ],
  [
    "a PAN failing Luhn",
    async () => ({ secrets_jwe: await encrypt(secretsJson({ pan: "4242424242424241" }), dotva.publicKey) }),
    status.INVALID_ARGUMENT,
    "PAN_INVALID",
  ],
  [
    "expiry month 13",
    async () => ({ secrets_jwe: await encrypt(secretsJson({ expiry_month: "13" }), dotva.publicKey) }),
    status.INVALID_ARGUMENT,
    "EXPIRY_INVALID",
  ],
  [
    "a Knot JWK with private members",
    async () => ({ knot_jwk: JSON.stringify(attacker.privateKey.export({ format: "jwk" })) }),
    status.INVALID_ARGUMENT,
    "KNOT_JWK_INVALID",
  ],
  [
    "a 1024-bit Knot modulus",
    async () => ({ knot_jwk: JSON.stringify({ kty: "RSA", e: "AQAB", n: modulus(1024) }) }),
    status.INVALID_ARGUMENT,
    "KNOT_JWK_INVALID",
  ],
  [
    "an 8192-bit Knot modulus not pinned",
    async () => ({ knot_jwk: JSON.stringify({ kty: "RSA", e: "AQAB", n: modulus(8192) }) }),
    status.PERMISSION_DENIED,
    "RECIPIENT_NOT_ALLOWED",
  ],
  [
    "an 8200-bit Knot modulus",
    async () => ({ knot_jwk: JSON.stringify({ kty: "RSA", e: "AQAB", n: modulus(8200) }) }),
    status.INVALID_ARGUMENT,
    "KNOT_JWK_INVALID",
  ],
  [
    "e = 3",
    async () => ({ knot_jwk: JSON.stringify({ ...(JSON.parse(knotJwk) as object), e: "Aw" }) }),
    status.INVALID_ARGUMENT,
    "KNOT_JWK_INVALID",
  ],
  [
    "a Knot JWK whose x5c chains to another root",
    async () => ({ knot_jwk: otherRootJwk }),
    status.PERMISSION_DENIED,
    "RECIPIENT_NOT_ALLOWED",
  ],
];

function opensslSelfSigned(dir: string): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=another root",
        "-days",
        "2",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ],
      (err) => (err ? reject(err) : resolve()),
    ),
  );
}

beforeAll(async () => {
  trap = createServer((req, res) => {
    trapHits.push(req.url ?? "");
    res.end("{}");
  });
  await new Promise<void>((r) => trap.listen(0, "127.0.0.1", r));
  trapUrl = `http://127.0.0.1:${(trap.address() as { port: number }).port}`;
  const dir = tempDir("other-root");
  await opensslSelfSigned(dir);
  const certPem = readFileSync(join(dir, "cert.pem"), "utf8");
  const cert = new X509Certificate(certPem);
  otherRootJwk = JSON.stringify({
    ...createPublicKey(certPem).export({ format: "jwk" }),
    use: "enc",
    x5c: [cert.raw.toString("base64")],
  });
  store = await STORE_FACTORIES[0]!.create(tempDir("hostile-keys"), [
    { name: "dotva-a", privateKey: dotva.privateKey, state: "active" },
  ]);
  ({ custody, log } = await startTestCustody(baseEnv(pki), store.source));
  client = custodyClient(custody.port, pki);
  validJwe = await encrypt(secretsJson({}), dotva.publicKey);
}, 60_000);

afterAll(async () => {
  client?.close();
  await custody?.shutdown(1000);
  trap?.close();
});

describe("hostile requests to custody", () => {
  it.each(ROWS)(
    "%s: answered with its status and reason, nothing secret logged",
    async (_what, make, code, reason) => {
      const overrides = await make();
      const before = log.text.length;
      const out: CallOutcome = await reencrypt(client, {
        secrets_jwe: validJwe,
        key_fingerprint: fingerprint,
        knot_jwk: knotJwk,
        user: USER,
        request_id: "req-hostile-1",
        ...overrides,
      });
      expect(out.ok).toBe(false);
      if (out.ok) return;
      expect([out.code, out.reason]).toEqual([code, reason]);
      expect(log.audits().at(-1)).toMatchObject({ outcome: reason, grpc_status: code });
      const written = log.text.slice(before) + out.details;
      expect(written).not.toContain(TEST_SECRETS.pan);
      expect(written).not.toMatch(standalone(TEST_SECRETS.cvv));
      expect(written).not.toContain("4000056655665556");
      const jwe = overrides.secrets_jwe;
      if (typeof jwe === "string") {
        for (const part of jwe.split(".").filter((p) => p.length >= 16)) expect(written).not.toContain(part);
      }
      const jwk = overrides.knot_jwk;
      if (typeof jwk === "string") {
        const parsed = JSON.parse(jwk) as Record<string, unknown>;
        for (const m of ["n", "d", "p", "q"]) {
          if (typeof parsed[m] === "string")
            expect(written).not.toContain((parsed[m] as string).slice(0, 32));
        }
      }
    },
  );

  it("never fetched a key or certificate URL named in a header", () => {
    expect(trapHits).toEqual([]);
  });
});
