/**
 * POST /webhooks/knot. Knot retries anything not answered 200 within 10 s, so the handler only
 * verifies, records (one short transaction, deduplicated by body digest) and answers; the card is sent
 * by the send-card worker, woken right after the commit.
 *
 * Knot's signature covers the body's length, event and session_id only, so a captured signature also
 * verifies on an edited body of the same length (another task_id, another card_id). Defences here, in
 * order: the source allow-list (required in production), the signature, a timestamp window, and one
 * accepted body per (event, session_id), enforced in the same transaction that records the event. The
 * send-card job then sends only a card bound to the task's external_user_id (send-job.ts).
 */
import { createHash } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { GatewayConfig } from "../config.js";
import {
  InvalidBodyError,
  KnotReplayError,
  KnotSignatureError,
  KnotTimestampError,
  SourceNotAllowedError,
  StorageUnavailableError,
} from "../errors.js";
import { memberNames } from "../http/member-names.js";
import { partnerId } from "../http/partner-ids.js";
import { INVALID_JSON } from "../http/raw-json.js";
import { errorResponses, webhookAckSchema } from "../http/responses.js";
import { sourceAllowlist } from "../http/source-allowlist.js";
import { describeIssue } from "../http/validate.js";
import type { GatewayMetrics } from "../metrics.js";
import type { GatewayRepository, KnotEventRecord, SendCardJob } from "../storage/repository.js";
import {
  authenticatedSchema,
  cardFailedSchema,
  isKnownKnotEvent,
  type KnotEvent,
  knotEventSchema,
  merchantStatusSchema,
  updatedTransactionsSchema,
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
  readonly now?: () => number;
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

  const now = deps.now ?? Date.now;
  app.post(
    "/webhooks/knot",
    {
      schema: {
        // Permissive on purpose: the signature is checked over the bytes as sent, and unknown events,
        // members and enum values are acknowledged and recorded (Knot retries anything but 200); each
        // event's fields are read by knot/schema.ts after that.
        body: z.unknown(),
        response: { 200: webhookAckSchema, ...errorResponses },
      },
    },
    async (req, reply) => {
      const receivedAt = now();
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
      if (req.body === INVALID_JSON) {
        count("unverified", "invalid");
        throw new InvalidBodyError("body is not valid JSON");
      }
      // The timestamp is not signed either, but a replay that keeps Knot's old one is stopped here, and
      // the window is wide enough for Knot's own retries (two more, minutes apart).
      const timestamp = body.timestamp;
      if (typeof timestamp !== "number" || Math.abs(timestamp - receivedAt) > knot.webhookToleranceMs) {
        deps.metrics.knotWebhooksRefused.inc({ reason: "stale_timestamp" });
        count(typeof body.event === "string" ? body.event : "unverified", "stale_timestamp");
        req.log.warn(
          {
            knotEvent: typeof body.event === "string" ? body.event.slice(0, 100) : undefined,
            knotTimestamp: typeof timestamp === "number" ? timestamp : undefined,
          },
          "Knot webhook refused: timestamp missing or outside KNOT_WEBHOOK_TOLERANCE_SECONDS (replayed signature?)",
        );
        throw new KnotTimestampError(
          `timestamp must be epoch milliseconds within ${knot.webhookToleranceMs / 1000} s of the receiver's clock`,
        );
      }
      const digest = createHash("sha256").update(raw).digest("hex");
      // Knot retries anything but 200, and a body we cannot read will not read better next time: it is
      // acknowledged and kept (its event name, member names and the reason; never the body), not refused.
      const keepUnparsed = async (eventType: string, reason: string | undefined) => {
        await commit(() =>
          deps.repo.recordUnknownEvent({
            source: "knot",
            eventType,
            digest,
            members: memberNames(req.body),
            receivedAt,
            ...(reason !== undefined ? { reason } : {}),
          }),
        );
        const outcome = reason === undefined ? "recorded_unknown" : "recorded_unparsed";
        count(eventType, outcome);
        if (reason !== undefined) {
          req.log.warn(
            { knotEvent: eventType.slice(0, 100), reason },
            "Knot webhook not understood; kept verbatim",
          );
        }
        return reply.code(200).send({ received: true, outcome });
      };
      const parsed = knotEventSchema.safeParse(req.body);
      if (!parsed.success) {
        const name = typeof body.event === "string" ? body.event.slice(0, 200) : "";
        return keepUnparsed(name, describeIssue(parsed.error));
      }
      const event: KnotEvent = parsed.data;
      if (!isKnownKnotEvent(event.event)) return keepUnparsed(event.event, undefined);
      const record = toRecord(event, digest, receivedAt, deps.config.sendCard.deadlineMs, deps.jobClaim);
      if (typeof record === "string") return keepUnparsed(event.event, record);
      const outcome = await commit(() => deps.repo.recordKnotEvent(record));
      count(event.event, outcome);
      if (outcome === "session_conflict") {
        deps.metrics.knotWebhooksRefused.inc({ reason: "session_conflict" });
        req.log.error(
          {
            knotEvent: event.event,
            sessionId: event.session_id,
            taskId: event.task_id,
            cardId: record.cardId,
          },
          "Knot webhook refused: another body was already accepted for this event and session_id (a replayed signature on an edited body)",
        );
        throw new KnotReplayError(
          "a different body was already accepted for this event and session_id; Knot signs one body per pair",
        );
      }
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
    },
  );
}

