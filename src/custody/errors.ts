/**
 * Every failure custody can report, each a class with a stable `code` (the gRPC ErrorInfo reason) and
 * the gRPC status it maps to. Messages describe what the caller must fix and never contain input
 * values: they are returned to callers and written to the audit log as they are.
 *
 * Errors of the crypto core (src/crypto/errors.ts) and of the key stores (src/keystore/errors.ts) know
 * no transport; they are mapped here by their stable codes, so this module is the single table an
 * auditor reads to see what a caller can learn.
 */
import { status } from "@grpc/grpc-js";
import {
  CryptoError,
  FingerprintError,
  JweDecryptError,
  JweHeaderUnsupportedError,
  JweMalformedError,
  JweTooLargeError,
  KnotJwkError,
} from "../crypto/errors.js";
import { KeyStoreError, KeyStoreUnavailableError } from "../keystore/errors.js";

export abstract class CustodyError extends Error {
  abstract readonly code: string;
  abstract readonly grpcStatus: status;
  override readonly name = this.constructor.name;
}

/** The decrypted Dotva document is not the JSON object we expect. */
export class SecretsMalformedError extends CustodyError {
  readonly code = "SECRETS_MALFORMED";
  readonly grpcStatus = status.INVALID_ARGUMENT;
}

/** PAN missing, not 12-19 digits, or fails the Luhn check. */
export class PanInvalidError extends CustodyError {
  readonly code = "PAN_INVALID";
  readonly grpcStatus = status.INVALID_ARGUMENT;
}

/** CVV missing or not 3-4 digits. */
export class CvvInvalidError extends CustodyError {
  readonly code = "CVV_INVALID";
  readonly grpcStatus = status.INVALID_ARGUMENT;
}

/** Expiry month not 1-12, or year not a 2- or 4-digit year. */
export class ExpiryInvalidError extends CustodyError {
  readonly code = "EXPIRY_INVALID";
  readonly grpcStatus = status.INVALID_ARGUMENT;
}

/** The card expired before the end of its expiry month. */
export class CardExpiredError extends CustodyError {
  readonly code = "CARD_EXPIRED";
  readonly grpcStatus = status.INVALID_ARGUMENT;
}

/** The cardholder profile misses a required field or has one in the wrong format. */
export class UserProfileError extends CustodyError {
  readonly code = "USER_PROFILE_INVALID";
  readonly grpcStatus = status.INVALID_ARGUMENT;
}

/** A request field other than the JWE, JWK, fingerprint or user is missing or malformed. */
export class RequestInvalidError extends CustodyError {
  readonly code = "REQUEST_INVALID";
  readonly grpcStatus = status.INVALID_ARGUMENT;
}

/** No key in the store has this fingerprint. */
export class KeyNotFoundError extends CustodyError {
  readonly code = "KEY_NOT_FOUND";
  readonly grpcStatus = status.NOT_FOUND;
}

/** The key exists but an operator disabled it. */
export class KeyDisabledError extends CustodyError {
  readonly code = "KEY_DISABLED";
  readonly grpcStatus = status.FAILED_PRECONDITION;
}

/** The recipient key is neither pinned nor certified by an x5c entry granted to this caller. */
export class RecipientNotAllowedError extends CustodyError {
  readonly code = "RECIPIENT_NOT_ALLOWED";
  readonly grpcStatus = status.PERMISSION_DENIED;
}

/** The caller's grant does not include the Dotva key it asked to decrypt with (or no such key exists). */
export class SourceKeyNotAllowedError extends CustodyError {
  readonly code = "SOURCE_KEY_NOT_ALLOWED";
  readonly grpcStatus = status.PERMISSION_DENIED;
}

/** The caller's certificate identity is not on this RPC's allowlist. */
export class CallerNotAllowedError extends CustodyError {
  readonly code = "CALLER_NOT_ALLOWED";
  readonly grpcStatus = status.PERMISSION_DENIED;
}

/** The client certificate does not carry exactly one usable identity (in production: one SPIFFE ID). */
export class CallerIdentityInvalidError extends CustodyError {
  readonly code = "CALLER_IDENTITY_INVALID";
  readonly grpcStatus = status.PERMISSION_DENIED;
}

/** The client certificate was valid at the handshake but has expired since; reconnect with a new one. */
export class CallerCertificateExpiredError extends CustodyError {
  readonly code = "CALLER_CERTIFICATE_EXPIRED";
  readonly grpcStatus = status.UNAUTHENTICATED;
}

/** Per-caller rate or concurrency limit reached; retry later with backoff. */
export class OverloadedError extends CustodyError {
  readonly code = "OVERLOADED";
  readonly grpcStatus = status.RESOURCE_EXHAUSTED;
}

/** The caller's deadline passed before the work finished. */
export class DeadlineExceededError extends CustodyError {
  readonly code = "DEADLINE_EXCEEDED";
  readonly grpcStatus = status.DEADLINE_EXCEEDED;
}

/** Anything unexpected. The detail goes to the operator log, never to the caller. */
export class InternalError extends CustodyError {
  readonly code = "INTERNAL";
  readonly grpcStatus = status.INTERNAL;
  constructor() {
    super("internal error; the custody operator has the details");
  }
}

const DOMAIN_STATUS: ReadonlyMap<string, status> = new Map([
  [new JweMalformedError("").code, status.INVALID_ARGUMENT],
  [new JweTooLargeError("").code, status.INVALID_ARGUMENT],
  [new JweHeaderUnsupportedError("").code, status.INVALID_ARGUMENT],
  [new JweDecryptError().code, status.INVALID_ARGUMENT],
  [new KnotJwkError("").code, status.INVALID_ARGUMENT],
  [new FingerprintError("").code, status.INVALID_ARGUMENT],
  // The key store (e.g. the HSM) cannot be reached right now; retry later.
  [new KeyStoreUnavailableError("").code, status.UNAVAILABLE],
]);

export interface GrpcFailure {
  readonly grpcStatus: status;
  readonly code: string;
  readonly message: string;
}

/** What the caller is told about `err`. Unknown errors become INTERNAL with a fixed message. */
export function toGrpcFailure(err: unknown): GrpcFailure {
  if (err instanceof CustodyError)
    return { grpcStatus: err.grpcStatus, code: err.code, message: err.message };
  if (err instanceof CryptoError || err instanceof KeyStoreError) {
    const grpcStatus = DOMAIN_STATUS.get(err.code);
    if (grpcStatus !== undefined) return { grpcStatus, code: err.code, message: err.message };
  }
  const internal = new InternalError();
  return { grpcStatus: internal.grpcStatus, code: internal.code, message: internal.message };
}
