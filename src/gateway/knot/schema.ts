/**
 * Knot webhook bodies as Knot documents them (the card webhooks, the merchant-authentication webhooks,
 * MERCHANT_STATUS_UPDATE and the transaction webhooks; every example body is a fixture in
 * testdata/fixtures/partners/). Tolerant reader: members Knot does not document are ignored, an event name
 * or enum value Knot adds later is acknowledged and kept verbatim, and only the fields an event is
 * acted on by are checked, per event.
 */
import { z } from "zod";
import { decimalTaskId, partnerId } from "../http/partner-ids.js";

export const KNOT_EVENTS = [
  "AUTHENTICATED",
  "CARD_UPDATING",
  "CARD_UPDATED",
  "CARD_FAILED",
  "CREDENTIALS_FAILED",
  "OTP_REQUIRED",
  "OTP_FAILED",
  "QUESTIONS_REQUIRED",
  "QUESTIONS_FAILED",
  "LOGIN_APPROVAL",
  "ACCOUNTS_RETRIEVED",
  "MERCHANT_STATUS_UPDATE",
  "NEW_TRANSACTIONS_AVAILABLE",
  "UPDATED_TRANSACTIONS_AVAILABLE",
] as const;
export type KnotEventName = (typeof KNOT_EVENTS)[number];

export function isKnownKnotEvent(name: string): name is KnotEventName {
  return (KNOT_EVENTS as readonly string[]).includes(name);
}

/** CARD_FAILED `data.reason`: Knot's "Failure Reasons" table, reason and description word for word. */
export const CARD_FAILED_REASONS = {
  account: "The user’s merchant account has an issue (e.g. a foreign account).",
  card: "The user’s card information has an issue (e.g. incorrect phone #, incorrect billing address, unsupported card type, etc.).",
  "card expired": "The user’s card is expired.",
  "insufficient funds":
    "The user’s depository account associated with their card does not have sufficient funds to cover the pre-authorization hold from the merchant.",
  subscription: "The user’s merchant account does not have an active subscription.",
  "subscription admin":
    "The user is not have the necessary authorization to update the payment method in the merchant account.",
  "third-party payment method on subscription":
    "The user pays for the merchant’s service through a 3rd party merchant account (e.g. Spotify through Hulu).",
  "too close to end of billing cycle": "The user’s billing cycle date is too close.",
  "too many attempts":
    "The user attempted to enter their login credentials (e.g. username, password, OTP) to the merchant account too many times.",
  credentials: "The user entered incorrect credentials when logging in to the merchant.",
  otp: "The user entered an incorrect OTP code when logging in to the merchant.",
  "credentials timeout":
    "The user did not enter their login credentials to the merchant account in a certain period of time.",
  "otp timeout": "The user did not enter their otp code to the merchant account in a certain period of time.",
  "questions timeout":
    "The user did not enter the answers to the security questions for the merchant account in a certain period of time.",
  "zip timeout":
    "The user did not enter their zip code associated with their merchant account in a certain period of time.",
  "session not authenticated": "Knot could not authenticate to the user’s merchant account.",
  "did not receive payment method information": "Knot did not receive any card information.",
  "could not handle payment method information":
    "Knot encountered an error handling the user’s card information once received.",
  "could not retrieve payment method information":
    "Knot was unsuccessful in retrieving payment method information from from a direct processor integration.",
  other: "An unknown issue was encountered.",
} as const;
export type CardFailedReason = keyof typeof CARD_FAILED_REASONS;

export function isDocumentedFailureReason(reason: string): reason is CardFailedReason {
  return Object.hasOwn(CARD_FAILED_REASONS, reason);
}

const text = z.string().max(512);
const merchant = z.object({ id: partnerId, name: text.optional() });

/**
 * What every Knot webhook is read as; each member is optional because not every event has it. Loose:
 * members of one event (e.g. UPDATED_TRANSACTIONS_AVAILABLE's `updated`) reach that event's schema.
 */
export const knotEventSchema = z.looseObject({
  event: z.string().min(1).max(200),
  session_id: text.optional(),
  task_id: decimalTaskId.optional(),
  external_user_id: text.optional(),
  merchant: merchant.optional(),
  data: z.record(z.string(), z.unknown()).optional(),
  timestamp: z.number().int().nonnegative().optional(),
});
export type KnotEvent = z.infer<typeof knotEventSchema>;

/** AUTHENTICATED as the send-card job needs it; `send_card` absent means send (Knot's default). */
export const authenticatedSchema = z.object({
  task_id: decimalTaskId,
  external_user_id: text.min(1),
  data: z.object({ card_id: partnerId, send_card: z.boolean().optional() }),
});

export const cardFailedSchema = z.object({ data: z.object({ reason: text }) });

/** Enum values (type, status, platform) are kept verbatim: Knot lists them but may add more. */
export const merchantStatusSchema = z.object({
  merchant,
  data: z.object({
    type: text.min(1),
    status: text.min(1),
    platform: text.min(1),
    sdk: text.nullable().optional(),
  }),
});

export const updatedTransactionsSchema = z.object({
  updated: z.array(z.object({ id: partnerId })).max(10_000),
});