/** The record to store, or why the event cannot be acted on (a field it is acted on by is malformed). */
function toRecord(
  e: KnotEvent,
  digest: string,
  receivedAt: number,
  deadlineMs: number,
  claim: KnotRouteDeps["jobClaim"],
): KnotEventRecord | string {
  const data = e.data ?? {};
  const cardId = partnerId.safeParse(data.card_id);
  const base = {
    digest,
    event: e.event,
    timestamp: e.timestamp ?? receivedAt,
    receivedAt,
    ...(e.session_id !== undefined ? { sessionId: e.session_id } : {}),
    ...(e.task_id !== undefined ? { taskId: e.task_id } : {}),
    ...(e.external_user_id !== undefined ? { externalUserId: e.external_user_id } : {}),
    ...(e.merchant ? { merchantId: e.merchant.id } : {}),
    ...(e.merchant?.name !== undefined ? { merchantName: e.merchant.name } : {}),
    ...(cardId.success ? { cardId: cardId.data } : {}),
  };
  switch (e.event) {
    case "AUTHENTICATED": {
      const a = authenticatedSchema.safeParse(e);
      if (!a.success) return describeIssue(a.error);
      return {
        ...base,
        cardId: a.data.data.card_id,
        // Knot: "By default, this property will be true"; only an explicit false means no card.
        sendCard:
          a.data.data.send_card === false
            ? { send: false }
            : { send: true, deadlineAt: receivedAt + deadlineMs, claimBy: claim() },
      };
    }
    case "CARD_FAILED": {
      const f = cardFailedSchema.safeParse(e);
      return f.success ? { ...base, failureReason: f.data.data.reason } : base;
    }
    case "MERCHANT_STATUS_UPDATE": {
      const m = merchantStatusSchema.safeParse(e);
      if (!m.success) return describeIssue(m.error);
      const { type, platform, status, sdk } = m.data.data;
      return { ...base, availability: { type, platform, status, sdk: sdk ?? null } };
    }
    case "NEW_TRANSACTIONS_AVAILABLE":
      return { ...base, transactions: { ids: [] } };
    case "UPDATED_TRANSACTIONS_AVAILABLE": {
      const u = updatedTransactionsSchema.safeParse(e);
      if (!u.success) return describeIssue(u.error);
      return { ...base, transactions: { ids: u.data.updated.map((t) => t.id) } };
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
