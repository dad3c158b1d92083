/**
 * POST /webhooks/dotva. Dotva retries every non-200 with exponential back-off, so the answer says one
 * thing only: "stop" (200) or "retry later" (503, when nothing was committed: storage unavailable or
 * this instance shutting down). 200 is sent only after the delivery is durably committed somewhere:
 *
 * - a card.issued.secrets that matches Dotva's document: stored (card_uuid deduplicates; a differing
 *   redelivery is acknowledged and recorded, the first secrets stay authoritative unless custody
 *   refused them);
 * - an event name we do not know yet: recorded for humans;
 * - anything that can never become valid (not JSON, no event, a documented field missing or
 *   malformed): quarantined for humans, because answering 4xx would only make Dotva retry it forever.
 *
 * Neither of the last two keeps the body: it may carry a `secrets_jwe` we will never use, and ids and
 * values nobody needs. What is kept is the reason, the event name, the card_uuid when readable, and the
 * body's member names.
 *
 * Sender checks (401/403) stay non-200 on purpose: they fail because of our configuration or a sender
 * that is not Dotva, and Dotva's retries are what delivers its cards once the configuration is fixed.
 */
import { createHash } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { GatewayConfig } from "../config.js";
import { StorageUnavailableError } from "../errors.js";
import { memberNames } from "../http/member-names.js";
import { INVALID_JSON } from "../http/raw-json.js";
import { errorResponses, webhookAckSchema } from "../http/responses.js";
import { describeIssue } from "../http/validate.js";
import type { GatewayMetrics } from "../metrics.js";
import type { GatewayRepository } from "../storage/repository.js";
import {
  CARD_ISSUED_SECRETS,
  cardIssuedSecretsSchema,
  contentDigest,
  envelopeSchema,
  normaliseCardUuid,
  toDotvaCard,
} from "./schema.js";
import { dotvaSenderCheck } from "./sender.js";

export interface DotvaRouteDeps {
  readonly config: GatewayConfig;
  readonly repo: GatewayRepository;
  readonly metrics: GatewayMetrics;
}

type QuarantineKind = "invalid_json" | "invalid_envelope" | "invalid_card";

export function registerDotvaRoute(app: FastifyInstance, deps: DotvaRouteDeps): void {
  const checkSender = dotvaSenderCheck(deps.config.dotva);
  const count = (event: string, outcome: string) =>
    deps.metrics.webhooks.inc({ source: "dotva", event, outcome });

  app.post(
    "/webhooks/dotva",
    {
      schema: {
        // Permissive on purpose: every body must reach the handler, which stores, records or quarantines
        // it and answers 200 (Dotva would retry a 4xx forever); the envelope is read in the handler.
        body: z.unknown(),
        response: { 200: webhookAckSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const receivedAt = Date.now();
      const raw = req.rawBody ?? Buffer.alloc(0);
      try {
        checkSender({ ip: req.ip, rawBody: raw, header: (name) => headerValue(req.headers[name]) });
      } catch (error) {
        count("unverified", "rejected_sender");
        throw error;
      }
      const digest = createHash("sha256").update(raw).digest("hex");

      const quarantine = async (kind: QuarantineKind, reason: string, event?: string) => {
        const data = (req.body as { data?: { card_uuid?: unknown } } | undefined)?.data;
        const cardUuid =
          typeof data?.card_uuid === "string" && /^[A-Za-z0-9_.:-]{1,128}$/.test(data.card_uuid)
            ? normaliseCardUuid(data.card_uuid)
            : undefined;
        const fresh = await commit(() =>
          deps.repo.quarantineDotva({
            digest,
            reason,
            ...(event !== undefined ? { event } : {}),
            ...(cardUuid !== undefined ? { cardUuid } : {}),
            members: memberNames(req.body),
            receivedAt,
          }),
        );
        count(event === CARD_ISSUED_SECRETS ? CARD_ISSUED_SECRETS : "unknown", "quarantined");
        if (fresh) deps.metrics.dotvaQuarantined.inc({ kind });
        req.log.warn(
          { reason, cardUuid, kind },
          "Dotva delivery can never become valid; acknowledged and quarantined",
        );
        return reply.code(200).send({ received: true, outcome: "quarantined", reason });
      };

      if (req.body === INVALID_JSON || typeof req.body !== "object" || req.body === null) {
        return quarantine("invalid_json", "body is not a JSON object");
      }
      const envelope = envelopeSchema.safeParse(req.body);
      if (!envelope.success) {
        return quarantine("invalid_envelope", describeIssue(envelope.error));
      }
      const eventName = envelope.data.event;
      if (eventName !== CARD_ISSUED_SECRETS) {
        await commit(() =>
          deps.repo.recordUnknownEvent({
            source: "dotva",
            eventType: eventName,
            digest,
            members: memberNames(req.body),
            receivedAt,
          }),
        );
        count("unknown", "recorded_unknown");
        req.log.info(
          { dotvaEvent: eventName.slice(0, 100) },
          "unknown Dotva event acknowledged and recorded",
        );
        return reply.code(200).send({ received: true, outcome: "recorded_unknown_event" });
      }
      const parsed = cardIssuedSecretsSchema.safeParse(req.body);
      if (!parsed.success) {
        return quarantine("invalid_card", describeIssue(parsed.error), eventName);
      }
      const card = toDotvaCard(parsed.data, receivedAt);
      const { outcome, differing } = await commit(() => deps.repo.storeDotvaCard(card, contentDigest(card)));
      count(CARD_ISSUED_SECRETS, outcome);
      if (outcome === "conflict" || outcome === "replaced") {
        deps.metrics.dotvaConflicts.inc({ outcome });
        req.log.warn(
          { cardUuid: card.cardUuid, cardLast4: card.cardLast4, differing, outcome },
          outcome === "conflict"
            ? "Dotva redelivered a card_uuid with different content; first delivery kept, difference recorded"
            : "Dotva redelivered a card_uuid whose stored secrets custody refused; the redelivery replaced them",
        );
      }
      return reply.code(200).send({ received: true, outcome, card_uuid: card.cardUuid });
    },
  );
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

async function commit<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    throw new StorageUnavailableError("the delivery was not stored; retry it", { cause: error });
  }
}
