/**
 * Key fingerprints.
 *
 * Canonical form: `sha256:` + lowercase hex of SHA-256 over the DER SubjectPublicKeyInfo, which is what
 * `openssl pkey -pubin -outform DER | sha256sum` prints. Dotva's documentation only says "SHA-256
 * fingerprint of the public key", so a lookup also accepts the same digest as base64, base64url or
 * colon-separated hex, and the RFC 7638 JWK thumbprint. Every form maps to one canonical string so the
 * key store is a plain index: keys are never tried one by one.
 */
import { createHash, type KeyObject } from "node:crypto";
import { FingerprintError } from "./errors.js";

declare const canonical: unique symbol;
export type CanonicalFingerprint = string & { readonly [canonical]: true };

const CANONICAL = /^sha256:[0-9a-f]{64}$/;

export function spkiFingerprint(spkiDer: Uint8Array): CanonicalFingerprint {
  return `sha256:${createHash("sha256").update(spkiDer).digest("hex")}` as CanonicalFingerprint;
}

export function isCanonicalFingerprint(value: string): value is CanonicalFingerprint {
  return CANONICAL.test(value);
}

/** RFC 7638 thumbprint (SHA-256, base64url) of an RSA public key. */
export function rsaJwkThumbprint(key: { n: string; e: string }): string {
  // Members in lexicographic order, no whitespace: RFC 7638 section 3.3.
  const json = `{"e":"${key.e}","kty":"RSA","n":"${key.n}"}`;
  return createHash("sha256").update(json).digest("base64url");
}

export interface FingerprintForms {
  readonly canonical: CanonicalFingerprint;
  /** Alternative spellings accepted by lookups, each resolving to `canonical`. */
  readonly aliases: readonly string[];
}

/** All forms under which a public key may be looked up. */
export function fingerprintForms(publicKey: KeyObject): FingerprintForms {
  const spki = publicKey.export({ type: "spki", format: "der" });
  const digest = createHash("sha256").update(spki).digest();
  const jwk = publicKey.export({ format: "jwk" });
  if (jwk.kty !== "RSA" || !jwk.n || !jwk.e) throw new FingerprintError("only RSA keys are fingerprinted");
  const hex = digest.toString("hex");
  const aliases = new Set<string>([
    digest.toString("base64"),
    digest.toString("base64url"),
    hex.match(/../g)!.join(":"),
    rsaJwkThumbprint({ n: jwk.n, e: jwk.e }),
  ]);
  return { canonical: `sha256:${hex}` as CanonicalFingerprint, aliases: [...aliases] };
}

/**
 * Turns what a partner sent into the lookup key for the index: the canonical form when the text is any
 * encoding of a SHA-256 digest we can read as one, else the trimmed text itself (an RFC 7638 thumbprint
 * is base64url too, so both land in the same index and the index decides).
 * Throws FingerprintError when the text cannot be a fingerprint at all.
 */
export function normalizeFingerprint(text: string): string {
  const value = text.trim();
  if (value.length === 0 || value.length > 200)
    throw new FingerprintError("key_fingerprint is empty or too long");
  const prefixed = /^sha-?256:(.+)$/i.exec(value);
  const body = prefixed ? prefixed[1]! : value;
  if (/^[0-9a-fA-F]{64}$/.test(body)) return `sha256:${body.toLowerCase()}`;
  if (/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){31}$/.test(body))
    return `sha256:${body.replaceAll(":", "").toLowerCase()}`;
  if (/^[A-Za-z0-9+/]{43}=$/.test(body)) return `sha256:${Buffer.from(body, "base64").toString("hex")}`;
  // 43 base64url characters: either the SPKI digest or an RFC 7638 thumbprint; the index holds both.
  if (/^[A-Za-z0-9_-]{43}$/.test(body)) return body;
  throw new FingerprintError("key_fingerprint is not a SHA-256 fingerprint in any accepted form");
}
