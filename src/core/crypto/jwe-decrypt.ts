/**
 * Strict compact JWE decryption for exactly one algorithm pair: RSA-OAEP-256 key management and
 * A256GCM content encryption (RFC 7516, RFC 7518).
 *
 * Everything that can be checked without the private key is checked first, in `parseCompactJwe`, and
 * fails with a specific error. Once the private key is involved (`decryptJwe`), every failure is the
 * same JweDecryptError, thrown once, at the end. Nothing before that point branches on whether the key
 * unwrap worked: the key store's `unwrap` never fails for a bad encrypted key, it yields a random content
 * key instead (chosen in constant time), and AES-GCM then fails on the tag exactly as it does for a
 * tampered ciphertext. So neither the answer nor its timing tells an attacker whether OAEP, the content
 * key's length or GCM failed (RFC 7516 section 11.5; docs/design.md invariant 2).
 *
 * The private key never reaches this module: the key store supplies `unwrap`.
 */
import { randomBytes } from "node:crypto";
import { aes256GcmDecrypt, GCM_IV_BYTES, GCM_KEY_BYTES, GCM_TAG_BYTES } from "./aes-gcm.js";
import { decodeBase64url } from "./base64url.js";
import { JweDecryptError, JweHeaderUnsupportedError, JweMalformedError, JweTooLargeError } from "./errors.js";
import { JsonShapeError, scanObjectMembers } from "./json-members.js";

export const JWE_ALG = "RSA-OAEP-256";
export const JWE_ENC = "A256GCM";

/**
 * Input limit for a whole compact JWE, in characters. A Dotva secrets document is about 100 bytes; with a
 * 4096-bit key the JWE is about 1 KiB. 16 KiB leaves room for header growth and still bounds the work a
 * hostile caller can ask for.
 */
export const MAX_COMPACT_JWE_LENGTH = 16 * 1024;
export const MAX_PROTECTED_HEADER_BYTES = 2048;
/** RSA 2048 to 4096 bits: the encrypted key is exactly one modulus long. */
export const MIN_ENCRYPTED_KEY_BYTES = 256;
export const MAX_ENCRYPTED_KEY_BYTES = 512;

/** Header extensions this implementation understands and may therefore be listed in `crit`: none. */
const UNDERSTOOD_CRITICAL: ReadonlySet<string> = new Set();

export interface JweProtectedHeader {
  readonly alg: typeof JWE_ALG;
  readonly enc: typeof JWE_ENC;
  readonly kid?: string;
}

export interface ParsedJwe {
  readonly header: JweProtectedHeader;
  /** ASCII bytes of the protected header segment exactly as sent: the GCM additional data. */
  readonly aad: Buffer;
  readonly encryptedKey: Buffer;
  readonly iv: Buffer;
  readonly ciphertext: Buffer;
  readonly tag: Buffer;
}

/**
 * RSA-OAEP-256 decryption of the encrypted content key by the key store. It resolves with
 * GCM_KEY_BYTES bytes: the content key when the encrypted key is a valid OAEP encoding of a 256-bit key,
 * and otherwise a random key, selected without a branch on secret data and without throwing. It
 * rejects only when the store cannot work at all (the HSM is unreachable, say); that rejection is passed
 * to the caller unchanged, because it is not information about the ciphertext.
 */
export type UnwrapKey = (encryptedKey: Buffer) => Promise<Buffer>;

