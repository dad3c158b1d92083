/**
 * Failure kinds of the crypto core. Each has a stable `code` that the custody service maps to a gRPC
 * status and reason (src/custody/errors.ts). Messages say what is wrong with the input's *shape*; they
 * never contain input values, so they are safe to return to a caller and to log.
 */
export abstract class CryptoError extends Error {
  abstract readonly code: string;
  override readonly name = this.constructor.name;
}

/** Not a compact JWE we can read: wrong part count, bad base64url, bad header JSON, sizes out of bounds. */
export class JweMalformedError extends CryptoError {
  readonly code = "JWE_MALFORMED";
}

/** Larger than the documented input limit; rejected before parsing. */
export class JweTooLargeError extends CryptoError {
  readonly code = "JWE_TOO_LARGE";
}

/** Header asks for something outside the allowlist: alg, enc, zip or crit. */
export class JweHeaderUnsupportedError extends CryptoError {
  readonly code = "JWE_HEADER_UNSUPPORTED";
}

/**
 * Any failure once the private key is involved: OAEP padding, content-key length, GCM tag. One class,
 * one fixed message, so the caller cannot tell which step failed (docs/design.md invariant 2).
 */
export class JweDecryptError extends CryptoError {
  readonly code = "JWE_DECRYPT_FAILED";
  constructor() {
    super("the JWE could not be decrypted");
  }
}

/** Knot's JWK is not an RSA public encryption key we are willing to encrypt to. */
export class KnotJwkError extends CryptoError {
  readonly code = "KNOT_JWK_INVALID";
}

/** key_fingerprint is not a SHA-256 fingerprint in any accepted form. */
export class FingerprintError extends CryptoError {
  readonly code = "KEY_FINGERPRINT_INVALID";
}
