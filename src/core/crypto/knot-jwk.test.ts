import { generateKeyPairSync } from "node:crypto";
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from "jose";
import { describe, expect, it } from "vitest";
import { readWycheproof } from "../../tools/testing/wycheproof.js";
import { KnotJwkError } from "./errors.js";
import { parseKnotJwk, validateKnotJwk } from "./knot-jwk.js";

const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const base = publicKey.export({ format: "jwk" }) as Record<string, unknown>;

function reasonOf(jwk: unknown): string | undefined {
  try {
    parseKnotJwk(typeof jwk === "string" ? jwk : JSON.stringify(jwk));
  } catch (err) {
    expect(err).toBeInstanceOf(KnotJwkError);
    expect((err as KnotJwkError).code).toBe("KNOT_JWK_INVALID");
    return (err as Error).message;
  }
  return undefined;
}

describe("parseKnotJwk accepts", () => {
  it("a bare RSA public JWK, with its RFC 7638 thumbprint computed as jose computes it", async () => {
    const recipient = parseKnotJwk(JSON.stringify(base));
    expect(recipient.thumbprint).toBe(await calculateJwkThumbprint(base as never, "sha256"));
    expect(recipient.modulusBits).toBe(2048);
    expect(recipient.kid).toBeUndefined();
  });

  it("use enc, alg RSA-OAEP-256, key_ops wrapKey or encrypt, kid", () => {
    const recipient = parseKnotJwk(
      JSON.stringify({ ...base, use: "enc", alg: "RSA-OAEP-256", key_ops: ["wrapKey"], kid: "knot-2026" }),
    );
    expect(recipient.kid).toBe("knot-2026");
    expect(reasonOf({ ...base, key_ops: ["encrypt"] })).toBeUndefined();
  });

  it("a 4096-bit key made by jose", async () => {
    const pair = await generateKeyPair("RSA-OAEP-256", { modulusLength: 4096, extractable: true });
    expect(parseKnotJwk(JSON.stringify(await exportJWK(pair.publicKey))).modulusBits).toBe(4096);
  });
});

describe("parseKnotJwk rejects", () => {
  const small = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({ format: "jwk" });
  const e3 = generateKeyPairSync("rsa", { modulusLength: 2048, publicExponent: 3 }).publicKey.export({
    format: "jwk",
  });
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ format: "jwk" });

  it.each([
    ["a private key", privateKey.export({ format: "jwk" }), /private key members/],
    ["a public key with a stray d", { ...base, d: "AQAB" }, /private key members/],
    ["a symmetric key", { kty: "oct", k: "AAAA" }, /kty must be RSA/],
    ["an EC key", ec, /kty must be RSA/],
    ["a 1024-bit key", small, /2048 to 8192 bits/],
    ["e = 3", e3, /65537/],
    ["use sig", { ...base, use: "sig" }, /use must be enc/],
    ["alg RSA-OAEP (SHA-1)", { ...base, alg: "RSA-OAEP" }, /alg must be RSA-OAEP-256/],
    ["alg RSA1_5", { ...base, alg: "RSA1_5" }, /alg must be RSA-OAEP-256/],
    ["key_ops verify only", { ...base, key_ops: ["verify"] }, /key_ops must include/],
    ["key_ops not an array", { ...base, key_ops: "encrypt" }, /array of strings/],
    [
      "a leading zero octet in n",
      {
        ...base,
        n: Buffer.concat([Buffer.alloc(1), Buffer.from(base.n as string, "base64url")]).toString("base64url"),
      },
      /leading zero/,
    ],
    ["n in base64 with padding", { ...base, n: `${base.n}=` }, /canonical base64url/],
    ["an even modulus", { ...base, n: evenModulus(base.n as string) }, /even/],
    ["x5c in base64url", { ...base, x5c: ["ab-_"] }, /x5c/],
    ["a JWK set", { keys: [base] }, /kty must be RSA/],
    ["an array", [base], /single JWK object/],
    ["not JSON", "{kty: RSA}", /not JSON/],
    ["empty text", "", /empty/],
  ])("%s", (_name, jwk, reason) => {
    expect(reasonOf(jwk)).toMatch(reason);
  });
});

function evenModulus(n: string): string {
  const bytes = Buffer.from(n, "base64url");
  bytes[bytes.length - 1]! &= 0xfe;
  return bytes.toString("base64url");
}

interface JwkGroup {
  comment: string;
  public?: { keys: Record<string, unknown>[] };
  tests: { tcId: string; comment: string; result: string }[];
}

describe("Wycheproof json_web_key_test.json public keys", () => {
  const groups = readWycheproof<{ testGroups: JwkGroup[] }>("json_web_key_test.json").testGroups.filter(
    (g) => g.public !== undefined,
  );
  const keys = groups.flatMap((g) =>
    g.public!.keys.map((key) => [`${g.comment} (${g.tests[0]!.comment})`, key] as const),
  );
  const rsaKeys = keys.filter(([, key]) => key.kty === "RSA");

  it("feeds every public key to the validator", () => {
    expect(keys.length).toBe(11);
    expect(rsaKeys.length).toBe(6);
  });

  // None is an encryption key we may use: each is refused, for a reason we can name.
  const expected: Record<string, RegExp> = {
    "rs256 (acceptsValid)": /use must be enc/,
    "rs256 (rejectsWrongUse)": /alg must be RSA-OAEP-256/,
    "jws_rsa_roca_key (rejectsKeyWithRocaVulnerability)": /use must be enc/,
    "keysize_too_small (rejects1024bitRsaKey)": /2048 to 8192 bits/,
    "exponentOne (rejectsPublicExponent1)": /65537/,
    "wrong_kty (rejectsModifiedKey)": /e = AQAB|n is missing/,
  };
  it.each(keys)("%s is refused", (name, key) => {
    const reason = reasonOf(key);
    expect(reason).toBeDefined();
    if (key.kty !== "RSA") expect(reason).toMatch(/kty must be RSA/);
    else expect(reason).toMatch(expected[name]!);
  });

  it("the valid RS256 key, once stripped of its signing use, is an acceptable encryption key", () => {
    const [, key] = rsaKeys.find(([name]) => name === "rs256 (acceptsValid)")!;
    const { alg: _alg, use: _use, ...bare } = key;
    expect(validateKnotJwk(bare).modulusBits).toBeGreaterThanOrEqual(2048);
  });

  it("the ROCA key, stripped the same way, is refused for its ROCA fingerprint", () => {
    const [, key] = rsaKeys.find(([name]) => name.startsWith("jws_rsa_roca_key"))!;
    const { alg: _alg, use: _use, ...bare } = key;
    expect(reasonOf(bare)).toMatch(/ROCA/);
  });

  it("random keys are not mistaken for ROCA keys", () => {
    for (let i = 0; i < 3; i++) {
      const jwk = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ format: "jwk" });
      expect(reasonOf(jwk)).toBeUndefined();
    }
  });
});
