/**
 * One part of the overload burst, in a process of its own (run.ts starts one per part), so that the
 * base-rate load, which measures latency, the Knot simulator and the other part each keep an event loop
 * of their own while thousands of calls are sent. Reads the configuration from the JSON file named by
 * LOAD_BURST_CONFIG and the part from LOAD_BURST_PART, opens its connections, prints `BURST_READY`, and on
 * SIGUSR2 sends:
 *   - custody: one wave a second for `seconds` seconds of `custodyConcurrency` ReencryptForKnot calls at
 *     once, spread over `custodyChannels` connections;
 *   - gateway: `seconds` Dotva webhooks per connection from autocannon over `gatewayConnections`
 *     connections, each a new card (a count, not a duration, so that every request ends answered or
 *     counted as an error, however slow the gateway is).
 * Prints `BURST_RESULT <json>` when every call of its part has ended.
 */
import { readFileSync } from "node:fs";
import autocannon from "autocannon";
import { type CustodyTarget, custodyCaller, type DotvaTarget, dotvaRequests } from "./requests.js";

export interface BurstConfig {
  readonly seconds: number;
  readonly custody: CustodyTarget;
  readonly custodyConcurrency: number;
  readonly custodyChannels: number;
  readonly dotva: DotvaTarget;
  readonly gatewayConnections: number;
}

export interface CustodyBurstResult {
  readonly outcomes: Record<string, number>;
  /** The refusals' messages, to tell the worker queue's refusal from the per-caller limit's. */
  readonly refusalMessages: Record<string, number>;
  /** From the burst's start to the last answer. */
  readonly seconds: number;
}

export interface GatewayBurstResult {
  readonly answered: number;
  readonly statuses: Record<string, number>;
  /** Requests that got no answer: connection errors and timeouts. */
  readonly errors: number;
  readonly timeouts: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly seconds: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const go = () => {
  // A signal listener does not keep the event loop alive; this timer does until the signal comes.
  const alive = setInterval(() => undefined, 60_000);
  const signalled = new Promise<void>((resolve) =>
    process.once("SIGUSR2", () => {
      clearInterval(alive);
      resolve();
    }),
  );
  console.log("BURST_READY");
  return signalled;
};

async function custodyBurst(config: BurstConfig): Promise<CustodyBurstResult> {
  const caller = await custodyCaller(config.custody);
  const clients = Array.from({ length: config.custodyChannels }, () => caller.client());
  // Connections up and TLS done before the burst, so the burst measures custody, not handshakes.
  await Promise.all(clients.map((c, i) => caller.reencrypt(c, i, 30_000)));
  await go();
  const start = performance.now();
  const outcomes: Record<string, number> = {};
  const refusalMessages: Record<string, number> = {};
  let seq = 0;
  const waves: Promise<void>[] = [];
  for (let w = 0; w < config.seconds; w++) {
    await sleep(start + w * 1000 - performance.now());
    const wave = Array.from({ length: config.custodyConcurrency }, (_, i) =>
      caller.reencrypt(clients[i % clients.length]!, seq++, 30_000).then((r) => {
        outcomes[r.code] = (outcomes[r.code] ?? 0) + 1;
        if (r.details) refusalMessages[r.details] = (refusalMessages[r.details] ?? 0) + 1;
      }),
    );
    waves.push(Promise.all(wave).then(() => undefined));
  }
  await Promise.all(waves);
  const seconds = (performance.now() - start) / 1000;
  caller.close();
  return { outcomes, refusalMessages, seconds };
}

async function gatewayBurst(config: BurstConfig): Promise<GatewayBurstResult> {
  const dotva = dotvaRequests(config.dotva);
  await go();
  const start = performance.now();
  const result = await autocannon({
    url: `${config.dotva.gatewayUrl}/webhooks/dotva`,
    connections: config.gatewayConnections,
    amount: config.gatewayConnections * config.seconds,
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
  });
  // autocannon 9 counts each status; its type definitions (7.x) do not declare the field.
  const stats = (result as { statusCodeStats?: Record<string, { count: number }> }).statusCodeStats;
  return {
    answered: result.requests.total,
    statuses: Object.fromEntries(Object.entries(stats ?? {}).map(([code, { count }]) => [code, count])),
    errors: result.errors,
    timeouts: result.timeouts,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    seconds: (performance.now() - start) / 1000,
  };
}

const configFile = process.env.LOAD_BURST_CONFIG;
const part = process.env.LOAD_BURST_PART;
if (!configFile || (part !== "custody" && part !== "gateway")) {
  throw new Error(
    "LOAD_BURST_CONFIG names the burst's JSON configuration; LOAD_BURST_PART is custody or gateway",
  );
}
const config = JSON.parse(readFileSync(configFile, "utf8")) as BurstConfig;
const result = part === "custody" ? await custodyBurst(config) : await gatewayBurst(config);
console.log(`BURST_RESULT ${JSON.stringify(result)}`);
process.exit(0);
