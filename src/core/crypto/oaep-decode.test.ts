/**
 * The in-process OAEP decode behind a raw RSA operation (the file store's RSA_NO_PADDING, a token's
 * CKM_RSA_X_509), against every Wycheproof RSA-OAEP-256 case. Node's RSA_NO_PADDING decryption plays
 * the raw operation. The decoder never throws: it leaves the caller's random substitute in place unless
 * the block is a valid encoding of a message of exactly the expected length.
 */
import {
  constants,
  createPrivateKey,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
} from "node:crypto";
import { describe, expect, it } from "vitest";
import { readOaepSha256Vectors } from "../../tools/testing/wycheproof.js";
import { oaepSha256DecodeInto } from "./oaep-decode.js";

const vectors = { testGroups: readOaepSha256Vectors() };

/** The raw operation then the decode, into a copy of `substitute`; a raw failure (ciphertext >= n, wrong length) leaves it. */
function rawThenDecode(pem: string, ct: Buffer, modulusBytes: number, substitute: Buffer): Buffer {
  const out = Buffer.from(substitute);
  let em: Buffer;
  try {
    em = privateDecrypt({ key: createPrivateKey(pem), padding: constants.RSA_NO_PADDING }, ct);
  } catch {
    return out;
  }
  oaepSha256DecodeInto(em, modulusBytes, out);
  return out;
}

describe("oaepSha256DecodeInto against Wycheproof rsa_oaep_2048_sha256_mgf1sha256", () => {
  const cases = vectors.testGroups.flatMap((g) =>
    g.tests.map((t) => [`tc${t.tcId} ${t.result} ${t.comment} ${t.flags}`, g, t] as const),
  );
  it("reads every case", () => expect(cases.length).toBe(37));

  it.each(cases)("%s", (_name, group, test) => {
    expect(group.sha).toBe("SHA-256");
    expect(group.mgfSha).toBe("SHA-256");
    const ct = Buffer.from(test.ct, "hex");
    const msgBytes = test.msg.length / 2;
    // The message's own length, and the 256-bit content key length the service asks for.
    for (const length of new Set([msgBytes, 32].filter((n) => n > 0))) {
      const substitute = randomBytes(length);
      const out = rawThenDecode(group.privateKeyPem, ct, group.keySize / 8, substitute);
      if (test.result === "valid" && test.label === "" && length === msgBytes) {
        expect(out.toString("hex")).toBe(test.msg);
      } else {
        // Invalid cases keep the substitute. So do valid cases encrypted under a non-empty label (JWE
        // RSA-OAEP-256 has no label: accepting them would mean the label check is not done at all),
        // and valid cases whose message is not of the expected length.
        expect(out.equals(substitute), `length ${length}`).toBe(true);
      }
    }
  });

  it("covers labelled valid vectors (they are the label check's test) and messages of many lengths", () => {
    const labelled = cases.filter(([, , t]) => t.result === "valid" && t.label !== "");
    expect(labelled.length).toBeGreaterThanOrEqual(8);
    const lengths = new Set(cases.filter(([, , t]) => t.result === "valid").map(([, , t]) => t.msg.length));
    expect(lengths.size).toBeGreaterThanOrEqual(4);
  });
});

describe("oaepSha256DecodeInto edge cases", () => {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const raw = (ct: Buffer) => privateDecrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, ct);
  const encrypt = (msg: Buffer) =>
    publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, msg);
  const decode = (em: Buffer, length = 32) => {
    const substitute = randomBytes(length);
    const out = Buffer.from(substitute);
    oaepSha256DecodeInto(em, 256, out);
    return { out, kept: out.equals(substitute) };
  };

  it("decodes a 32-byte content key and accepts output with leading zero bytes stripped", () => {
    const cek = Buffer.alloc(32, 7);
    const em = raw(encrypt(cek));
    expect(em[0]).toBe(0);
    expect(decode(em).out).toEqual(cek);
    expect(decode(em.subarray(1)).out).toEqual(cek);
  });

  it("keeps the substitute for a message one byte shorter or longer than expected", () => {
    expect(decode(raw(encrypt(Buffer.alloc(31, 7)))).kept).toBe(true);
    expect(decode(raw(encrypt(Buffer.alloc(33, 7)))).kept).toBe(true);
    expect(decode(raw(encrypt(Buffer.alloc(16, 7))), 16).out).toEqual(Buffer.alloc(16, 7));
  });

  it("keeps the substitute for a flipped bit anywhere, for SHA-1 OAEP and for oversize input", () => {
    const em = raw(encrypt(Buffer.alloc(32, 1)));
    for (const at of [0, 1, 40, 100, 255]) {
      const bad = Buffer.from(em);
      bad[at]! ^= 0x01;
      expect(decode(bad).kept, `bit flipped at ${at}`).toBe(true);
    }
    const sha1 = raw(
      publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING }, em.subarray(0, 32)),
    );
    expect(decode(sha1).kept).toBe(true);
    expect(decode(Buffer.alloc(257)).kept).toBe(true);
    // A block whose padding is all zeros has no 0x01 separator at all.
    expect(decode(Buffer.alloc(256)).kept).toBe(true);
  });
});
