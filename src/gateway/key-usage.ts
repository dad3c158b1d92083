/**
 * "Which stored cards still need key X?", the question to answer before a Dotva key is retired (as Vault
 * asks before raising min_decryption_version). The gateway stores `key_fingerprint` as Dotva spelled it,
 * and custody accepts several spellings of one key (src/core/crypto/fingerprint.ts), so the stored texts are
 * grouped in SQL and each group's spelling is normalised here: a key counts every form that names it.
 */
import { FingerprintError } from "../core/crypto/errors.js";
import { type CanonicalFingerprint, normalizeFingerprint } from "../core/crypto/fingerprint.js";
import type { StoredSecretsByFingerprint } from "./storage/repository.js";

const BASE64URL_DIGEST = /^[A-Za-z0-9_-]{43}$/;

/**
 * The canonical `sha256:<hex>` of a key named by its SPKI SHA-256 digest in any spelling custody accepts
 * (prefixed or bare hex, colon hex, base64, base64url). Throws FingerprintError for anything else.
 */
export function spkiFingerprint(text: string): CanonicalFingerprint {
  const n = normalizeFingerprint(text);
  if (n.startsWith("sha256:")) return n as CanonicalFingerprint;
  return `sha256:${Buffer.from(n, "base64url").toString("hex")}` as CanonicalFingerprint;
}

export interface KeyQuery {
  readonly fingerprint: CanonicalFingerprint;
  /** The key's RFC 7638 JWK thumbprint, when Dotva may have named the key that way. */
  readonly jwkThumbprint?: string;
}

export interface KeyUsage {
  readonly fingerprint: CanonicalFingerprint;
  readonly withSecrets: number;
  readonly unsent: number;
  /** The stored spellings that named this key. */
  readonly spellings: readonly string[];
}

function names(stored: string, key: KeyQuery): boolean {
  let n: string;
  try {
    n = normalizeFingerprint(stored);
  } catch (error) {
    if (error instanceof FingerprintError) return false;
    throw error;
  }
  if (n === key.fingerprint) return true;
  // 43 base64url characters are either the SPKI digest or the JWK thumbprint: custody's index holds both.
  return (
    BASE64URL_DIGEST.test(n) &&
    (`sha256:${Buffer.from(n, "base64url").toString("hex")}` === key.fingerprint || n === key.jwkThumbprint)
  );
}

export function keyUsage(groups: readonly StoredSecretsByFingerprint[], key: KeyQuery): KeyUsage {
  const matching = groups.filter((g) => names(g.keyFingerprint, key));
  return {
    fingerprint: key.fingerprint,
    withSecrets: matching.reduce((sum, g) => sum + g.withSecrets, 0),
    unsent: matching.reduce((sum, g) => sum + g.unsent, 0),
    spellings: matching.map((g) => g.keyFingerprint),
  };
}
