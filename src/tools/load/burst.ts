/**
 * The overload burst, in its own process so that the base-rate load, which measures latency, and the Knot
 * simulator keep an event loop of their own while thousands of calls are sent (run.ts starts it). Reads its
 * configuration from the JSON file named by LOAD_BURST_CONFIG, opens its connections at once, then at
 * `startAt` (epoch ms) sends, for `seconds` seconds:
 *   - one wave a second of `custodyConcurrency` ReencryptForKnot calls at once, spread over
 *     `custodyChannels` connections;
 *   - Dotva webhooks from autocannon over `gatewayConnections` connections, each request a new card.
 * Prints `BURST_START` when it begins and `BURST_RESULT <json>` when every call has ended.
 */
import { readFileSync } from "node:fs";
import autocannon from "autocannon";
import { type CustodyTarget, custodyCaller, type DotvaTarget, dotvaRequests } from "./requests.js";

export interface BurstConfig {
  readonly startAt: number;
  readonly seconds: number;
  readonly custody: CustodyTarget;
  readonly custodyConcurrency: number;
  readonly custodyChannels: number;
  readonly dotva: DotvaTarget;
  readonly gatewayConnections: number;
}

export interface BurstResult {
  readonly custodyOutcomes: Record<string, number>;
  /** The refusals' messages, to tell the worker queue's refusal from the per-caller limit's. */
  readonly custodyRefusalMessages: Record<string, number>;
  readonly gatewayRequests: number;
  readonly gatewayStatuses: Record<string, number>;
  /** Requests that got no answer: connection errors and timeouts. */
  readonly gatewayErrors: number;
  readonly gatewayTimeouts: number;
  readonly gatewayP50Ms: number;
  readonly gatewayP99Ms: number;
  /** From the burst's start to the last answer of each part. */
  readonly custodySeconds: number;
  readonly gatewaySeconds: number;
}

const configFile = process.env.LOAD_BURST_CONFIG;
if (!configFile) throw new Error("LOAD_BURST_CONFIG names the burst's JSON configuration");
const config = JSON.parse(readFileSync(configFile, "utf8")) as BurstConfig;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

const caller = await custodyCaller(config.custody);
const clients = Array.from({ length: config.custodyChannels }, () => caller.client());
// Connections up and TLS done before the burst, so the burst measures custody, not handshakes.
await Promise.all(clients.map((c, i) => caller.reencrypt(c, i, 30_000)));
const dotva = dotvaRequests(config.dotva);

await sleep(config.startAt - Date.now());
console.log("BURST_START");
const outcomes: Record<string, number> = {};
const messages: Record<string, number> = {};
let seq = 0;
const start = performance.now();
const seconds = () => (performance.now() - start) / 1000;
const custodyBurst = async () => {
  const waves: Promise<void>[] = [];
  for (let w = 0; w < config.seconds; w++) {
    await sleep(start + w * 1000 - performance.now());
    const wave = Array.from({ length: config.custodyConcurrency }, (_, i) =>
      caller.reencrypt(clients[i % clients.length]!, seq++, 30_000).then((r) => {
        outcomes[r.code] = (outcomes[r.code] ?? 0) + 1;
        if (r.details) messages[r.details] = (messages[r.details] ?? 0) + 1;
      }),
    );
    waves.push(Promise.all(wave).then(() => undefined));
  }
  await Promise.all(waves);
  return seconds();
};
const [custodySeconds, [http, gatewaySeconds]] = await Promise.all([
  custodyBurst(),
  autocannon({
    url: `${config.dotva.gatewayUrl}/webhooks/dotva`,
    connections: config.gatewayConnections,
    duration: config.seconds,
    timeout: 30,
    requests: [
      {
        method: "POST",
        setupRequest: (req) => {
          const { text, headers } = dotva.next();
          return { ...req, body: text, headers };
        },
      },
    ],
  }).then((r) => [r, seconds()] as const),
]);
// autocannon 9 counts each status; its type definitions (7.x) do not declare the field.
const statusCodeStats = (http as { statusCodeStats?: Record<string, { count: number }> }).statusCodeStats;
const result: BurstResult = {
  custodyOutcomes: outcomes,
  custodyRefusalMessages: messages,
  gatewayRequests: http.requests.total,
  gatewayStatuses: Object.fromEntries(
    Object.entries(statusCodeStats ?? {}).map(([code, { count }]) => [code, count]),
  ),
  gatewayErrors: http.errors,
  gatewayTimeouts: http.timeouts,
  gatewayP50Ms: http.latency.p50,
  gatewayP99Ms: http.latency.p99,
  custodySeconds,
  gatewaySeconds,
};
console.log(`BURST_RESULT ${JSON.stringify(result)}`);
caller.close();
process.exit(0);
