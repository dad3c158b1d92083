/**
 * Failure kinds of the card payload mapping: the decrypted Dotva document and the cardholder profile.
 * Like the crypto core's errors they know no transport: each has a stable `code`, and custody's gRPC
 * edge maps codes to statuses (src/custody/errors.ts). Messages name the field, never its value.
 */
export abstract class CardError extends Error {
  abstract readonly code: string;
  override readonly name = this.constructor.name;
}

/** The decrypted Dotva document is not the JSON object we expect, or names one field twice. */
export class SecretsMalformedError extends CardError {
  readonly code = "SECRETS_MALFORMED";
}

/** PAN missing, not 12-19 digits, or fails the Luhn check. */
export class PanInvalidError extends CardError {
  readonly code = "PAN_INVALID";
}

/** CVV missing or not 3-4 digits. */
export class CvvInvalidError extends CardError {
  readonly code = "CVV_INVALID";
}

/** Expiry month not 1-12, or year not a 2- or 4-digit year. */
export class ExpiryInvalidError extends CardError {
  readonly code = "EXPIRY_INVALID";
}

/** The card expired before the end of its expiry month. */
export class CardExpiredError extends CardError {
  readonly code = "CARD_EXPIRED";
}

/** The cardholder profile misses a required field or has one in the wrong format. */
export class UserProfileError extends CardError {
  readonly code = "USER_PROFILE_INVALID";
}
