/**
 * POST /webhooks/dotva. Answers 200 only once the record is durably committed: a 200 tells Dotva to
 * stop retrying, so it must mean the card is safe. Duplicates and conflicts are answered 200 too (the
 * first delivery wins); retrying them would change nothing.
 */
import { createHash } from "node:crypto";
import type { FastifyInstance } from "fastify";
import type { GatewayConfig } from "../config.js";
import { StorageUnavailableError } from "../errors.js";
import { parseBody } from "../http/validate.js";
import type { GatewayMetrics } from "../metrics.js";
import type { GatewayRepository } from "../storage/repository.js";
import {
  CARD_ISSUED_SECRETS,
  cardIssuedSecretsSchema,
  contentDigest,
  envelopeSchema,
  toDotvaCard,
} from "./schema.js";
import { dotvaSenderCheck } from "./sender.js";

export interface DotvaRouteDeps {
  readonly config: GatewayConfig;
  readonly repo: GatewayRepository;
  readonly metrics: GatewayMetrics;
}

export function registerDotvaRoute(app: FastifyInstance, deps: DotvaRouteDeps): void {
  const checkSender = dotvaSenderCheck(deps.config.dotva);
  const count = (event: string, outcome: string) =>
    deps.metrics.webhooks.inc({ source: "dotva", event, outcome });

  app.post("/webhooks/dotva", async (req, reply) => {
    const receivedAt = Date.now();
    const raw = req.rawBody ?? Buffer.alloc(0);
    try {
      checkSender({ ip: req.ip, rawBody: raw, header: (name) => headerValue(req.headers[name]) });
    } catch (error) {
      count("unverified", "rejected_sender");
      throw error;
    }
    const envelope = parseBody(envelopeSchema, req.body);
    if (envelope.type !== CARD_ISSUED_SECRETS) {
      await commit(() =>
        deps.repo.recordUnknownEvent({
          source: "dotva",
          eventType: envelope.type,
          digest: createHash("sha256").update(raw).digest("hex"),
          body: raw.toString("utf8"),
          receivedAt,
        }),
      );
      count("unknown", "recorded_unknown");
      req.log.info({ dotvaEvent: envelope.type }, "unknown Dotva event acknowledged and recorded");
      return reply.code(200).send({ received: true, outcome: "ignored_unknown_event" });
    }
    let event: ReturnType<typeof cardIssuedSecretsSchema.parse>;
    try {
      event = parseBody(cardIssuedSecretsSchema, req.body);
    } catch (error) {
      count(CARD_ISSUED_SECRETS, "invalid");
      throw error;
    }
    const card = toDotvaCard(event, receivedAt);
    const outcome = await commit(() => deps.repo.storeDotvaCard(card, contentDigest(card)));
    count(CARD_ISSUED_SECRETS, outcome);
    if (outcome === "conflict") {
      deps.metrics.dotvaConflicts.inc();
      req.log.warn(
        { cardUuid: card.cardUuid, cardLast4: card.cardLast4 },
        "Dotva sent different content for a stored card_uuid; first delivery kept, conflict recorded",
      );
    }
    return reply.code(200).send({ received: true, outcome, card_uuid: card.cardUuid });
  });
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
