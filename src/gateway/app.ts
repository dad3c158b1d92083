/**
 * Assembles the gateway: Fastify for the partner webhooks (and, unless GATEWAY_INTERNAL_PORT splits it
 * off, the internal API and metrics), storage, the custody client, the Knot client and the send-card
 * worker. `buildGateway` wires everything without opening a socket or starting the worker (route tests
 * drive it with inject()); `listen` then opens the ports and starts the worker. `startGateway` does
 * both, and is what main.ts, the demo and the process tests call.
 */
import underPressure from "@fastify/under-pressure";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyRequest,
  LogController,
} from "fastify";
import pino from "pino";
import type { GatewayConfig } from "./config.js";
import { CUSTODY_KEEPALIVE_MS, type CustodyCaller, custodyClient } from "./custody-client.js";
import { registerDotvaRoute } from "./dotva/route.js";
import {
  BodyTooLargeError,
  errorBody,
  GatewayError,
  HTTP_STATUS,
  InternalError,
  InvalidBodyError,
  OverloadedError,
  RouteNotFoundError,
  ShuttingDownError,
  UnsupportedMediaTypeError,
} from "./errors.js";
import { registerHealthRoutes } from "./health.js";
import { registerRawJson } from "./http/raw-json.js";
import { sourceAllowlist } from "./http/source-allowlist.js";
import { useZodSchemas } from "./http/zod-schema.js";
import { registerInternalRoutes } from "./internal/routes.js";
import { KnotClient } from "./knot/client.js";
import { registerKnotRoute } from "./knot/route.js";
import { loggerOptions } from "./logger.js";
import { GatewayMetrics } from "./metrics.js";
import { SendCardWorker } from "./sendcard/worker.js";
import { openRepository } from "./storage/open.js";
import type { GatewayRepository } from "./storage/repository.js";

// Webhook bodies are small JSON documents; 64 KiB leaves room for a 4096-bit JWE and Knot's extras.
const BODY_LIMIT = 64 * 1024;
// Node's own default, stated: partners send a handful of short headers; more is 431 before Fastify.
const MAX_HEADER_BYTES = 16 * 1024;
// Fastify's default, stated: longer than the usual load balancer's idle timeout (60 s), so the balancer
// closes an idle connection first and never sends a request into one the gateway is closing.
const KEEP_ALIVE_TIMEOUT_MS = 72_000;
// under-pressure's event-loop delay is the mean over this window: short enough that a burst is shed
// within a second, long enough that one garbage-collector pause does not trip it.
const PRESSURE_SAMPLE_MS = 500;

export interface BuiltGateway {
  /** The partner-facing Fastify instance (tests drive it with inject()). */
  readonly app: FastifyInstance;
  /** The internal API's instance: `app` itself unless GATEWAY_INTERNAL_PORT splits it off. */
  readonly internal: FastifyInstance;
  readonly repo: GatewayRepository;
  readonly metrics: GatewayMetrics;
  readonly worker: SendCardWorker;
  /** Opens the configured ports and starts the send-card worker. */
  listen(): Promise<RunningGateway>;
  close(): Promise<void>;
}

export interface RunningGateway extends BuiltGateway {
  readonly url: string;
  readonly internalUrl: string;
}

function toGatewayError(error: FastifyError): GatewayError {
  if (error instanceof GatewayError) return error;
  switch (error.code) {
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new UnsupportedMediaTypeError("send Content-Type: application/json");
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new BodyTooLargeError(`body exceeds ${BODY_LIMIT} bytes`);
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new InvalidBodyError("body is empty or its length is wrong");
  }
  if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
    return new InvalidBodyError("the request is malformed");
  }
  return new InternalError("the gateway failed to handle this request; retry later");
}

/**
 * Which peers may say, in X-Forwarded-For, who the client is: only the configured proxies, by address.
 * Fastify (proxy-addr) walks from the connection's peer outwards while this answers true, and the client
 * IP is the first address it refuses; so a peer that is not a listed proxy is the client itself, whatever
 * header it sends, and the source allow-lists of /webhooks/dotva and /webhooks/knot see the real sender.
 * The same CIDR matching as those allow-lists (Node's BlockList, IPv4-mapped IPv6 peers included).
 */
function proxyTrust(proxies: readonly string[]): false | ((address: string) => boolean) {
  if (proxies.length === 0) return false;
  return sourceAllowlist(proxies);
}

