/**
 * Each rejection of the strict JWE reader, asserting its specific error code, and the uniformity of
 * failures once the private key is involved.
 */
import { constants, createCipheriv, generateKeyPairSync, publicEncrypt, randomBytes } from "node:crypto";
import { CompactEncrypt } from "jose";
import { describe, expect, it, vi } from "vitest";
import { privateKeyUnwrap } from "../../custody/keystore/private-key-unwrap.js";
import { expiryFromNow } from "../../tools/testing/expiry.js";
import { aes256GcmDecrypt } from "./aes-gcm.js";
import { JweDecryptError } from "./errors.js";
import { decryptJwe, MAX_COMPACT_JWE_LENGTH, parseCompactJwe, type UnwrapKey } from "./jwe-decrypt.js";

// Pass-through spy: lets a test see that AES-GCM runs even when the unwrap failed.
vi.mock("./aes-gcm.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("./aes-gcm.js")>();
  return { ...real, aes256GcmDecrypt: vi.fn(real.aes256GcmDecrypt) };
});

const dotva = generateKeyPairSync("rsa", { modulusLength: 2048 });
const unwrap = privateKeyUnwrap(dotva.privateKey);
const b64u = (data: string | Buffer) => Buffer.from(data).toString("base64url");
const EXPIRY = expiryFromNow();
const PLAINTEXT = `{"pan":"4242424242424242","cvv":"123","expiry_month":${EXPIRY.month},"expiry_year":${EXPIRY.year}}`;

async function joseJwe(header: Record<string, unknown> = { alg: "RSA-OAEP-256", enc: "A256GCM" }) {
  return new CompactEncrypt(new TextEncoder().encode(PLAINTEXT))
    .setProtectedHeader(header as never)
    .encrypt(dotva.publicKey);
}