/** Checks everything that needs no private key. Throws JweTooLarge, JweMalformed or JweHeaderUnsupported errors. */
export function parseCompactJwe(jwe: string): ParsedJwe {
  if (jwe.length > MAX_COMPACT_JWE_LENGTH) {
    throw new JweTooLargeError(`a compact JWE may be at most ${MAX_COMPACT_JWE_LENGTH} characters`);
  }
  const parts = jwe.split(".");
  if (parts.length !== 5) {
    throw new JweMalformedError("a compact JWE has exactly five base64url parts separated by dots");
  }
  const [headerText, keyText, ivText, ciphertextText, tagText] = parts as [
    string,
    string,
    string,
    string,
    string,
  ];
  const header = parseProtectedHeader(headerText);
  const encryptedKey = decodePart(keyText, "encrypted key");
  const iv = decodePart(ivText, "initialization vector");
  const ciphertext = decodePart(ciphertextText, "ciphertext");
  const tag = decodePart(tagText, "authentication tag");
  if (encryptedKey.length < MIN_ENCRYPTED_KEY_BYTES || encryptedKey.length > MAX_ENCRYPTED_KEY_BYTES) {
    throw new JweMalformedError("the encrypted key must come from a 2048- to 4096-bit RSA key");
  }
  if (iv.length !== GCM_IV_BYTES) throw new JweMalformedError("A256GCM needs a 96-bit initialization vector");
  if (tag.length !== GCM_TAG_BYTES) throw new JweMalformedError("A256GCM needs a 128-bit authentication tag");
  return { header, aad: Buffer.from(headerText, "ascii"), encryptedKey, iv, ciphertext, tag };
}

function decodePart(text: string, what: string): Buffer {
  const bytes = decodeBase64url(text);
  if (bytes === undefined) throw new JweMalformedError(`the ${what} is not canonical unpadded base64url`);
  return bytes;
}

function parseProtectedHeader(text: string): JweProtectedHeader {
  const bytes = decodeBase64url(text);
  if (bytes === undefined || bytes.length === 0) {
    throw new JweMalformedError("the protected header is not canonical unpadded base64url");
  }
  if (bytes.length > MAX_PROTECTED_HEADER_BYTES) {
    throw new JweMalformedError(`the protected header may be at most ${MAX_PROTECTED_HEADER_BYTES} bytes`);
  }
  let header: Record<string, unknown>;
  try {
    scanObjectMembers(bytes);
    header = JSON.parse(bytes.toString("utf8")) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof JsonShapeError || err instanceof SyntaxError) {
      throw new JweMalformedError("the protected header is not a JSON object with unique member names");
    }
    throw err;
  }
  if (header.alg !== JWE_ALG) throw new JweHeaderUnsupportedError(`alg must be ${JWE_ALG}`);
  if (header.enc !== JWE_ENC) throw new JweHeaderUnsupportedError(`enc must be ${JWE_ENC}`);
  if ("zip" in header) throw new JweHeaderUnsupportedError("compressed plaintext (zip) is not accepted");
  if ("crit" in header) checkCritical(header.crit);
  if (header.kid !== undefined && typeof header.kid !== "string") {
    throw new JweMalformedError("kid must be a string when present");
  }
  return header.kid === undefined
    ? { alg: JWE_ALG, enc: JWE_ENC }
    : { alg: JWE_ALG, enc: JWE_ENC, kid: header.kid };
}

function checkCritical(crit: unknown): void {
  if (!Array.isArray(crit) || !crit.every((name) => typeof name === "string")) {
    throw new JweMalformedError("crit must be an array of header parameter names");
  }
  if (!crit.every((name: string) => UNDERSTOOD_CRITICAL.has(name))) {
    throw new JweHeaderUnsupportedError("crit names a header extension this service does not implement");
  }
}

/**
 * Decrypts a parsed JWE. The returned buffer holds plaintext: the caller overwrites it when done.
 * Rejects with JweDecryptError for every cryptographic failure.
 */
export async function decryptJwe(jwe: ParsedJwe, unwrap: UnwrapKey): Promise<Buffer> {
  const cek = await unwrap(jwe.encryptedKey);
  try {
    // The length is the store's public output, not a secret; a store that breaks the contract with a
    // short key still gets the one failure, not a second kind.
    const key = cek.length === GCM_KEY_BYTES ? cek : randomBytes(GCM_KEY_BYTES);
    const plaintext = aes256GcmDecrypt(key, jwe.iv, jwe.aad, jwe.ciphertext, jwe.tag);
    if (plaintext === undefined) throw new JweDecryptError();
    return plaintext;
  } finally {
    cek.fill(0);
  }
}