function baseApp(config: GatewayConfig, logger: pino.Logger): FastifyInstance {
  const app: FastifyInstance = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: proxyTrust(config.trustedProxies),
    bodyLimit: BODY_LIMIT,
    // A whole request (headers and at most BODY_LIMIT of body) must arrive within this time: a client
    // trickling its body (slowloris) is cut off with 408 instead of holding a connection for ever.
    // Partners answer well inside it: Knot itself gives up on a webhook after 10 s.
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    http: {
      maxHeaderSize: MAX_HEADER_BYTES,
      // Node sets these at construction: the headers' own limit would otherwise stay at 60 s, and the
      // check runs every 30 s by default, which would let a slow sender hold a connection that long.
      requestTimeout: config.requestTimeoutMs,
      headersTimeout: config.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, Math.ceil(config.requestTimeoutMs / 4)),
    },
  });
  registerRawJson(app, BODY_LIMIT);
  useZodSchemas(app);
  app.setErrorHandler((error: FastifyError, req, reply) => {
    const mapped = toGatewayError(error);
    const httpStatus = HTTP_STATUS[mapped.code];
    if (mapped instanceof OverloadedError) {
      // Shed by design, counted in gateway_webhooks_shed_total: an error line each would flood the log
      // at the very moment the process has least time for it.
      req.log.debug({ code: mapped.code, url: req.url }, "request shed");
      return reply
        .code(httpStatus)
        .header("retry-after", String(config.overload.retryAfterSeconds))
        .send(errorBody(mapped));
    }
    if (httpStatus >= 500) req.log.error({ err: error, code: mapped.code }, "request failed");
    else req.log.info({ code: mapped.code, status: httpStatus, url: req.url }, "request refused");
    return reply.code(httpStatus).send(errorBody(mapped));
  });
  app.setNotFoundHandler((_req, reply) => {
    const e = new RouteNotFoundError("no such route; see docs/gateway.md");
    return reply.code(HTTP_STATUS[e.code]).send(errorBody(e));
  });
  return app;
}

const WEBHOOK_PREFIX = "/webhooks/";
/** "dotva" or "knot" for a partner webhook route, from the route's pattern (a fixed set), else undefined. */
const webhookSource = (req: FastifyRequest) => {
  const route = req.routeOptions.url;
  return route?.startsWith(WEBHOOK_PREFIX) ? route.slice(WEBHOOK_PREFIX.length) : undefined;
};

/**
 * Load shedding for the partner webhooks (issue 17): both partners retry any non-2xx, so under a burst
 * a quick 503 OVERLOADED (with Retry-After) is worth more than a 200 the sender stopped waiting for
 * after its 10 s. Both checks run before the route's handler (the event loop's in onRequest, the count
 * of webhooks in flight in preHandler), so a shed webhook has stored nothing and its redelivery goes
 * through the usual deduplication (docs/design.md invariants 5 and 6).
 * Health, metrics and the internal API are never shed: the orchestrator must still see the process live.
 *
 * The event-loop check is armed only once the listener is open and two windows have passed: the
 * windows before cover the start-up's own work (migrations, compiling every route's schemas), which on
 * a busy host blocks the loop long enough to read as overload (a window with no sample at all reads as
 * infinite delay) and would refuse the first deliveries of a healthy instance.
 */
async function registerLoadShedding(
  app: FastifyInstance,
  limits: GatewayConfig["overload"],
  metrics: GatewayMetrics,
): Promise<{ armEventLoopCheck(): void }> {
  const overloaded = () =>
    new OverloadedError("the gateway is overloaded; retry the delivery after the Retry-After delay");
  let eventLoopCheckFrom = Number.POSITIVE_INFINITY;
  await app.register(underPressure, {
    maxEventLoopDelay: limits.maxEventLoopDelayMs,
    sampleInterval: PRESSURE_SAMPLE_MS,
    pressureHandler: async (req) => {
      const source = webhookSource(req);
      if (source === undefined || performance.now() < eventLoopCheckFrom) return;
      metrics.webhooksShed.inc({ source, reason: "event_loop_delay" });
      throw overloaded();
    },
  });
  // under-pressure has no cap on requests in flight; without one a burst of slow requests is queued
  // (storage, custody) with nothing lagging the event loop, and every sender waits past its timeout.
  // One cap per partner: a Dotva burst (retried with back-off, not urgent) must not shed Knot's
  // AUTHENTICATED, whose card has 15 s and whose retry comes only minutes later. Counted from
  // preHandler, once the body is in and before the handler stores anything: a sender trickling its body
  // (anyone, before the allow-list is checked) must not be able to hold the partner's budget.
  const inFlight = new Map<string, number>();
  app.addHook("preHandler", async (req, reply) => {
    const source = webhookSource(req);
    if (source === undefined) return;
    const now = inFlight.get(source) ?? 0;
    if (now >= limits.maxWebhooksInFlight) {
      metrics.webhooksShed.inc({ source, reason: "in_flight" });
      throw overloaded();
    }
    inFlight.set(source, now + 1);
    metrics.webhooksInFlight.set({ source }, now + 1);
    // 'close' comes once per response, answered or cut off by the client, so the count cannot leak.
    reply.raw.once("close", () => {
      const left = (inFlight.get(source) ?? 1) - 1;
      inFlight.set(source, left);
      metrics.webhooksInFlight.set({ source }, left);
    });
  });
  return {
    armEventLoopCheck() {
      eventLoopCheckFrom = performance.now() + 2 * PRESSURE_SAMPLE_MS;
    },
  };
}

