/**
 * Interop with implementations we did not write: JWEs made by Python's jwcrypto and by jose decrypt
 * here; what we produce decrypts with jwcrypto and with jose; keys come from openssl.
 */
import { execFileSync } from "node:child_process";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { CompactEncrypt, compactDecrypt } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { privateKeyUnwrap } from "../../custody/keystore/private-key-unwrap.js";
import { expiryFromNow } from "../../tools/testing/expiry.js";
import { jwcrypto } from "../../tools/testing/jwcrypto.js";
import { USER } from "../../tools/testing/profile.js";
import { parseKnotUser } from "../card/knot-user.js";
import { reencryptForKnot } from "../reencrypt.js";
import { fingerprintForms } from "./fingerprint.js";
import { decryptJwe, parseCompactJwe } from "./jwe-decrypt.js";
import { parseKnotJwk } from "./knot-jwk.js";

const EXPIRY = expiryFromNow();
const SECRETS = JSON.stringify({
  pan: "4000056655665556",
  cvv: "9731",
  expiry_month: EXPIRY.month,
  expiry_year: EXPIRY.year,
});
const HEADER = { alg: "RSA-OAEP-256", enc: "A256GCM" };

/** An RSA key made by the openssl command line, as an operator would make one. */
function opensslKey(bits: number) {
  const pem = execFileSync(
    "openssl",
    ["genpkey", "-algorithm", "RSA", "-pkeyopt", `rsa_keygen_bits:${bits}`],
    {
      encoding: "utf8",
    },
  );
  const privateKey = createPrivateKey(pem);
  return { pem, privateKey, publicKey: createPublicKey(privateKey) };
}

let dotva: ReturnType<typeof opensslKey>;
let knot: ReturnType<typeof opensslKey>;
beforeAll(() => {
  dotva = opensslKey(2048);
  knot = opensslKey(3072);
});

const publicJwk = (key: ReturnType<typeof opensslKey>) => key.publicKey.export({ format: "jwk" });
const privateJwk = (key: ReturnType<typeof opensslKey>) => key.privateKey.export({ format: "jwk" });

describe("Dotva side: JWEs made by other implementations decrypt", () => {
  it("jwcrypto RSA-OAEP-256 + A256GCM to an openssl-generated key", async () => {
    const jwe = jwcrypto("encrypt", { jwk: publicJwk(dotva), plaintext: SECRETS, header: HEADER });
    const plaintext = await decryptJwe(parseCompactJwe(jwe), privateKeyUnwrap(dotva.privateKey));
    expect(plaintext.toString()).toBe(SECRETS);
  });

  it("jwcrypto with a kid in the header", async () => {
    const jwe = jwcrypto("encrypt", {
      jwk: publicJwk(dotva),
      plaintext: SECRETS,
      header: { ...HEADER, kid: "dotva-1" },
    });
    const parsed = parseCompactJwe(jwe);
    expect(parsed.header.kid).toBe("dotva-1");
    expect((await decryptJwe(parsed, privateKeyUnwrap(dotva.privateKey))).toString()).toBe(SECRETS);
  });

  it("jose RSA-OAEP-256 + A256GCM", async () => {
    const jwe = await new CompactEncrypt(new TextEncoder().encode(SECRETS))
      .setProtectedHeader(HEADER)
      .encrypt(dotva.publicKey);
    expect((await decryptJwe(parseCompactJwe(jwe), privateKeyUnwrap(dotva.privateKey))).toString()).toBe(
      SECRETS,
    );
  });

  it("jwcrypto's RSA-OAEP (SHA-1) is refused from the header", () => {
    const jwe = jwcrypto("encrypt", {
      jwk: publicJwk(dotva),
      plaintext: SECRETS,
      header: { ...HEADER, alg: "RSA-OAEP" },
    });
    expect(() => parseCompactJwe(jwe)).toThrow(expect.objectContaining({ code: "JWE_HEADER_UNSUPPORTED" }));
  });
});

describe("Knot side: what we produce decrypts elsewhere, in Knot's shape", () => {
  async function reencrypt(knotJwkText: string) {
    const jwe = jwcrypto("encrypt", { jwk: publicJwk(dotva), plaintext: SECRETS, header: HEADER });
    return reencryptForKnot({
      jwe: parseCompactJwe(jwe),
      unwrap: privateKeyUnwrap(dotva.privateKey),
      recipient: parseKnotJwk(knotJwkText),
      user: parseKnotUser(USER),
      now: new Date(),
    });
  }
  const expected = {
    user: USER,
    card: { number: "4000056655665556", expiration: EXPIRY.mmYyyy, cvv: "9731" },
  };

  it("decrypts with jwcrypto, the Knot JWK having been made by jwcrypto from openssl's PEM", async () => {
    const knotJwk = jwcrypto("pem2jwk", { pem: knot.publicKey.export({ type: "spki", format: "pem" }) });
    const out = await reencrypt(knotJwk);
    const plaintext = jwcrypto("decrypt", { jwk: privateJwk(knot), jwe: out.jwe });
    expect(JSON.parse(plaintext)).toStrictEqual(expected);
    expect(out.cardLast4).toBe("5556");
  });

  it("decrypts with jose, header exactly alg/enc/kid", async () => {
    const out = await reencrypt(JSON.stringify({ ...publicJwk(knot), kid: "knot-2026-11", use: "enc" }));
    const { plaintext, protectedHeader } = await compactDecrypt(out.jwe, knot.privateKey, {
      keyManagementAlgorithms: ["RSA-OAEP-256"],
      contentEncryptionAlgorithms: ["A256GCM"],
    });
    expect(protectedHeader).toStrictEqual({ alg: "RSA-OAEP-256", enc: "A256GCM", kid: "knot-2026-11" });
    expect(JSON.parse(new TextDecoder().decode(plaintext))).toStrictEqual(expected);
  });

  it("the fingerprint of an openssl key matches openssl's own digest of its DER SPKI", () => {
    const der = execFileSync("openssl", ["pkey", "-pubout", "-outform", "DER"], {
      input: dotva.pem,
    });
    const hex = execFileSync("sha256sum", { input: der, encoding: "utf8" }).split(" ")[0];
    expect(fingerprintForms(dotva.publicKey).canonical).toBe(`sha256:${hex}`);
  });
});
