/**
 * The in-process OAEP decode that the PKCS#11 store uses behind a raw RSA operation, against every
 * Wycheproof RSA-OAEP-256 case. Node's RSA_NO_PADDING decryption plays the token's CKM_RSA_X_509.
 */
import { constants, createPrivateKey, generateKeyPairSync, privateDecrypt, publicEncrypt } from "node:crypto";
import { describe, expect, it } from "vitest";
import { JweDecryptError } from "../../src/crypto/errors.js";
import { oaepSha256Decode } from "../../src/crypto/oaep-decode.js";
import { readOaepSha256Vectors } from "../support/wycheproof.js";

const vectors = { testGroups: readOaepSha256Vectors() };

/** The token's part (raw RSA) then ours; a raw failure (ciphertext >= n, wrong length) is a decrypt failure too. */
function rawThenDecode(pem: string, ct: Buffer, modulusBytes: number): Buffer {
  let em: Buffer;
  try {
    em = privateDecrypt({ key: createPrivateKey(pem), padding: constants.RSA_NO_PADDING }, ct);
  } catch {
    throw new JweDecryptError();
  }
  return oaepSha256Decode(em, modulusBytes);
}

describe("oaepSha256Decode against Wycheproof rsa_oaep_2048_sha256_mgf1sha256", () => {
  const cases = vectors.testGroups.flatMap((g) =>
    g.tests.map((t) => [`tc${t.tcId} ${t.result} ${t.comment} ${t.flags}`, g, t] as const),
  );
  it("reads every case", () => expect(cases.length).toBe(37));

  it.each(cases)("%s", (_name, group, test) => {
    expect(group.sha).toBe("SHA-256");
    expect(group.mgfSha).toBe("SHA-256");
    const decode = () => rawThenDecode(group.privateKeyPem, Buffer.from(test.ct, "hex"), group.keySize / 8);
    if (test.result === "valid" && test.label === "") {
      expect(decode().toString("hex")).toBe(test.msg);
    } else {
      // Invalid cases must fail. So must valid cases encrypted under a non-empty label: JWE
      // RSA-OAEP-256 has no label, our decoder compares against SHA-256 of the empty label, and
      // accepting them would mean the label check is not done at all.
      expect(test.result === "invalid" || test.label !== "").toBe(true);
      expect(decode).toThrow(JweDecryptError);
    }
  });

  it("covers labelled valid vectors (they are the label check's test)", () => {
    const labelled = cases.filter(([, , t]) => t.result === "valid" && t.label !== "");
    expect(labelled.length).toBeGreaterThanOrEqual(8);
  });
});

describe("oaepSha256Decode edge cases", () => {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const raw = (ct: Buffer) => privateDecrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, ct);
  const encrypt = (msg: Buffer) =>
    publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, msg);

  it("decodes a 32-byte content key and accepts output with leading zero bytes stripped", () => {
    const cek = Buffer.alloc(32, 7);
    const em = raw(encrypt(cek));
    expect(em[0]).toBe(0);
    expect(oaepSha256Decode(em, 256)).toEqual(cek);
    expect(oaepSha256Decode(em.subarray(1), 256)).toEqual(cek);
  });

  it("fails with the one error for a flipped bit anywhere, for SHA-1 OAEP and for oversize input", () => {
    const em = raw(encrypt(Buffer.alloc(32, 1)));
    for (const at of [0, 1, 40, 100, 255]) {
      const bad = Buffer.from(em);
      bad[at]! ^= 0x01;
      expect(() => oaepSha256Decode(bad, 256)).toThrow(JweDecryptError);
    }
    const sha1 = raw(
      publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING }, em.subarray(0, 32)),
    );
    expect(() => oaepSha256Decode(sha1, 256)).toThrow(JweDecryptError);
    expect(() => oaepSha256Decode(Buffer.alloc(257), 256)).toThrow(JweDecryptError);
  });
});
