/**
 * The internal API (/v1), for our own back office, never for partners: cardholder profiles in, task and
 * card status out. Bearer-token authenticated; it may listen on its own port (GATEWAY_INTERNAL_PORT).
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { knotUserSchema } from "../../custody/card/knot-user.js";
import { InternalUnauthenticatedError, InvalidParameterError, NotFoundError } from "../errors.js";
import { secretEquals } from "../http/constant-time.js";
import { parseBody } from "../http/validate.js";
import type { GatewayRepository } from "../storage/repository.js";

const externalUserId = z.string().regex(/^[A-Za-z0-9_.:@-]{1,200}$/);
const taskId = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/);
const cardUuid = z.uuid();

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
        return task;
      });

      v1.get("/cards/:card_uuid", async (req) => {
        const id = param(
          cardUuid,
          (req.params as Record<string, string>).card_uuid,
          "card_uuid",
        ).toLowerCase();
        const card = await repo.getCard(id);
        if (!card) throw new NotFoundError("no Dotva card with this card_uuid has been stored");
        return card;
      });

      v1.get("/merchants", async () => ({ merchants: await repo.listMerchants() }));
    },
    { prefix: "/v1" },
  );
}