export interface StartOptions {
  /** Replaces the gRPC client (tests). */
  readonly custody?: CustodyCaller;
  readonly logger?: pino.Logger;
}

export async function startGateway(config: GatewayConfig, opts: StartOptions = {}): Promise<RunningGateway> {
  const built = await buildGateway(config, opts);
  try {
    return await built.listen();
  } catch (error) {
    await built.close();
    throw error;
  }
}

export async function buildGateway(config: GatewayConfig, opts: StartOptions = {}): Promise<BuiltGateway> {
  const logger = opts.logger ?? pino(loggerOptions(config.logLevel));
  if (config.env === "development") {
    logger.warn(
      { verifyKnot: config.knot.verifyWebhooks, custodyTls: config.custody.tls !== "insecure" },
      "GATEWAY_ENV=development: unsafe switches may be active",
    );
  }
  const repo = await openRepository(config.storage);
  const metrics = new GatewayMetrics();
  const custody = opts.custody ?? custodyClient(config.custody, CUSTODY_KEEPALIVE_MS, logger);
  const knot = new KnotClient({
    baseUrl: config.knot.baseUrl,
    clientId: config.knot.clientId,
    clientSecret: config.knot.clientSecret,
    jwkTtlMs: config.knot.jwkTtlMs,
    allowedOrigins: config.knot.redirectOrigins,
  });
  const sc = config.sendCard;
  const worker = new SendCardWorker({
    repo,
    knot,
    custody,
    metrics,
    log: logger.child({ component: "send-card" }),
    retention: config.secrets,
    attemptTimeoutMs: sc.attemptTimeoutMs,
    leaseMs: sc.leaseMs,
    backoff: { baseMs: sc.backoffBaseMs, capMs: sc.backoffCapMs },
    pollMs: sc.pollMs,
    concurrency: sc.concurrency,
  });

  const pub = baseApp(config, logger);
  const shedding = await registerLoadShedding(pub, config.overload, metrics);
  let closing = false;
  // A partner delivery that arrives while this instance stops is answered 503 so the partner retries
  // it (on another instance or after the restart); nothing half-done is acknowledged.
  pub.addHook("onRequest", async (req) => {
    if (closing && req.url.startsWith("/webhooks/")) {
      throw new ShuttingDownError("the gateway is shutting down; retry the delivery");
    }
  });
  registerDotvaRoute(pub, { config, repo, metrics });
  registerKnotRoute(pub, {
    config,
    repo,
    metrics,
    jobClaim: () => ({ owner: worker.owner, leaseUntil: Date.now() + sc.leaseMs }),
    onSendCardJob: (job) => worker.runClaimed(job),
  });
  const internal = config.internalPort !== undefined ? baseApp(config, logger) : pub;
  registerInternalRoutes(internal, repo, config.internalToken);
  registerHealthRoutes(internal, { repo, custody, metrics });
  if (internal !== pub) registerHealthRoutes(pub, { repo, custody });

  let closed = false;
  const built: BuiltGateway = {
    app: pub,
    internal,
    repo,
    metrics,
    worker,
    async listen() {
      const url = await pub.listen({ host: config.host, port: config.port });
      shedding.armEventLoopCheck();
      const internalUrl =
        internal === pub ? url : await internal.listen({ host: config.host, port: config.internalPort ?? 0 });
      worker.start();
      logger.info({ url, internalUrl, storage: repo.driver }, "gateway listening");
      return { ...built, url, internalUrl };
    },
    async close() {
      if (closed) return;
      closed = true;
      closing = true;
      await pub.close();
      if (internal !== pub) await internal.close();
      await worker.stop();
      custody.close();
      await repo.close();
    },
  };
  return built;
}
