/**
 * The internal API (/v1), for our own back office, never for partners: cardholder profiles in, task and
 * card status out. Bearer-token authenticated; it may listen on its own port (GATEWAY_INTERNAL_PORT).
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { knotUserSchema } from "../../custody/card/knot-user.js";
import { normaliseCardUuid } from "../dotva/schema.js";
import { InternalUnauthenticatedError, InvalidParameterError, NotFoundError } from "../errors.js";
import { secretEquals } from "../http/constant-time.js";
import { parseBody } from "../http/validate.js";
import { CARD_FAILED_REASONS, isDocumentedFailureReason } from "../knot/schema.js";
import type { GatewayRepository } from "../storage/repository.js";

const externalUserId = z.string().regex(/^[A-Za-z0-9_.:@-]{1,200}$/);
const taskId = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/);
const cardUuid = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/);
const limit = z.coerce.number().int().min(1).max(1000).default(100);

function param<T>(schema: z.ZodType<T>, value: unknown, name: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new InvalidParameterError(`${name} is malformed`);
  return r.data;
}

export function registerInternalRoutes(app: FastifyInstance, repo: GatewayRepository, token: string): void {
  app.register(
    async (v1) => {
      v1.addHook("onRequest", async (req) => {
        const h = req.headers.authorization;
        const presented = typeof h === "string" && h.startsWith("Bearer ") ? h.slice(7) : "";
        if (!secretEquals(presented, token)) {
          throw new InternalUnauthenticatedError("send Authorization: Bearer <GATEWAY_INTERNAL_TOKEN>");
        }
      });

      v1.put("/cardholders/:external_user_id", async (req, reply) => {
        const id = param(
          externalUserId,
          (req.params as Record<string, string>).external_user_id,
          "external_user_id",
        );
        const profile = parseBody(knotUserSchema.strict(), req.body);
        const outcome = await repo.putCardholder(id, profile, Date.now());
        return reply.code(outcome === "created" ? 201 : 200).send({ external_user_id: id, outcome });
      });

      v1.get("/tasks/:task_id", async (req) => {
        const id = param(taskId, (req.params as Record<string, string>).task_id, "task_id");
        const task = await repo.getTask(id);
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
      });

      v1.get("/cards/:card_uuid", async (req) => {
        const id = normaliseCardUuid(
          param(cardUuid, (req.params as Record<string, string>).card_uuid, "card_uuid"),
        );
        const card = await repo.getCard(id);
        if (!card) throw new NotFoundError("no Dotva card with this card_uuid has been stored");
        return card;
      });

      v1.get("/merchants", async () => ({ merchants: await repo.listMerchants() }));

      v1.get("/knot/failure-reasons", async () => ({
        reasons: Object.entries(CARD_FAILED_REASONS).map(([reason, description]) => ({
          reason,
          description,
        })),
      }));

      v1.get("/transaction-events", async (req) => {
        const q = req.query as Record<string, string | undefined>;
        const user =
          q.external_user_id === undefined
            ? undefined
            : param(externalUserId, q.external_user_id, "external_user_id");
        return {
          events: await repo.listTransactionEvents(user, param(limit, q.limit, "limit")),
        };
      });

      v1.get("/dotva/quarantine", async (req) => {
        const q = req.query as Record<string, string | undefined>;
        return { deliveries: await repo.listQuarantine(param(limit, q.limit, "limit")) };
      });
    },
    { prefix: "/v1" },
  );
}
