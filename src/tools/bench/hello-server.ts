/**
 * The reference for bench:gateway: a Fastify hello-world in its own process, receiving the same
 * requests as the gateway's Dotva intake (POST of the same JSON body, parsed) and answering at once.
 */
import Fastify from "fastify";

const app = Fastify({ logger: false });
app.post("/webhooks/dotva", async () => ({ hello: "world" }));
app.get("/healthz", async () => ({ status: "ok" }));
await app.listen({ host: "127.0.0.1", port: Number(process.env.GATEWAY_PORT) });
