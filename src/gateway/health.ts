/** Liveness, readiness (storage answers and custody reports SERVING) and Prometheus metrics. */
import type { FastifyInstance } from "fastify";
import type { CustodyCaller } from "./custody-client.js";
import type { GatewayMetrics } from "./metrics.js";
import type { GatewayRepository } from "./storage/repository.js";

export function registerHealthRoutes(
  app: FastifyInstance,
  deps: { repo: GatewayRepository; custody: CustodyCaller; metrics?: GatewayMetrics },
): void {
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_req, reply) => {
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
  });
  const metrics = deps.metrics;
  if (metrics) {
    app.get("/metrics", async (_req, reply) =>
      reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
    );
  }
}
