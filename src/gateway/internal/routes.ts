/**
 * The internal API (/v1), for our own back office, never for partners: cardholder profiles and card
 * ownership in, task and card status out. Bearer-token authenticated; it may listen on its own port
 * (GATEWAY_INTERNAL_PORT). Every route declares its request and response schemas (zod, through
 * http/zod-schema.ts): responses list their members, so nothing else (a ciphertext) can slip out.
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { knotUserSchema } from "../../core/card/knot-user.js";
import { normaliseCardUuid } from "../dotva/schema.js";
import {
  CardIdAmbiguousError,
  CardOwnedByAnotherUserError,
  InternalUnauthenticatedError,
  NotFoundError,
} from "../errors.js";
import { secretEquals } from "../http/constant-time.js";
import { partnerId } from "../http/partner-ids.js";
import { errorResponses } from "../http/responses.js";
import type { ZodTypeProvider } from "../http/zod-schema.js";
import { keyUsage, spkiFingerprint } from "../key-usage.js";
import { CARD_FAILED_REASONS, isDocumentedFailureReason } from "../knot/schema.js";
import type { GatewayRepository } from "../storage/repository.js";

const externalUserId = z.string().regex(/^[A-Za-z0-9_.:@-]{1,200}$/);
const taskId = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/);
const cardUuid = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/);
const cardId = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/);
const limit = z.coerce.number().int().min(1).max(1000).default(100);

const jobStates = z.enum(["pending", "running", "sent", "failed"]);
const taskView = z.object({
  taskId: z.string(),
  sessionId: z.string().optional(),
  merchantId: z.string().optional(),
  merchantName: z.string().optional(),
  externalUserId: z.string().optional(),
  cardId: z.string().optional(),
  state: z.string(),
  failureReason: z.string().optional(),
  failureReasonDocumented: z.boolean().optional(),
  failureReasonDescription: z.string().optional(),
  sendCard: z.boolean().optional(),
  sendCardNote: z.string().optional(),
  job: z
    .object({
      state: jobStates,
      attempts: z.number(),
      receivedAt: z.number(),
      deadlineAt: z.number(),
      completedAt: z.number().optional(),
      errorCode: z.string().optional(),
      errorMessage: z.string().optional(),
      knotStatus: z.number().optional(),
    })
    .optional(),
  updatedAt: z.number(),
});
const cardView = z.object({
  cardUuid: z.string(),
  cardId: z.string(),
  workspaceId: z.string(),
  cardLast4: z.string(),
  cardBin: z.string(),
  keyFingerprint: z.string(),
  receivedAt: z.number(),
  conflicts: z.number(),
  unusableReason: z.string().optional(),
  firstSentAt: z.number().optional(),
  secretsPurgedAt: z.number().optional(),
});
const merchantView = z.object({
  merchantId: z.string(),
  merchantName: z.string().optional(),
  type: z.string(),
  platform: z.string(),
  status: z.string(),
  sdk: z.string().nullable(),
  updatedAt: z.number(),
});
const transactionEventView = z.object({
  event: z.string(),
  externalUserId: z.string().optional(),
  merchantId: z.string().optional(),
  merchantName: z.string().optional(),
  transactionIds: z.array(z.string()).readonly(),
  timestamp: z.number(),
  receivedAt: z.number(),
});
const quarantineView = z.object({
  id: z.number(),
  reason: z.string(),
  event: z.string().optional(),
  cardUuid: z.string().optional(),
  members: z.string(),
  receivedAt: z.number(),
});
const written = z.enum(["created", "updated"]);
// Any spelling of a key's SPKI SHA-256 digest custody accepts; '/' and '+' of base64 arrive percent-encoded.
const keyFingerprint = z
  .string()
  .regex(/^[A-Za-z0-9:+/=_-]{20,200}$/)
  .transform((text, ctx) => {
    try {
      return spkiFingerprint(text);
    } catch {
      ctx.addIssue({ code: "custom", message: "not a SHA-256 key fingerprint" });
      return z.NEVER;
    }
  });
const keyUsageView = z.object({
  fingerprint: z.string(),
  withSecrets: z.number(),
  unsent: z.number(),
  spellings: z.array(z.string()).readonly(),
});

export function registerInternalRoutes(app: FastifyInstance, repo: GatewayRepository, token: string): void {
  app.register(
    async (plain) => {
      const v1 = plain.withTypeProvider<ZodTypeProvider>();
      v1.addHook("onRequest", async (req) => {
        const h = req.headers.authorization;
        const presented = typeof h === "string" && h.startsWith("Bearer ") ? h.slice(7) : "";
        if (!secretEquals(presented, token)) {
          throw new InternalUnauthenticatedError("send Authorization: Bearer <GATEWAY_INTERNAL_TOKEN>");
        }
      });

      v1.put(
        "/cardholders/:external_user_id",
        {
          schema: {
            params: z.object({ external_user_id: externalUserId }),
            body: knotUserSchema.strict(),
            response: {
              200: z.object({ external_user_id: z.string(), outcome: written }),
              201: z.object({ external_user_id: z.string(), outcome: written }),
              ...errorResponses,
            },
          },
        },
        async (req, reply) => {
          const id = req.params.external_user_id;
          const outcome = await repo.putCardholder(id, req.body, Date.now());
          return reply.code(outcome === "created" ? 201 : 200).send({ external_user_id: id, outcome });
        },
      );

      // Knot's AUTHENTICATED names a card_id and an external_user_id, neither signed: a card is sent only
      // when this binding says that user owns it, and the binding also says which workspace's card_id.
      const bound = z.object({
        external_user_id: z.string(),
        workspace_id: z.string(),
        card_id: z.string(),
        outcome: z.enum(["created", "unchanged"]),
      });
      v1.put(
        "/cardholders/:external_user_id/cards/:card_id",
        {
          schema: {
            params: z.object({ external_user_id: externalUserId, card_id: cardId }),
            body: z.strictObject({ workspace_id: partnerId }),
            response: { 200: bound, 201: bound, ...errorResponses },
          },
        },
        async (req, reply) => {
          const { external_user_id: user, card_id: card } = req.params;
          const workspace = req.body.workspace_id;
          const outcome = await repo.bindCard(user, workspace, card, Date.now());
          if (outcome === "owned_by_another_user") {
            throw new CardOwnedByAnotherUserError(
              "this workspace_id and card_id are bound to another external_user_id; delete that cardholder first",
            );
          }
          if (outcome === "card_id_ambiguous") {
            throw new CardIdAmbiguousError(
              "this external_user_id already owns a card with this card_id in another workspace; Knot's card_id could not tell them apart",
            );
          }
          return reply
            .code(outcome === "created" ? 201 : 200)
            .send({ external_user_id: user, workspace_id: workspace, card_id: card, outcome });
        },
      );

      v1.delete(
        "/cardholders/:external_user_id",
        {
          schema: {
            params: z.object({ external_user_id: externalUserId }),
            response: {
              200: z.object({ external_user_id: z.string(), deleted: z.literal(true) }),
              ...errorResponses,
            },
          },
        },
        async (req) => {
          const id = req.params.external_user_id;
          if (!(await repo.deleteCardholder(id)))
            throw new NotFoundError("no profile or card binding for this external_user_id");
          return { external_user_id: id, deleted: true as const };
        },
      );

      v1.get(
        "/tasks/:task_id",
        {
          schema: {
            params: z.object({ task_id: taskId }),
            response: { 200: taskView, ...errorResponses },
          },
        },
        async (req) => {
          const task = await repo.getTask(req.params.task_id);
          if (!task) throw new NotFoundError("no Knot webhook has been recorded for this task_id");
          const reason = task.failureReason;
          return reason === undefined
            ? task
            : {
                ...task,
                // A reason Knot adds later is shown as sent, flagged so a back office can tell.
                failureReasonDocumented: isDocumentedFailureReason(reason),
                ...(isDocumentedFailureReason(reason)
                  ? { failureReasonDescription: CARD_FAILED_REASONS[reason] }
                  : {}),
              };
        },
      );

      v1.get(
        "/cards/:card_uuid",
        {
          schema: {
            params: z.object({ card_uuid: cardUuid }),
            response: { 200: cardView, ...errorResponses },
          },
        },
        async (req) => {
          const card = await repo.getCard(normaliseCardUuid(req.params.card_uuid));
          if (!card) throw new NotFoundError("no Dotva card with this card_uuid has been stored");
          return card;
        },
      );

      // Before a Dotva key is retired: stored cards whose secrets_jwe still needs it (0 means none).
      v1.get(
        "/keys/:fingerprint/usage",
        {
          schema: {
            params: z.object({ fingerprint: keyFingerprint }),
            querystring: z.object({
              jwk_thumbprint: z
                .string()
                .regex(/^[A-Za-z0-9_-]{43}$/)
                .optional(),
            }),
            response: { 200: keyUsageView, ...errorResponses },
          },
        },
        async (req) =>
          keyUsage(await repo.storedSecretsByFingerprint(), {
            fingerprint: req.params.fingerprint,
            ...(req.query.jwk_thumbprint ? { jwkThumbprint: req.query.jwk_thumbprint } : {}),
          }),
      );

      v1.get(
        "/merchants",
        { schema: { response: { 200: z.object({ merchants: z.array(merchantView) }), ...errorResponses } } },
        async () => ({ merchants: await repo.listMerchants() }),
      );

      v1.get(
        "/knot/failure-reasons",
        {
          schema: {
            response: {
              200: z.object({ reasons: z.array(z.object({ reason: z.string(), description: z.string() })) }),
              ...errorResponses,
            },
          },
        },
        async () => ({
          reasons: Object.entries(CARD_FAILED_REASONS).map(([reason, description]) => ({
            reason,
            description,
          })),
        }),
      );

      v1.get(
        "/transaction-events",
        {
          schema: {
            querystring: z.object({ external_user_id: externalUserId.optional(), limit }),
            response: { 200: z.object({ events: z.array(transactionEventView) }), ...errorResponses },
          },
        },
        async (req) => ({
          events: await repo.listTransactionEvents(req.query.external_user_id, req.query.limit),
        }),
      );

      v1.get(
        "/dotva/quarantine",
        {
          schema: {
            querystring: z.object({ limit }),
            response: { 200: z.object({ deliveries: z.array(quarantineView) }), ...errorResponses },
          },
        },
        async (req) => ({ deliveries: await repo.listQuarantine(req.query.limit) }),
      );
    },
    { prefix: "/v1" },
  );
}
