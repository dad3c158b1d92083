/**
 * The primitives under the JWE code, against Wycheproof: RSA-OAEP with SHA-256/MGF1-SHA-256 (what a
 * key store's unwrap performs) and AES-GCM (src/core/crypto/aes-gcm.ts, what decryptJwe uses).
 */
import { constants, createPrivateKey, privateDecrypt } from "node:crypto";
import { describe, expect, it } from "vitest";
import { readOaepSha256Vectors, readWycheproof } from "../../tools/testing/wycheproof.js";
import { aes256GcmDecrypt, GCM_IV_BYTES, GCM_KEY_BYTES, GCM_TAG_BYTES } from "./aes-gcm.js";

const oaep = { testGroups: readOaepSha256Vectors() };

describe("Wycheproof RSA-OAEP-256 (2048-bit, SHA-256, MGF1-SHA-256)", () => {
  const cases = oaep.testGroups.flatMap((g) =>
    g.tests.map((t) => [`tc${t.tcId} ${t.comment} ${t.flags}`, g, t] as const),
  );
  it("reads every case", () => expect(cases.length).toBe(37));

  it.each(cases)("%s", (_name, group, test) => {
    expect(group.sha).toBe("SHA-256");
    expect(group.mgfSha).toBe("SHA-256");
    const key = createPrivateKey(group.privateKeyPem);
    const decrypt = () =>
      privateDecrypt(
        {
          key,
          padding: constants.RSA_PKCS1_OAEP_PADDING,
          oaepHash: "sha256",
          oaepLabel: Buffer.from(test.label, "hex"),
        },
        Buffer.from(test.ct, "hex"),
      );
    if (test.result === "valid") expect(decrypt().toString("hex")).toBe(test.msg);
    else expect(decrypt).toThrow();
  });
});

interface GcmCase {
  tcId: number;
  comment: string;
  key: string;
  iv: string;
  aad: string;
  msg: string;
  ct: string;
  tag: string;
  result: "valid" | "invalid" | "acceptable";
  flags: string[];
}
const gcm = readWycheproof<{
  testGroups: { keySize: number; ivSize: number; tagSize: number; tests: GcmCase[] }[];
}>("aes_gcm_test.json");

describe("Wycheproof AES-GCM, the parameters A256GCM uses (256-bit key, 96-bit IV, 128-bit tag)", () => {
  const ours = gcm.testGroups.filter(
    (g) =>
      g.keySize === GCM_KEY_BYTES * 8 && g.ivSize === GCM_IV_BYTES * 8 && g.tagSize === GCM_TAG_BYTES * 8,
  );
  const cases = ours.flatMap((g) => g.tests.map((t) => [`tc${t.tcId} ${t.comment} ${t.flags}`, t] as const));
  it("selects a non-trivial set", () => expect(cases.length).toBeGreaterThan(20));

  it.each(cases)("%s", (_name, test) => {
    const hex = (s: string) => Buffer.from(s, "hex");
    const plaintext = aes256GcmDecrypt(
      hex(test.key),
      hex(test.iv),
      hex(test.aad),
      hex(test.ct),
      hex(test.tag),
    );
    if (test.result === "valid") expect(plaintext?.toString("hex")).toBe(test.msg);
    else expect(plaintext).toBeUndefined();
  });
});
