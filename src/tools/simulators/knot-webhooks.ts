/**
 * Knot's webhooks as Knot's documents show them (Knot card webhooks, "Merchant Authentication", merchant
 * and transaction webhooks): one builder per body family, member order and JSON types as in the
 * documents' examples, and Knot's documented signature, implemented here from its description, not
 * borrowed from the gateway that verifies it.
 */
import { createHmac, randomUUID } from "node:crypto";

/** What Knot sends in `Encryption-Type`; the value is part of the signed string. */
export const KNOT_ENCRYPTION_TYPE = "HMAC-SHA256";

export interface KnotSignedHeaders {
  readonly contentLength: number;
  readonly contentType: string;
  readonly encryptionType: string;
  readonly event: string;
  /** Absent for events without a session (MERCHANT_STATUS_UPDATE, the transaction events). */
  readonly sessionId?: string;
}

/** `Content-Length|<n>|Content-Type|<type>|Encryption-Type|<value>|event|<event>[|session_id|<id>]`. */
export function knotSignedString(h: KnotSignedHeaders): string {
  const base =
    `Content-Length|${h.contentLength}|Content-Type|${h.contentType}` +
    `|Encryption-Type|${h.encryptionType}|event|${h.event}`;
  return h.sessionId === undefined ? base : `${base}|session_id|${h.sessionId}`;
}

/** `Knot-Signature`: base64(HMAC-SHA256(client secret, signed string)). */
export function knotWebhookSignature(clientSecret: string, h: KnotSignedHeaders): string {
  return createHmac("sha256", clientSecret).update(knotSignedString(h), "utf8").digest("base64");
}

/** Documented task events whose `data` holds only `card_id`. */
export const KNOT_CARD_ID_EVENTS = [
  "CARD_UPDATING",
  "CARD_UPDATED",
  "CREDENTIALS_FAILED",
  "OTP_REQUIRED",
  "OTP_FAILED",
  "QUESTIONS_REQUIRED",
  "QUESTIONS_FAILED",
  "LOGIN_APPROVAL",
] as const;
export type KnotCardIdEvent = (typeof KNOT_CARD_ID_EVENTS)[number];

export interface KnotMerchant {
  readonly id: number;
  readonly name: string;
}

/** Ids every task event carries. `taskId` as a bigint is written as an exact JSON number. */
export interface KnotTaskIds {
  readonly taskId: number | bigint;
  readonly externalUserId: string;
  readonly sessionId?: string;
  readonly merchant?: KnotMerchant;
  /** Milliseconds since the epoch, as in the documents' `timestamp`; now when absent. */
  readonly timestamp?: number;
}

export type KnotWebhookBody = Record<string, unknown>;

function taskHead(event: string, o: KnotTaskIds): KnotWebhookBody {
  return {
    event,
    session_id: o.sessionId ?? randomUUID(),
    task_id: o.taskId,
    external_user_id: o.externalUserId,
    merchant: o.merchant ?? { id: 10, name: "Uber" },
  };
}

const cardIdText = (cardId: string | number | bigint) => String(cardId);

/**
 * AUTHENTICATED. `card_id` is a string in Knot's example; `sendCard: "omit"` leaves `send_card` out
 * (Knot calls it optional and true by default).
 */
export function authenticatedEvent(
  o: KnotTaskIds & {
    readonly cardId: string | number | bigint;
    readonly sendCard?: boolean | "omit";
    readonly entrypoint?: string;
  },
): KnotWebhookBody {
  const sendCard = o.sendCard ?? true;
  return {
    ...taskHead("AUTHENTICATED", o),
    data: {
      card_id: cardIdText(o.cardId),
      ...(sendCard === "omit" ? {} : { send_card: sendCard }),
      entrypoint: o.entrypoint ?? "onboarding",
    },
    timestamp: o.timestamp ?? Date.now(),
  };
}

/** CARD_UPDATING, CARD_UPDATED and the merchant-authentication events: `data` is `{card_id}`. */
export function cardIdEvent(
  event: KnotCardIdEvent,
  o: KnotTaskIds & { readonly cardId: string | number | bigint },
): KnotWebhookBody {
  return {
    ...taskHead(event, o),
    data: { card_id: cardIdText(o.cardId) },
    timestamp: o.timestamp ?? Date.now(),
  };
}

/** CARD_FAILED; `reason` is one of the 20 documented reasons, or anything a test wants to try. */
export function cardFailedEvent(
  o: KnotTaskIds & { readonly cardId: string | number | bigint; readonly reason: string },
): KnotWebhookBody {
  return {
    ...taskHead("CARD_FAILED", o),
    data: { card_id: cardIdText(o.cardId), reason: o.reason },
    timestamp: o.timestamp ?? Date.now(),
  };
}

/** ACCOUNTS_RETRIEVED (MassSwitcher): a task event without `data`. */
export function accountsRetrievedEvent(o: KnotTaskIds): KnotWebhookBody {
  return {
    ...taskHead("ACCOUNTS_RETRIEVED", { merchant: { id: 11, name: "Google Keychain" }, ...o }),
    timestamp: o.timestamp ?? Date.now(),
  };
}

/** MERCHANT_STATUS_UPDATE: no session, no task; one event per type, platform and SDK version. */
export function merchantStatusUpdateEvent(o: {
  readonly merchant?: KnotMerchant & { readonly logo?: string };
  readonly type: string;
  readonly status: string;
  readonly platform: string;
  readonly sdk: string | null;
  readonly timestamp?: number;
}): KnotWebhookBody {
  return {
    event: "MERCHANT_STATUS_UPDATE",
    merchant: o.merchant ?? {
      id: 10,
      name: "Uber",
      logo: "https://storage.googleapis.com/knot-api/merchants/uber.png",
    },
    data: { type: o.type, status: o.status, platform: o.platform, sdk: o.sdk },
    timestamp: o.timestamp ?? Date.now(),
  };
}

/** NEW_TRANSACTIONS_AVAILABLE: no session, no task. */
export function newTransactionsAvailableEvent(o: {
  readonly externalUserId: string;
  readonly merchant?: KnotMerchant;
  readonly timestamp?: number;
}): KnotWebhookBody {
  return {
    event: "NEW_TRANSACTIONS_AVAILABLE",
    external_user_id: o.externalUserId,
    merchant: o.merchant ?? { id: 36, name: "Uber Eats" },
    timestamp: o.timestamp ?? Date.now(),
  };
}

/** UPDATED_TRANSACTIONS_AVAILABLE: the ids of transactions with updated data, as `[{id}]`. */
export function updatedTransactionsAvailableEvent(o: {
  readonly externalUserId: string;
  readonly updated: readonly string[];
  readonly merchant?: KnotMerchant;
  readonly timestamp?: number;
}): KnotWebhookBody {
  return {
    event: "UPDATED_TRANSACTIONS_AVAILABLE",
    external_user_id: o.externalUserId,
    merchant: o.merchant ?? { id: 36, name: "Uber Eats" },
    updated: o.updated.map((id) => ({ id })),
    timestamp: o.timestamp ?? Date.now(),
  };
}
