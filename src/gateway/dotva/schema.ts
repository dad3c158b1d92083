/**
 * Dotva's card.issued.secrets webhook exactly as Dotva documents it ("Webhooks", card.issued.secrets,
 * Payload; copied in testdata/fixtures/partners/dotva-card-issued-secrets.json):
 *
 *   {"event": "card.issued.secrets", "workspace_id": 12,
 *    "data": {"card_id": 345, "card_uuid": "...", "card_last4": "4242", "card_bin": "411111",
 *             "secrets_jwe": "<JWE compact string>", "key_fingerprint": "sha256:..."}}
 *
 * Tolerant reader: members the document does not show are ignored at every level (partners add
 * fields), ids may be numbers of any size or strings. Every member the document shows is required:
 * without one of them the card cannot be delivered or attributed, which makes the delivery one that can
 * never become valid (quarantined by the route, not refused).
 */
import { createHash } from "node:crypto";
import { z } from "zod";
import { partnerId } from "../http/partner-ids.js";
import type { DotvaCard } from "../storage/repository.js";

export const CARD_ISSUED_SECRETS = "card.issued.secrets";

const b64url = "[A-Za-z0-9_-]+";
// 16 KiB bounds a 4096-bit RSA key plus a small document with room to spare; custody applies its own cap.
const compactJwe = z
  .string()
  .max(16_384, "is longer than 16384 characters")
  .regex(new RegExp(`^${b64url}\\.${b64url}\\.${b64url}\\.${b64url}\\.${b64url}$`), "must be a compact JWE");

/** Only the event name: what decides between understanding, recording and quarantining a delivery. */
export const envelopeSchema = z.object({
  event: z.string().min(1).max(200),
});

export const cardIssuedSecretsSchema = z.object({
  event: z.literal(CARD_ISSUED_SECRETS),
  workspace_id: partnerId,
  data: z.object({
    card_id: partnerId,
    // Named a UUID by Dotva but not specified further: any identifier is accepted, UUIDs are lowercased
    // so the same card in two spellings is one card.
    card_uuid: z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, "must be 1-128 letters, digits or _.:-"),
    card_last4: z.string().regex(/^\d{4}$/, "must be 4 digits"),
    card_bin: z.string().regex(/^\d{6,8}$/, "must be 6-8 digits"),
    secrets_jwe: compactJwe,
    key_fingerprint: z
      .string()
      .regex(/^[A-Za-z0-9:+/=_-]{20,200}$/, "must be a key fingerprint such as sha256:<hex>"),
  }),
});

export type CardIssuedSecrets = z.infer<typeof cardIssuedSecretsSchema>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function normaliseCardUuid(value: string): string {
  return UUID.test(value) ? value.toLowerCase() : value;
}

export function toDotvaCard(e: CardIssuedSecrets, receivedAt: number): DotvaCard {
  const d = e.data;
  return {
    cardUuid: normaliseCardUuid(d.card_uuid),
    cardId: d.card_id,
    workspaceId: e.workspace_id,
    cardLast4: d.card_last4,
    cardBin: d.card_bin,
    keyFingerprint: d.key_fingerprint,
    secretsJwe: d.secrets_jwe,
    receivedAt,
  };
}

/**
 * Identity of a delivery's content, independent of JSON key order, whitespace or members we ignore,
 * so a retried delivery is a duplicate and anything else under the same card_uuid is a redelivery
 * that differs.
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
