/**
 * Every reason custody returns with a failed call (google.rpc.ErrorInfo.reason and the `custody-reason`
 * trailer). Shared by custody, which raises them, and the gateway, which decides from them whether a
 * send-card job may retry, so a renamed reason breaks the build of both sides instead of one.
 */
export const REASON_CODES = [
  // the Dotva JWE and the Knot key (src/core/crypto/errors.ts)
  "JWE_TOO_LARGE",
  "JWE_MALFORMED",
  "JWE_HEADER_UNSUPPORTED",
  "JWE_DECRYPT_FAILED",
  "KNOT_JWK_INVALID",
  "KEY_FINGERPRINT_INVALID",
  // the decrypted card and the cardholder profile (src/core/card/errors.ts)
  "SECRETS_MALFORMED",
  "PAN_INVALID",
  "CVV_INVALID",
  "EXPIRY_INVALID",
  "CARD_EXPIRED",
  "USER_PROFILE_INVALID",
  // the key stores (src/custody/keystore/errors.ts)
  "KEYSTORE_UNAVAILABLE",
  // the service (src/custody/errors.ts)
  "REQUEST_INVALID",
  "KEY_NOT_FOUND",
  "KEY_DISABLED",
  "RECIPIENT_NOT_ALLOWED",
  "SOURCE_KEY_NOT_ALLOWED",
  "CALLER_NOT_ALLOWED",
  "CALLER_IDENTITY_INVALID",
  "CALLER_CERTIFICATE_EXPIRED",
  "OVERLOADED",
  "DEADLINE_EXCEEDED",
  "AUDIT_UNAVAILABLE",
  "INTERNAL",
] as const;

export type ReasonCode = (typeof REASON_CODES)[number];

const KNOWN: ReadonlySet<string> = new Set(REASON_CODES);

export function isReasonCode(value: string): value is ReasonCode {
  return KNOWN.has(value);
}