/** A hand-made JWE: lets a test choose the header bytes, CEK length, IV and tag sizes freely. */
function craftJwe(
  opts: { header?: string; cek?: Buffer; iv?: Buffer; tagBytes?: number; encryptedKey?: Buffer } = {},
) {
  const header = b64u(opts.header ?? '{"alg":"RSA-OAEP-256","enc":"A256GCM"}');
  const cek = opts.cek ?? randomBytes(32);
  const iv = opts.iv ?? randomBytes(12);
  const cipher = createCipheriv(`aes-${cek.length * 8}-gcm` as "aes-256-gcm", cek, iv, {
    authTagLength: opts.tagBytes ?? 16,
  });
  cipher.setAAD(Buffer.from(header, "ascii"));
  const ciphertext = Buffer.concat([cipher.update(PLAINTEXT), cipher.final()]);
  const encryptedKey =
    opts.encryptedKey ??
    publicEncrypt(
      { key: dotva.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
      cek,
    );
  return [header, b64u(encryptedKey), b64u(iv), b64u(ciphertext), b64u(cipher.getAuthTag())].join(".");
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

function replacePart(jwe: string, index: number, value: string) {
  const parts = jwe.split(".");
  parts[index] = value;
  return parts.join(".");
}

function flipByte(jwe: string, index: number, at = 0) {
  const bytes = Buffer.from(jwe.split(".")[index]!, "base64url");
  bytes[at]! ^= 0x01;
  return replacePart(jwe, index, b64u(bytes));
}

describe("parseCompactJwe: checks made before any private-key operation", () => {
  it("accepts a jose-made RSA-OAEP-256/A256GCM JWE and decrypts it", async () => {
    const plaintext = await decryptJwe(parseCompactJwe(await joseJwe()), unwrap);
    expect(plaintext.toString()).toBe(PLAINTEXT);
  });

  it("keeps kid from the header", async () => {
    expect(
      parseCompactJwe(await joseJwe({ alg: "RSA-OAEP-256", enc: "A256GCM", kid: "k1" })).header.kid,
    ).toBe("k1");
  });

  it.each([
    ["too large", "a".repeat(MAX_COMPACT_JWE_LENGTH + 1), "JWE_TOO_LARGE"],
    ["four parts", "a.b.c.d", "JWE_MALFORMED"],
    ["six parts", "a.b.c.d.e.f", "JWE_MALFORMED"],
    ["JSON serialization", '{"protected":"x","ciphertext":"y"}', "JWE_MALFORMED"],
    ["empty header", "....", "JWE_MALFORMED"],
  ])("rejects %s", (_name, input, code) => {
    expect(codeOf(() => parseCompactJwe(input))).toBe(code);
  });

  it.each([
    ["alg RSA-OAEP (SHA-1)", '{"alg":"RSA-OAEP","enc":"A256GCM"}', "JWE_HEADER_UNSUPPORTED"],
    ["alg RSA1_5", '{"alg":"RSA1_5","enc":"A256GCM"}', "JWE_HEADER_UNSUPPORTED"],
    ["alg none", '{"alg":"none","enc":"A256GCM"}', "JWE_HEADER_UNSUPPORTED"],
    ["alg dir", '{"alg":"dir","enc":"A256GCM"}', "JWE_HEADER_UNSUPPORTED"],
    ["alg in other case", '{"alg":"rsa-oaep-256","enc":"A256GCM"}', "JWE_HEADER_UNSUPPORTED"],
    ["enc A128GCM", '{"alg":"RSA-OAEP-256","enc":"A128GCM"}', "JWE_HEADER_UNSUPPORTED"],
    ["enc A256CBC-HS512", '{"alg":"RSA-OAEP-256","enc":"A256CBC-HS512"}', "JWE_HEADER_UNSUPPORTED"],
    ["missing enc", '{"alg":"RSA-OAEP-256"}', "JWE_HEADER_UNSUPPORTED"],
    ["zip", '{"alg":"RSA-OAEP-256","enc":"A256GCM","zip":"DEF"}', "JWE_HEADER_UNSUPPORTED"],
    [
      "unknown crit",
      '{"alg":"RSA-OAEP-256","enc":"A256GCM","crit":["exp"],"exp":1}',
      "JWE_HEADER_UNSUPPORTED",
    ],
    ["crit not an array", '{"alg":"RSA-OAEP-256","enc":"A256GCM","crit":"exp"}', "JWE_MALFORMED"],
    ["kid not a string", '{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":7}', "JWE_MALFORMED"],
    ["duplicate alg", '{"alg":"RSA1_5","alg":"RSA-OAEP-256","enc":"A256GCM"}', "JWE_MALFORMED"],
    ["header is an array", '["RSA-OAEP-256"]', "JWE_MALFORMED"],
    ["header is not JSON", "alg=RSA-OAEP-256", "JWE_MALFORMED"],
    ["trailing bytes", '{"alg":"RSA-OAEP-256","enc":"A256GCM"} x', "JWE_MALFORMED"],
    ["oversized header", `{"alg":"RSA-OAEP-256","enc":"A256GCM","x":"${"a".repeat(2100)}"}`, "JWE_MALFORMED"],
  ])("rejects a header with %s", (_name, header, code) => {
    expect(codeOf(() => parseCompactJwe(craftJwe({ header })))).toBe(code);
  });

  it("accepts an empty crit list (it names no unknown extension)", () => {
    expect(
      codeOf(() => parseCompactJwe(craftJwe({ header: '{"alg":"RSA-OAEP-256","enc":"A256GCM","crit":[]}' }))),
    ).toBe(undefined);
  });

  it.each([
    ["a 1024-bit RSA encrypted key", { encryptedKey: randomBytes(128) }],
    ["an 8192-bit RSA encrypted key", { encryptedKey: randomBytes(1024) }],
    ["a 128-bit IV", { iv: randomBytes(16) }],
    ["a 96-bit tag", { tagBytes: 12 }],
  ])("rejects %s as malformed", (_name, opts) => {
    expect(codeOf(() => parseCompactJwe(craftJwe(opts)))).toBe("JWE_MALFORMED");
  });

  it.each([
    ["padding", (p: string) => `${p}=`],
    ["standard base64 characters", (p: string) => `+${p.slice(1)}`],
    ["whitespace", (p: string) => `${p.slice(0, 4)} ${p.slice(4)}`],
  ])("rejects base64url with %s", (_name, mangle) => {
    const jwe = craftJwe();
    expect(codeOf(() => parseCompactJwe(replacePart(jwe, 3, mangle(jwe.split(".")[3]!))))).toBe(
      "JWE_MALFORMED",
    );
  });

  it("rejects non-canonical trailing bits (two spellings of the same bytes)", () => {
    const jwe = craftJwe();
    const tag = jwe.split(".")[4]!; // 16 bytes -> 22 chars, the last one carries 4 unused bits
    const last = tag.at(-1)!;
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const sibling = alphabet[alphabet.indexOf(last) ^ 1]!;
    expect(Buffer.from(tag.slice(0, -1) + sibling, "base64url")).toEqual(Buffer.from(tag, "base64url"));
    expect(codeOf(() => parseCompactJwe(replacePart(jwe, 4, tag.slice(0, -1) + sibling)))).toBe(
      "JWE_MALFORMED",
    );
  });
});

describe("decryptJwe: one indistinguishable failure once the private key is involved", () => {
  async function failureOf(jwe: string, using: UnwrapKey = unwrap) {
    try {
      await decryptJwe(parseCompactJwe(jwe), using);
    } catch (err) {
      return err as Error;
    }
    throw new Error("decryption unexpectedly succeeded");
  }

  it.each([
    ["a modified ciphertext", (j: string) => flipByte(j, 3)],
    ["a modified tag", (j: string) => flipByte(j, 4)],
    ["a modified IV", (j: string) => flipByte(j, 2)],
    ["a modified encrypted key (OAEP failure)", (j: string) => flipByte(j, 1, 100)],
    [
      "a modified header (AAD)",
      (j: string) => replacePart(j, 0, b64u('{"enc":"A256GCM","alg":"RSA-OAEP-256"}')),
    ],
  ])("%s", async (_name, tamper) => {
    const err = await failureOf(tamper(await joseJwe()));
    expect(err).toBeInstanceOf(JweDecryptError);
    expect(err.message).toBe(new JweDecryptError().message);
  });

  it("a JWE for another key", async () => {
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const err = await failureOf(await joseJwe(), privateKeyUnwrap(other.privateKey));
    expect(err).toBeInstanceOf(JweDecryptError);
  });

  it("a content key of the wrong length (16 bytes) is treated as a failed unwrap", async () => {
    const err = await failureOf(craftJwe({ cek: randomBytes(16) }));
    expect(err).toBeInstanceOf(JweDecryptError);
  });

  it("runs AES-GCM when the unwrap fails, with the store's substitute key, and fails only there", async () => {
    // If decryptJwe returned early on an unwrap failure, timing would tell OAEP failures from GCM ones.
    const handedOut: Buffer[] = [];
    const recording: UnwrapKey = async (ek) => {
      const cek = await unwrap(ek);
      handedOut.push(Buffer.from(cek));
      return cek;
    };
    const jwe = parseCompactJwe(flipByte(await joseJwe(), 1, 100));
    vi.mocked(aes256GcmDecrypt).mockClear();
    await expect(decryptJwe(jwe, recording)).rejects.toBeInstanceOf(JweDecryptError);
    expect(handedOut).toHaveLength(1);
    expect(aes256GcmDecrypt).toHaveBeenCalledOnce();
    expect(vi.mocked(aes256GcmDecrypt).mock.results[0]!.value).toBeUndefined();
    expect(handedOut[0]).toHaveLength(32);
  });

  it("replaces a content key of the wrong length from a store by a random one, failing the same way", async () => {
    const short: UnwrapKey = async () => Buffer.alloc(16, 1);
    const jwe = parseCompactJwe(craftJwe());
    vi.mocked(aes256GcmDecrypt).mockClear();
    const err = await decryptJwe(jwe, short).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JweDecryptError);
    expect(vi.mocked(aes256GcmDecrypt).mock.calls[0]![0]).toHaveLength(32);
  });

  it("passes infrastructure failures of the key store through unchanged", async () => {
    class TokenGone extends Error {}
    await expect(
      decryptJwe(parseCompactJwe(await joseJwe()), async () => {
        throw new TokenGone("token removed");
      }),
    ).rejects.toBeInstanceOf(TokenGone);
  });

  it("overwrites the content key it received from the key store", async () => {
    const handedOut: Buffer[] = [];
    const recording: UnwrapKey = async (ek) => {
      const cek = await unwrap(ek);
      handedOut.push(cek);
      return cek;
    };
    await decryptJwe(parseCompactJwe(await joseJwe()), recording);
    await failureOf(flipByte(await joseJwe(), 4), recording);
    expect(handedOut).toHaveLength(2);
    for (const cek of handedOut) expect(cek.every((b) => b === 0)).toBe(true);
  });
});
