/**
 * Validation of Knot's public JWK (the text GET /jwe/key returned) before anything is encrypted to it.
 *
 * Allowlist: an RSA public key, modulus of 2048 to 8192 bits in minimal encoding, e = 65537, no private
 * members, and `use`/`alg`/`key_ops`, when present, permitting RSA-OAEP-256 encryption. Keys with the
 * ROCA weakness (CVE-2017-15361) are refused: their factors can be recovered from the modulus.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { decodeBase64url } from "./base64url.js";
import { KnotJwkError } from "./errors.js";
import { rsaJwkThumbprint } from "./fingerprint.js";
import { JWE_ALG, JWE_ENC } from "./jwe-decrypt.js";
import { hasRocaFingerprint } from "./roca.js";

export const MAX_JWK_TEXT_LENGTH = 64 * 1024;
export const MIN_RSA_BITS = 2048;
export const MAX_RSA_BITS = 8192;

/** Members that only a private or symmetric key has: their presence means someone sent a secret. */
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] as const;
const ENCRYPTING_KEY_OPS: ReadonlySet<string> = new Set(["encrypt", "wrapKey"]);

export interface KnotRecipient {
  readonly publicKey: KeyObject;
  /** RFC 7638 SHA-256 thumbprint, base64url. */
  readonly thumbprint: string;
  readonly kid?: string;
  /** Certificate chain from the JWK, standard base64 DER, leaf first; the recipient policy checks it. */
  readonly x5c?: readonly string[];
  readonly modulusBits: number;
  /**
   * The base64url protected header of every JWE to this key (`kid` copied when the JWK has one), and its
   * ASCII bytes, the AAD. Computed once here: it is per key, not per card.
   */
  readonly protectedHeader: string;
  readonly aad: Buffer;
}

export function parseKnotJwk(text: string): KnotRecipient {
  if (text.length === 0) throw new KnotJwkError("knot_jwk is empty");
  if (text.length > MAX_JWK_TEXT_LENGTH)
    throw new KnotJwkError(`knot_jwk may be at most ${MAX_JWK_TEXT_LENGTH} characters`);
  let jwk: unknown;
  try {
    jwk = JSON.parse(text);
  } catch {
    throw new KnotJwkError("knot_jwk is not JSON");
  }
  if (typeof jwk !== "object" || jwk === null || Array.isArray(jwk)) {
    throw new KnotJwkError("knot_jwk must be a single JWK object (not a JWK set)");
  }
  return validateKnotJwk(jwk as Record<string, unknown>);
}

/**
 * parseKnotJwk behind a small cache keyed by the JWK text: Knot rotates its key rarely, so parsing (and
 * the ROCA check) happens once per distinct key rather than once per card. The oldest entry goes first
 * when the cache is full. Errors are not cached.
 */
export function cachedKnotJwkParser(capacity = 32): (text: string) => KnotRecipient {
  const recipients = new Map<string, KnotRecipient>();
  return (text) => {
    let recipient = recipients.get(text);
    if (!recipient) {
      recipient = parseKnotJwk(text);
      if (recipients.size >= capacity) recipients.delete(recipients.keys().next().value!);
      recipients.set(text, recipient);
    }
    return recipient;
  };
}

export function validateKnotJwk(jwk: Record<string, unknown>): KnotRecipient {
  if (jwk.kty !== "RSA") throw new KnotJwkError("kty must be RSA");
  for (const member of PRIVATE_MEMBERS) {
    if (member in jwk)
      throw new KnotJwkError("the JWK carries private key members; send the public key only");
  }
  if (jwk.e !== "AQAB") throw new KnotJwkError("the public exponent must be 65537 (e = AQAB)");
  if (typeof jwk.n !== "string") throw new KnotJwkError("n is missing");
  const modulus = decodeBase64url(jwk.n);
  if (modulus === undefined || modulus.length === 0) throw new KnotJwkError("n is not canonical base64url");
  if (modulus[0] === 0) throw new KnotJwkError("n has a leading zero octet (RFC 7518 section 6.3.1.1)");
  const modulusBits = modulus.length * 8 - Math.clz32(modulus[0]!) + 24;
  if (modulusBits < MIN_RSA_BITS || modulusBits > MAX_RSA_BITS) {
    throw new KnotJwkError(`the modulus must be ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits`);
  }
  if ((modulus[modulus.length - 1]! & 1) === 0) throw new KnotJwkError("the modulus is even");
  if (jwk.use !== undefined && jwk.use !== "enc") throw new KnotJwkError("use must be enc when present");
  if (jwk.alg !== undefined && jwk.alg !== JWE_ALG)
    throw new KnotJwkError(`alg must be ${JWE_ALG} when present`);
  if (jwk.key_ops !== undefined) checkKeyOps(jwk.key_ops);
  if (jwk.kid !== undefined && (typeof jwk.kid !== "string" || jwk.kid.length > 256)) {
    throw new KnotJwkError("kid must be a string of at most 256 characters");
  }
  const x5c = jwk.x5c === undefined ? undefined : checkX5c(jwk.x5c);
  if (hasRocaFingerprint(modulus)) throw new KnotJwkError("the key has the ROCA weakness (CVE-2017-15361)");

  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: { kty: "RSA", n: jwk.n, e: jwk.e }, format: "jwk" });
  } catch {
    throw new KnotJwkError("n and e do not form a usable RSA public key");
  }
  const header =
    jwk.kid === undefined ? { alg: JWE_ALG, enc: JWE_ENC } : { alg: JWE_ALG, enc: JWE_ENC, kid: jwk.kid };
  const protectedHeader = Buffer.from(JSON.stringify(header)).toString("base64url");
  return {
    publicKey,
    thumbprint: rsaJwkThumbprint({ n: jwk.n, e: jwk.e }),
    modulusBits,
    protectedHeader,
    aad: Buffer.from(protectedHeader, "ascii"),
    ...(jwk.kid === undefined ? {} : { kid: jwk.kid }),
    ...(x5c === undefined ? {} : { x5c }),
  };
}

function checkKeyOps(ops: unknown): void {
  if (!Array.isArray(ops) || !ops.every((op) => typeof op === "string")) {
    throw new KnotJwkError("key_ops must be an array of strings");
  }
  if (!ops.some((op: string) => ENCRYPTING_KEY_OPS.has(op))) {
    throw new KnotJwkError("key_ops must include encrypt or wrapKey");
  }
}

function checkX5c(x5c: unknown): readonly string[] {
  if (!Array.isArray(x5c) || x5c.length === 0 || x5c.length > 10) {
    throw new KnotJwkError("x5c must be a non-empty array of at most 10 certificates");
  }
  for (const cert of x5c) {
    if (typeof cert !== "string" || !/^[A-Za-z0-9+/]+={0,2}$/.test(cert)) {
      throw new KnotJwkError("x5c entries must be base64 (not base64url) DER certificates");
    }
  }
  return x5c as string[];
}
