/** Liveness, readiness (storage answers and custody reports SERVING) and Prometheus metrics. */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { CustodyCaller } from "./custody-client.js";
import { errorResponses } from "./http/responses.js";
import type { GatewayMetrics } from "./metrics.js";
import type { GatewayRepository } from "./storage/repository.js";

export function registerHealthRoutes(
  app: FastifyInstance,
  deps: { repo: GatewayRepository; custody: CustodyCaller; metrics?: GatewayMetrics },
): void {
  const readiness = z.object({
    status: z.enum(["ready", "not_ready"]),
    checks: z.object({ storage: z.boolean(), custody: z.boolean() }),
  });
  app.get(
    "/healthz",
    { schema: { response: { 200: z.object({ status: z.literal("ok") }), ...errorResponses } } },
    async () => ({ status: "ok" }),
  );
  app.get(
    "/readyz",
    { schema: { response: { 200: readiness, 503: readiness, ...errorResponses } } },
    async (_req, reply) => {
      const [storage, custody] = await Promise.all([
        deps.repo.ping().then(
          () => true,
          () => false,
        ),
        deps.custody.healthy(1_000),
      ]);
      const ready = storage && custody;
      return reply
        .code(ready ? 200 : 503)
        .send({ status: ready ? "ready" : "not_ready", checks: { storage, custody } });
    },
  );
  const metrics = deps.metrics;
  if (metrics) {
    // Prometheus text, sent as a string with its own content type (Fastify does not serialize it).
    app.get(
      "/metrics",
      { schema: { response: { 200: z.string(), ...errorResponses } } },
      async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
    );
  }
}
