/**
 * Knot webhook bodies, as Knot documents them (docs.knotapi.com, CardSwitcher and Link webhook events).
 * Unknown members are ignored; the fields the gateway acts on are checked per event.
 */
import { z } from "zod";

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

/** CARD_FAILED `data.reason` values Knot documents; anything else is stored as "unrecognized". */
export const CARD_FAILED_REASONS = [
  "account",
  "card",
  "card expired",
  "card cvv",
  "card in use",
  "insufficient funds",
  "subscription",
  "subscription admin",
  "third-party payment method on subscription",
  "too close to end of billing cycle",
  "too many attempts",
  "credentials",
  "otp",
  "questions",
  "credentials timeout",
  "otp timeout",
  "questions timeout",
] as const;
export const cardFailedReasonSchema = z.enum(CARD_FAILED_REASONS).catch("unrecognized" as never);
export type CardFailedReason = (typeof CARD_FAILED_REASONS)[number] | "unrecognized";

const id = z.union([z.number().int().nonnegative(), z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/)]);
const text = z.string().max(512);

export const knotEventSchema = z.object({
  event: z.string().regex(/^[A-Z_]{1,64}$/, "must be a Knot event name"),
  session_id: text.optional(),
  task_id: id.optional(),
  external_user_id: text.optional(),
  merchant: z.object({ id, name: text.optional() }).optional(),
  data: z.record(z.string(), z.unknown()).optional(),
  timestamp: z.number().int().nonnegative().optional(),
});
export type KnotEvent = z.infer<typeof knotEventSchema>;

export const authenticatedSchema = z.object({
  task_id: id,
  external_user_id: text.min(1),
  data: z.object({ card_id: id, send_card: z.boolean() }),
});

export const merchantStatusSchema = z.object({
  merchant: z.object({ id, name: text.optional() }),
  data: z.object({
    type: z
      .string()
      .regex(/^[a-z_]{1,64}$/)
      .default("card_switcher"),
    status: z.enum(["UP", "DOWN"]),
    platform: z.enum(["ios", "android", "web"]),
    sdk: text.nullable().optional(),
  }),
});
