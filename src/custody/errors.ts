/**
 * Every failure the custody service itself raises, each a class with a stable `code` (the gRPC
 * ErrorInfo reason, src/contract/reason-codes.ts), and the one table mapping every reason code to its gRPC
 * status. Messages describe what the caller must fix and never contain input values: they are returned
 * to callers and written to the audit log as they are.
 *
 * Errors of the crypto core, the card mapping and the key stores know no transport; they are mapped here
 * by their stable codes, so this module is the single table an auditor reads to see what a caller can
 * learn.
 */
import { status } from "@grpc/grpc-js";
import { isReasonCode, type ReasonCode } from "../contract/reason-codes.js";
import { CardError } from "../core/card/errors.js";
import { CryptoError } from "../core/crypto/errors.js";
import { KeyStoreError } from "./keystore/errors.js";

export abstract class CustodyError extends Error {
  abstract readonly code: ReasonCode;
  override readonly name = this.constructor.name;
}

/** A request field other than the JWE, JWK, fingerprint or user is missing or malformed. */
export class RequestInvalidError extends CustodyError {
  readonly code = "REQUEST_INVALID";
}

/** No key in the store has this fingerprint. */
export class KeyNotFoundError extends CustodyError {
  readonly code = "KEY_NOT_FOUND";
}

/** The key exists but an operator disabled it. */
export class KeyDisabledError extends CustodyError {
  readonly code = "KEY_DISABLED";
}

/** The recipient key is neither pinned nor certified by an x5c entry granted to this caller. */
export class RecipientNotAllowedError extends CustodyError {
  readonly code = "RECIPIENT_NOT_ALLOWED";
}

/** The caller's grant does not include the Dotva key it asked to decrypt with (or no such key exists). */
export class SourceKeyNotAllowedError extends CustodyError {
  readonly code = "SOURCE_KEY_NOT_ALLOWED";
}

/** The caller's certificate identity is not on this RPC's allowlist. */
export class CallerNotAllowedError extends CustodyError {
  readonly code = "CALLER_NOT_ALLOWED";
}

/** The client certificate does not carry exactly one usable identity (in production: one SPIFFE ID). */
export class CallerIdentityInvalidError extends CustodyError {
  readonly code = "CALLER_IDENTITY_INVALID";
}

/** The client certificate was valid at the handshake but has expired since; reconnect with a new one. */
export class CallerCertificateExpiredError extends CustodyError {
  readonly code = "CALLER_CERTIFICATE_EXPIRED";
}

/** Per-caller rate or concurrency limit reached; retry later with backoff. */
export class OverloadedError extends CustodyError {
  readonly code = "OVERLOADED";
}

/** The caller's deadline passed before the work finished. */
export class DeadlineExceededError extends CustodyError {
  readonly code = "DEADLINE_EXCEEDED";
}

/**
 * The call's audit line could not be written (disk full, I/O error): custody withholds the answer, so no
 * card is re-encrypted without a record of it. Another instance, or a retry later, can serve it.
 */
export class AuditUnavailableError extends CustodyError {
  readonly code = "AUDIT_UNAVAILABLE";
}

/** Anything unexpected. The detail goes to the operator log, never to the caller. */
export class InternalError extends CustodyError {
  readonly code = "INTERNAL";
  constructor() {
    super("internal error; the custody operator has the details");
  }
}

/**
 * The one table of what a caller is told: every reason code, whichever layer raises it, and its gRPC
 * status. A reason missing here fails the type check.
 */
const GRPC_STATUS: Readonly<Record<ReasonCode, status>> = {
  JWE_TOO_LARGE: status.INVALID_ARGUMENT,
  JWE_MALFORMED: status.INVALID_ARGUMENT,
  JWE_HEADER_UNSUPPORTED: status.INVALID_ARGUMENT,
  JWE_DECRYPT_FAILED: status.INVALID_ARGUMENT,
  KNOT_JWK_INVALID: status.INVALID_ARGUMENT,
  KEY_FINGERPRINT_INVALID: status.INVALID_ARGUMENT,
  SECRETS_MALFORMED: status.INVALID_ARGUMENT,
  PAN_INVALID: status.INVALID_ARGUMENT,
  CVV_INVALID: status.INVALID_ARGUMENT,
  EXPIRY_INVALID: status.INVALID_ARGUMENT,
  CARD_EXPIRED: status.INVALID_ARGUMENT,
  USER_PROFILE_INVALID: status.INVALID_ARGUMENT,
  REQUEST_INVALID: status.INVALID_ARGUMENT,
  // the key store (e.g. the HSM) cannot be reached right now; retry later
  KEYSTORE_UNAVAILABLE: status.UNAVAILABLE,
  KEY_NOT_FOUND: status.NOT_FOUND,
  KEY_DISABLED: status.FAILED_PRECONDITION,
  RECIPIENT_NOT_ALLOWED: status.PERMISSION_DENIED,
  SOURCE_KEY_NOT_ALLOWED: status.PERMISSION_DENIED,
  CALLER_NOT_ALLOWED: status.PERMISSION_DENIED,
  CALLER_IDENTITY_INVALID: status.PERMISSION_DENIED,
  CALLER_CERTIFICATE_EXPIRED: status.UNAUTHENTICATED,
  OVERLOADED: status.RESOURCE_EXHAUSTED,
  DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
  AUDIT_UNAVAILABLE: status.UNAVAILABLE,
  INTERNAL: status.INTERNAL,
};

export interface GrpcFailure {
  readonly grpcStatus: status;
  readonly code: ReasonCode;
  readonly message: string;
}

/** What the caller is told about `err`. Unknown errors become INTERNAL with a fixed message. */
/** What the caller is told about `err`. Unknown errors become INTERNAL with a fixed message. */
export function toGrpcFailure(err: unknown): GrpcFailure {
  const domain =
    err instanceof CustodyError ||
    err instanceof CryptoError ||
    err instanceof CardError ||
    err instanceof KeyStoreError;
  if (domain && isReasonCode(err.code)) {
    return { grpcStatus: GRPC_STATUS[err.code], code: err.code, message: err.message };
  }
  const internal = new InternalError();
  return { grpcStatus: GRPC_STATUS[internal.code], code: internal.code, message: internal.message };
}
