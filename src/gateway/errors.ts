/**
 * Every failure the gateway reports over HTTP, one class per kind, each with a stable `code` for the
 * response body, and the one table mapping codes to HTTP statuses (HTTP_STATUS). Messages say what the
 * caller must change and never repeat input, because webhook bodies carry ciphertext and credentials
 * travel in headers.
 *
 * Send-card job failures are recorded in storage with the same kind of stable codes (SendCardError).
 */
export type GatewayErrorCode =
  | "INVALID_BODY"
  | "INVALID_PARAMETER"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "BODY_TOO_LARGE"
  | "SENDER_UNAUTHENTICATED"
  | "KNOT_SIGNATURE_INVALID"
  | "KNOT_TIMESTAMP_OUT_OF_WINDOW"
  | "KNOT_WEBHOOK_REPLAYED"
  | "CARD_OWNED_BY_ANOTHER_USER"
  | "CARD_ID_AMBIGUOUS"
  | "SOURCE_NOT_ALLOWED"
  | "UNAUTHENTICATED"
  | "NOT_FOUND"
  | "ROUTE_NOT_FOUND"
  | "STORAGE_UNAVAILABLE"
  | "SHUTTING_DOWN"
  | "OVERLOADED"
  | "INTERNAL_ERROR";

export abstract class GatewayError extends Error {
  abstract readonly code: GatewayErrorCode;
  override readonly name = this.constructor.name;
}

/** The body is not JSON, or not the JSON the route accepts. */
export class InvalidBodyError extends GatewayError {
  readonly code = "INVALID_BODY";
}

/** A path or query parameter is malformed. */
export class InvalidParameterError extends GatewayError {
  readonly code = "INVALID_PARAMETER";
}

/** Content-Type is not application/json. */
export class UnsupportedMediaTypeError extends GatewayError {
  readonly code = "UNSUPPORTED_MEDIA_TYPE";
}

/** Body larger than the route allows. */
export class BodyTooLargeError extends GatewayError {
  readonly code = "BODY_TOO_LARGE";
}

/** Dotva sender verification (shared secret or HMAC) failed or was missing. */
export class SenderUnauthenticatedError extends GatewayError {
  readonly code = "SENDER_UNAUTHENTICATED";
}

/** Knot-Signature missing or not matching. */
export class KnotSignatureError extends GatewayError {
  readonly code = "KNOT_SIGNATURE_INVALID";
}

/**
 * A signed Knot webhook whose `timestamp` is missing or outside KNOT_WEBHOOK_TOLERANCE_SECONDS of our
 * clock: an old signature replayed, or a clock far off.
 */
export class KnotTimestampError extends GatewayError {
  readonly code = "KNOT_TIMESTAMP_OUT_OF_WINDOW";
}

/**
 * Another body was already accepted for this Knot (event, session_id), the only pair Knot's signature
 * covers: this one reuses a signature on an edited body.
 */
export class KnotReplayError extends GatewayError {
  readonly code = "KNOT_WEBHOOK_REPLAYED";
}

/** The (workspace_id, card_id) is already bound to another external_user_id. */
export class CardOwnedByAnotherUserError extends GatewayError {
  readonly code = "CARD_OWNED_BY_ANOTHER_USER";
}

/** The user already owns a card with this card_id in another workspace: Knot's card_id would be ambiguous. */
export class CardIdAmbiguousError extends GatewayError {
  readonly code = "CARD_ID_AMBIGUOUS";
}

/** The source address is not in the configured allowlist for this route. */
export class SourceNotAllowedError extends GatewayError {
  readonly code = "SOURCE_NOT_ALLOWED";
}

/** Internal API call without a valid bearer token. */
export class InternalUnauthenticatedError extends GatewayError {
  readonly code = "UNAUTHENTICATED";
}

/** The requested task or card does not exist. */
export class NotFoundError extends GatewayError {
  readonly code = "NOT_FOUND";
}

/** No such route. */
export class RouteNotFoundError extends GatewayError {
  readonly code = "ROUTE_NOT_FOUND";
}

/** Storage did not commit; the partner should retry (its normal behaviour on a non-200). */
export class StorageUnavailableError extends GatewayError {
  readonly code = "STORAGE_UNAVAILABLE";
}

/** This instance is stopping; the partner should retry the delivery. */
export class ShuttingDownError extends GatewayError {
  readonly code = "SHUTTING_DOWN";
}

/**
 * This instance is shedding load (its event loop is lagging, or too many webhooks are in flight): the
 * webhook was refused before its handler ran, so nothing was stored; the partner should retry, after
 * the Retry-After the answer carries.
 */
export class OverloadedError extends GatewayError {
  readonly code = "OVERLOADED";
}

/** Anything unexpected; details go to the log, never to the caller. */
export class InternalError extends GatewayError {
  readonly code = "INTERNAL_ERROR";
}

/** The HTTP edge's one table: what status each code is answered with. */
export const HTTP_STATUS: Readonly<Record<GatewayErrorCode, number>> = {
  INVALID_BODY: 400,
  INVALID_PARAMETER: 400,
  UNSUPPORTED_MEDIA_TYPE: 415,
  BODY_TOO_LARGE: 413,
  SENDER_UNAUTHENTICATED: 401,
  KNOT_SIGNATURE_INVALID: 401,
  KNOT_TIMESTAMP_OUT_OF_WINDOW: 401,
  KNOT_WEBHOOK_REPLAYED: 409,
  CARD_OWNED_BY_ANOTHER_USER: 409,
  CARD_ID_AMBIGUOUS: 409,
  SOURCE_NOT_ALLOWED: 403,
  UNAUTHENTICATED: 401,
  NOT_FOUND: 404,
  ROUTE_NOT_FOUND: 404,
  STORAGE_UNAVAILABLE: 503,
  SHUTTING_DOWN: 503,
  OVERLOADED: 503,
  INTERNAL_ERROR: 500,
};

/**
 * Why a send-card job stopped without Knot's 200. `code` is what GET /v1/tasks shows and what the
 * operator guide documents; `retryable` decides whether the job tries again inside its deadline.
 */
export class SendCardError extends Error {
  override readonly name = "SendCardError";
  constructor(
    readonly code: string,
    message: string,
    readonly retryable: boolean,
    readonly knotStatus?: number,
    /** Knot's Retry-After, when it sent one with a 429 or 503. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

export function errorBody(error: GatewayError): ErrorBody {
  return { error: { code: error.code, message: error.message } };
}
