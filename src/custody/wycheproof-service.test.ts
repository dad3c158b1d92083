/**
 * Every Wycheproof RSA-OAEP-256 case as the encrypted key of a Dotva JWE, through the running service
 * over mTLS, once per key store in STORE_FACTORIES. On the PKCS#11 store (SoftHSM2 2.6 lacks token-side
 * OAEP-SHA-256) this runs each case through CKM_RSA_X_509 and the in-process constant-time decode.
 *
 * A case's message becomes the content key: the one valid, empty-label case with a 32-byte message
 * must re-encrypt; every other case must fail as the one uniform JWE_DECRYPT_FAILED (or, for an
 * encrypted key outside the 2048-4096-bit sizes, JWE_MALFORMED before any private-key operation).
 */
import { createCipheriv, createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CardCustodyClient } from "../contract/generated/custody/v1/CardCustody.js";
import { fingerprintForms } from "../core/crypto/fingerprint.js";
import { MAX_ENCRYPTED_KEY_BYTES, MIN_ENCRYPTED_KEY_BYTES } from "../core/crypto/jwe-decrypt.js";
import {
  baseEnv,
  custodyClient,
  reencrypt,
  startTestCustody,
  TEST_SECRETS,
  tempDir,
  testPki,
} from "../tools/testing/custody-harness.js";
import { USER } from "../tools/testing/profile.js";
import { STORE_FACTORIES } from "../tools/testing/stores.js";
import { readOaepSha256Vectors } from "../tools/testing/wycheproof.js";
import type { RunningCustody } from "./server.js";

const group = readOaepSha256Vectors()[0]!;
const wycheproofKey = createPrivateKey(group.privateKeyPem);

function jweWithEncryptedKey(encryptedKey: Buffer, contentKey: Buffer): string {
  const header = Buffer.from(JSON.stringify({ alg: "RSA-OAEP-256", enc: "A256GCM" })).toString("base64url");
  const iv = randomBytes(12);
  // A message that is no AES-256 key still yields a well-formed JWE: the service must reject it anyway.
  const key = contentKey.length === 32 ? contentKey : randomBytes(32);
  const cipher = createCipheriv("aes-256-gcm", key, iv).setAAD(Buffer.from(header, "ascii"));
  const ciphertext = Buffer.concat([cipher.update(JSON.stringify(TEST_SECRETS)), cipher.final()]);
  return [header, encryptedKey, iv, ciphertext, cipher.getAuthTag()]
    .map((part) => (typeof part === "string" ? part : part.toString("base64url")))
    .join(".");
}

describe.each(STORE_FACTORIES)("Wycheproof OAEP-SHA-256 through the service ($name store)", (factory) => {
  const pki = testPki();
  let custody: RunningCustody;
  let client: CardCustodyClient;

  beforeAll(async () => {
    const store = await factory.create(tempDir(`wycheproof-${factory.name}`), [
      { name: "wycheproof", privateKey: wycheproofKey, state: "active" },
    ]);
    ({ custody } = await startTestCustody(baseEnv(pki), store.source));
    client = custodyClient(custody.port, pki);
  });

  afterAll(async () => {
    client?.close();
    await custody?.shutdown(2000);
  });

  it("re-encrypts only the valid empty-label case with a 32-byte message; all others fail uniformly", async () => {
    const knotJwk = readFileSync(pki.knotJwk, "utf8").trim();
    const fingerprint = fingerprintForms(createPublicKey(wycheproofKey)).canonical;
    expect(group.tests).toHaveLength(37);
    const outcomes = await Promise.all(
      group.tests.map(async (test) => {
        const ct = Buffer.from(test.ct, "hex");
        const out = await reencrypt(client, {
          secrets_jwe: jweWithEncryptedKey(ct, Buffer.from(test.msg, "hex")),
          key_fingerprint: fingerprint,
          knot_jwk: knotJwk,
          user: USER,
          request_id: `wycheproof-${test.tcId}`,
        });
        return { test, ct, out };
      }),
    );
    let succeeded = 0;
    for (const { test, ct, out } of outcomes) {
      const shouldSucceed = test.result === "valid" && test.label === "" && test.msg.length === 64;
      if (shouldSucceed) {
        expect(out.ok ? out.value.card_last4 : out, `tc${test.tcId}`).toBe("4242");
        succeeded++;
        continue;
      }
      expect(out.ok, `tc${test.tcId}`).toBe(false);
      if (out.ok) continue;
      expect(out.code, `tc${test.tcId}`).toBe(status.INVALID_ARGUMENT);
      const sized = ct.length >= MIN_ENCRYPTED_KEY_BYTES && ct.length <= MAX_ENCRYPTED_KEY_BYTES;
      expect(out.reason, `tc${test.tcId}`).toBe(sized ? "JWE_DECRYPT_FAILED" : "JWE_MALFORMED");
    }
    expect(succeeded).toBe(1);
    const decryptFailures = outcomes.filter((o) => !o.out.ok && o.out.reason === "JWE_DECRYPT_FAILED");
    expect(new Set(decryptFailures.map((o) => (o.out.ok ? "" : o.out.details))).size).toBe(1);
  });
});
