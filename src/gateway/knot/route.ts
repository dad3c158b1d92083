/**
 * POST /webhooks/knot. Knot retries anything not answered 200 within 10 s, so the handler only
 * verifies, records (one short transaction, deduplicated by body digest) and answers; the card is sent
 * by the send-card worker, woken right after the commit.
 */
import { createHash } from "node:crypto";
import type { FastifyInstance } from "fastify";
import type { GatewayConfig } from "../config.js";
import { KnotSignatureError, SourceNotAllowedError, StorageUnavailableError } from "../errors.js";
import { sourceAllowlist } from "../http/source-allowlist.js";
import { parseBody } from "../http/validate.js";
import type { GatewayMetrics } from "../metrics.js";
import type { GatewayRepository, KnotEventRecord, SendCardJob } from "../storage/repository.js";
import {
  authenticatedSchema,
  cardFailedReasonSchema,
  isKnownKnotEvent,
  type KnotEvent,
  knotEventSchema,
  merchantStatusSchema,
} from "./schema.js";
import { verifyKnotSignature } from "./signature.js";

export interface KnotRouteDeps {
  readonly config: GatewayConfig;
  readonly repo: GatewayRepository;
  readonly metrics: GatewayMetrics;
  /** Who the new send-card job is leased to when this instance records it. */
  readonly jobClaim: () => { readonly owner: string; readonly leaseUntil: number };
  /** Called with the job, already leased to this instance, once the AUTHENTICATED is committed. */
  readonly onSendCardJob: (job: SendCardJob) => void;
}

const header = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

export function registerKnotRoute(app: FastifyInstance, deps: KnotRouteDeps): void {
  const { knot } = deps.config;
  const allowed = knot.ipAllowlist ? sourceAllowlist(knot.ipAllowlist) : undefined;
  const count = (event: string, outcome: string) =>
    deps.metrics.webhooks.inc({
      source: "knot",
      event: isKnownKnotEvent(event) ? event : "unknown",
      outcome,
    });

  app.post("/webhooks/knot", async (req, reply) => {
    const receivedAt = Date.now();
    const raw = req.rawBody ?? Buffer.alloc(0);
    if (allowed && !allowed(req.ip)) {
      count("unverified", "rejected_source");
      throw new SourceNotAllowedError("this source address may not deliver Knot webhooks");
    }
    const body = (typeof req.body === "object" && req.body !== null ? req.body : {}) as Record<
      string,
      unknown
    >;
    if (knot.verifyWebhooks) {
      const event = typeof body.event === "string" ? body.event : "";
      const sessionId = typeof body.session_id === "string" ? body.session_id : undefined;
      const ok = verifyKnotSignature(
        knot.clientSecret,
        {
          contentLength: header(req.headers["content-length"]) ?? String(raw.length),
          contentType: header(req.headers["content-type"]) ?? "",
          encryptionType: header(req.headers["encryption-type"]) ?? "",
          event,
          ...(sessionId !== undefined ? { sessionId } : {}),
        },
        header(req.headers["knot-signature"]),
      );
      if (!ok) {
        count("unverified", "bad_signature");
        req.log.warn("Knot webhook with a missing or wrong Knot-Signature rejected");
        throw new KnotSignatureError("Knot-Signature is missing or does not match this request");
      }
    }
    let event: KnotEvent;
    try {
      event = parseBody(knotEventSchema, req.body);
    } catch (error) {
      count("unverified", "invalid");
      throw error;
    }
    const digest = createHash("sha256").update(raw).digest("hex");
    if (!isKnownKnotEvent(event.event)) {
      await commit(() =>
        deps.repo.recordUnknownEvent({
          source: "knot",
          eventType: event.event,
          digest,
          body: raw.toString("utf8"),
          receivedAt,
        }),
      );
      count(event.event, "recorded_unknown");
      return reply.code(200).send({ received: true, outcome: "ignored_unknown_event" });
    }
    let record: KnotEventRecord;
    try {
      record = toRecord(event, digest, raw, receivedAt, deps.config.sendCard.deadlineMs, deps.jobClaim);
    } catch (error) {
      count(event.event, "invalid");
      throw error;
    }
    const outcome = await commit(() => deps.repo.recordKnotEvent(record));
    count(event.event, outcome);
    if (outcome === "recorded_with_job" && record.sendCard?.send === true) {
      deps.onSendCardJob({
        taskId: record.taskId!,
        knotCardId: record.cardId!,
        externalUserId: record.externalUserId!,
        receivedAt,
        deadlineAt: record.sendCard.deadlineAt,
        state: "running",
        attempts: 1,
      });
    }
    return reply.code(200).send({ received: true, outcome });
  });
}

function toRecord(
  e: KnotEvent,
  digest: string,
  raw: Buffer,
  receivedAt: number,
  deadlineMs: number,
  claim: KnotRouteDeps["jobClaim"],
): KnotEventRecord {
  const data = e.data ?? {};
  const base = {
    digest,
    event: e.event,
    timestamp: e.timestamp ?? receivedAt,
    receivedAt,
    body: raw.toString("utf8"),
    ...(e.session_id !== undefined ? { sessionId: e.session_id } : {}),
    ...(e.task_id !== undefined ? { taskId: String(e.task_id) } : {}),
    ...(e.external_user_id !== undefined ? { externalUserId: e.external_user_id } : {}),
    ...(e.merchant ? { merchantId: String(e.merchant.id) } : {}),
    ...(e.merchant?.name !== undefined ? { merchantName: e.merchant.name } : {}),
    ...(typeof data.card_id === "string" || typeof data.card_id === "number"
      ? { cardId: String(data.card_id) }
      : {}),
  };
  switch (e.event) {
    case "AUTHENTICATED": {
      const a = parseBody(authenticatedSchema, e);
      return {
        ...base,
        cardId: String(a.data.card_id),
        sendCard: a.data.send_card
          ? { send: true, deadlineAt: receivedAt + deadlineMs, claimBy: claim() }
          : { send: false },
      };
    }
    case "CARD_FAILED":
      return { ...base, failureReason: cardFailedReasonSchema.parse(data.reason) };
    case "MERCHANT_STATUS_UPDATE": {
      const m = parseBody(merchantStatusSchema, e);
      return {
        ...base,
        availability: {
          type: m.data.type,
          platform: m.data.platform,
          status: m.data.status,
          ...(m.data.sdk ? { sdk: m.data.sdk } : {}),
        },
      };
    }
    default:
      return base;
  }
}

async function commit<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    throw new StorageUnavailableError("the webhook was not stored; retry it", { cause: error });
  }
}
