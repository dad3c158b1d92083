/**
 * What POST /webhooks/dotva accepts (documented in docs/gateway.md). Every event has a `type`; only
 * card.issued.secrets is understood, the rest are acknowledged and recorded for humans.
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import type { DotvaCard } from "../storage/repository.js";

export const CARD_ISSUED_SECRETS = "card.issued.secrets";

const identifier = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, "must be 1-128 letters, digits or _.:-");
const b64url = "[A-Za-z0-9_-]+";
// 16 KiB bounds a 4096-bit RSA key plus a small document with room to spare; custody applies its own cap.
const compactJwe = z
  .string()
  .max(16_384, "is longer than 16384 characters")
  .regex(new RegExp(`^${b64url}\\.${b64url}\\.${b64url}\\.${b64url}\\.${b64url}$`), "must be a compact JWE");

export const envelopeSchema = z.object({
  type: z.string().regex(/^[A-Za-z0-9_.:-]{1,100}$/, "must be an event name such as card.issued.secrets"),
});

export const cardIssuedSecretsSchema = z.object({
  type: z.literal(CARD_ISSUED_SECRETS),
  id: identifier.optional(),
  created_at: z.iso.datetime({ offset: true, message: "must be an ISO 8601 date-time" }),
  data: z.object({
    card_uuid: z.uuid("must be a UUID"),
    card_id: identifier,
    workspace_id: identifier,
    card_last4: z.string().regex(/^\d{4}$/, "must be 4 digits"),
    card_bin: z.string().regex(/^\d{6,8}$/, "must be 6-8 digits"),
    key_fingerprint: z
      .string()
      .max(200)
      .regex(/^[A-Za-z0-9:+/=_-]{20,200}$/, "must be a key fingerprint such as sha256:<hex>"),
    secrets_jwe: compactJwe,
  }),
});

export type CardIssuedSecrets = z.infer<typeof cardIssuedSecretsSchema>;

export function toDotvaCard(e: CardIssuedSecrets, receivedAt: number): DotvaCard {
  const d = e.data;
  return {
    cardUuid: d.card_uuid.toLowerCase(),
    cardId: d.card_id,
    workspaceId: d.workspace_id,
    cardLast4: d.card_last4,
    cardBin: d.card_bin,
    keyFingerprint: d.key_fingerprint,
    secretsJwe: d.secrets_jwe,
    eventCreatedAt: e.created_at,
    receivedAt,
  };
}

/**
 * Identity of a delivery's content, independent of JSON key order or whitespace, so a retried delivery
 * is a duplicate and a different card under the same card_uuid is a conflict.
 */
export function contentDigest(card: DotvaCard): string {
  const fields = [
    card.cardUuid,
    card.cardId,
    card.workspaceId,
    card.cardLast4,
    card.cardBin,
    card.keyFingerprint,
    card.secretsJwe,
  ];
  return createHash("sha256").update(JSON.stringify(fields)).digest("hex");
}
