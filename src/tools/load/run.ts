/**
 * The bounded load test (issue 17, "Load and faults"): custody and the gateway as real processes on
 * loopback (custody on the file key store with the dev PKI, the gateway on SQLite with the Dotva and Knot
 * simulators), then
 *
 *  1. sustained phase: open-loop load at fixed rates well below capacity, all at once: ReencryptForKnot
 *     straight to custody over mTLS, Dotva `card.issued.secrets` webhooks (durable intake) and signed Knot
 *     AUTHENTICATED webhooks (each one a send-card job: custody, then POST /card to the Knot simulator).
 *     Both processes' RSS is sampled every second; every call must succeed.
 *  2. overload burst (burst.ts, one process per part), base load still running: waves of far more
 *     concurrent ReencryptForKnot calls than custody's worker queue admits, and an autocannon burst of
 *     Dotva webhooks over hundreds of connections. Refused custody calls must be RESOURCE_EXHAUSTED with
 *     reason OVERLOADED; the gateway must answer 200 or 503 (its documented "retry" status; under a burst
 *     503 OVERLOADED, its load shedding), never a 500 or no answer; base-rate calls meanwhile may be
 *     refused the same way (custody's may also reach their own deadline; webhooks only 503 OVERLOADED)
 *     but nothing else; both processes must still be running.
 *  3. recovery: the base-rate latency of each flow must come back near its pre-burst p50/p99.
 *  4. every AUTHENTICATED the gateway accepted must reach the Knot simulator or end failed with a
 *     recorded code (a job whose 15 s deadline passed while custody refused it); none may be lost.
 *
 * runLoad() returns every figure and the verdicts; `npm run load` (main.ts) and the short run in
 * load.test.ts both call it.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { makeDevPki } from "../dev-pki.js";
import {
  dotvaPublicKeyPem,
  freePort,
  localGatewayEnv,
  type Proc,
  startCustodyProcess,
  startDevKnot,
  startGatewayProcess,
  startTs,
  waitUntil,
} from "../processes.js";
import { DotvaSimulator, TEST_PANS } from "../simulators/dotva-simulator.js";
import { authenticatedEvent } from "../simulators/knot-simulator.js";
import { SAMPLE_CARDHOLDER } from "../simulators/sample-cardholder.js";
import { expiryFromNow } from "../testing/expiry.js";
import type { BurstConfig, CustodyBurstResult, GatewayBurstResult } from "./burst.js";
import { manifestMemoryEnv } from "./manifest-limits.js";
import { type Outcome, PacedLoad } from "./paced.js";
import { HeapSampler, markCompacts, RssSampler } from "./proc-memory.js";
import { type CustodyTarget, custodyCaller, type DotvaTarget, dotvaRequests } from "./requests.js";
import {
  leastSquaresSlope,
  type MemoryVerdict,
  MIB,
  memoryVerdict,
  type Percentiles,
  type RecoveryBounds,
  type RecoveryVerdict,
  type RssSample,
  recoveryVerdict,
} from "./verdicts.js";

export interface LoadOptions {
  readonly sustainedSeconds: number;
  readonly warmupSeconds: number;
  /** Base rates, calls per second. */
  readonly custodyRate: number;
  readonly dotvaRate: number;
  readonly knotRate: number;
  readonly burst: {
    readonly seconds: number;
    /** ReencryptForKnot calls sent at once in each wave (one wave a second). */
    readonly custodyConcurrency: number;
    /** Connections they are spread over (each under custody's per-connection stream limit). */
    readonly custodyChannels: number;
    /** autocannon connections posting Dotva webhooks. */
    readonly gatewayConnections: number;
  };
  /** Custody's CUSTODY_MAX_QUEUE for the run: the bound the burst overruns. */
  readonly custodyMaxQueue: number;
  readonly memory: {
    readonly custodyCeilingBytes: number;
    readonly gatewayCeilingBytes: number;
    readonly maxSlopeBytesPerMinute: number;
  };
  readonly recovery: RecoveryBounds & { readonly baselineSeconds: number };
  /** How long to wait after the burst for every accepted AUTHENTICATED to reach Knot. */
  readonly deliveryWaitSeconds: number;
  /**
   * Diagnosis of a growing RSS: run both services under `node --trace-gc` and report the live heap after
   * each full collection, per isolate (costs a line of output per collection).
   */
  readonly traceGc?: boolean;
  /** Gateway variables for this run on top of the local defaults (e.g. its overload limits). */
  readonly gatewayEnv?: Readonly<Record<string, string>>;
  readonly log: (line: string) => void;
}

export interface Verdict {
  readonly name: string;
  readonly ok: boolean;
  readonly failures: readonly string[];
}

export interface LoadReport {
  readonly ok: boolean;
  readonly verdicts: readonly Verdict[];
  readonly figures: Record<string, unknown>;
}

const round = (x: number, digits = 2) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : null);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const secret = () => randomBytes(24).toString("base64url");
const mib = (b: number | undefined) => (b === undefined ? "?" : (b / MIB).toFixed(1));

const CUSTODY_REFUSED = "RESOURCE_EXHAUSTED/OVERLOADED";
/** Custody's default deadline (CUSTODY_DEFAULT_DEADLINE_MS), for the base-rate calls. */
const BASE_DEADLINE_MS = 5_000;
/**
 * What a call may end with during the burst; anything else fails the run. Custody refuses what it cannot
 * queue (OVERLOADED) and ends an admitted call whose deadline, or its cap on deadlines, passed in the queue
 * with its own DEADLINE_EXCEEDED reason: both are stable answers. A base-rate call may also run out of its
 * own deadline on the client (the client gave up; custody answered nothing wrong). A base-rate webhook
 * must be answered within the sender's 10 s, 200 or the gateway's load-shedding answer 503 OVERLOADED
 * (a 503 STORAGE_UNAVAILABLE would be a storage failure, not overload).
 */
const CUSTODY_EXPIRED = "DEADLINE_EXCEEDED/DEADLINE_EXCEEDED";
const GATEWAY_SHED = "HTTP_503/OVERLOADED";
/** "HTTP_<status>/<the gateway's error code>", or just the status when the body has no code. */
function httpCode(status: number, body: unknown): string {
  const code = (body as { error?: { code?: unknown } } | undefined)?.error?.code;
  return typeof code === "string" ? `HTTP_${status}/${code}` : `HTTP_${status}`;
}
const ALLOWED_DURING_BURST = {
  burst: new Set(["OK", CUSTODY_REFUSED, CUSTODY_EXPIRED]),
  custodyBase: new Set(["OK", CUSTODY_REFUSED, CUSTODY_EXPIRED, "DEADLINE_EXCEEDED/-"]),
  http: new Set(["OK", GATEWAY_SHED]),
};

function transportFailure(e: unknown): Outcome {
  return { ok: false, code: (e as Error).name === "TimeoutError" ? "TIMEOUT" : "CONNECTION_ERROR" };
}

export async function runLoad(o: LoadOptions): Promise<LoadReport> {
  const work = mkdtempSync(join(tmpdir(), "load-"));
  const procs: Proc[] = [];
  const closers: (() => void | Promise<void>)[] = [];
  try {
    return await run(o, work, procs, closers);
  } finally {
    for (const close of closers.reverse()) await close();
    await Promise.all(procs.map((p) => p.stop()));
    rmSync(work, { recursive: true, force: true });
  }
}

async function run(
  o: LoadOptions,
  work: string,
  procs: Proc[],
  closers: (() => void | Promise<void>)[],
): Promise<LoadReport> {
  const load1Before = loadavg()[0]!;
  const pki = makeDevPki(join(work, "pki"));

  // --- the partners and the two services -------------------------------------------------------------
  const knotSecret = secret();
  const knot = await startDevKnot(pki, "load", knotSecret);
  closers.push(() => knot.close());
  // Production's log level, so the audit line per call and the request logs are part of the load.
  // Each service with the heap and allocator bounds its manifest gives it (V8 would otherwise size its
  // heap from this machine's memory, not the container's), plus the GC trace when asked for.
  const serviceEnv = (service: "custody" | "gateway"): Record<string, string> => {
    const env = manifestMemoryEnv(service);
    if (!o.traceGc) return env;
    const traceGc = `--import=${fileURLToPath(new URL("./trace-gc.mjs", import.meta.url))}`;
    return { ...env, NODE_OPTIONS: [env.NODE_OPTIONS, traceGc].filter((x) => x !== undefined).join(" ") };
  };
  const custodyMetricsPort = await freePort();
  const custody = await startCustodyProcess(pki, [readFileSync(pki.knotThumbprint, "utf8").trim()], {
    CUSTODY_LOG_LEVEL: "info",
    CUSTODY_METRICS_LISTEN: String(custodyMetricsPort),
    ...serviceEnv("custody"),
    CUSTODY_WORKERS: "2",
    CUSTODY_MAX_QUEUE: String(o.custodyMaxQueue),
  });
  procs.push(custody.proc);
  const internalToken = secret() + secret();
  const dotvaSecret = { header: "x-dotva-secret", value: secret() };
  const gw = await startGatewayProcess({
    ...localGatewayEnv({
      work,
      pki,
      custodyAddress: custody.address,
      knotUrl: knot.url,
      knotClientId: "load",
      knotClientSecret: knotSecret,
      dotvaSharedSecret: dotvaSecret.value,
      internalToken,
    }),
    GATEWAY_LOG_LEVEL: "info",
    ...serviceEnv("gateway"),
    ...o.gatewayEnv,
  });
  procs.push(gw.proc);
  o.log(
    `custody pid ${custody.proc.child.pid} on ${custody.address}, gateway pid ${gw.proc.child.pid} on ${gw.url}`,
  );

  // --- what the load sends ---------------------------------------------------------------------------
  const dotvaKeyPem = dotvaPublicKeyPem(pki.dotvaKeyDir);
  const expiry = expiryFromNow(36);
  const card = { pan: TEST_PANS[0], cvv: "123", expiry_month: expiry.month, expiry_year: expiry.year };
  const dotvaTarget = (firstCardId: number): DotvaTarget => ({
    gatewayUrl: gw.url,
    dotvaPublicKeyPem: dotvaKeyPem,
    sharedSecret: dotvaSecret,
    template,
    firstCardId,
  });
  // One real JWE for every Dotva webhook: the gateway stores it without decrypting at intake.
  const template = await new DotvaSimulator(dotvaKeyPem).issue(card);
  const dotva = dotvaRequests(dotvaTarget(10_000_000));
  const postDotva = async (): Promise<Outcome> => {
    const { text, headers } = dotva.next();
    try {
      const r = await fetch(`${gw.url}/webhooks/dotva`, {
        method: "POST",
        headers,
        body: text,
        signal: AbortSignal.timeout(10_000),
      });
      if (r.status === 200) {
        await r.body?.cancel();
        return { ok: true, code: "OK" };
      }
      return { ok: false, code: httpCode(r.status, await r.json().catch(() => undefined)) };
    } catch (e) {
      return transportFailure(e);
    }
  };

  // Cards the AUTHENTICATED webhooks ask for: delivered by Dotva, bound to one cardholder.
  const api = (path: string, body: unknown) =>
    fetch(`${gw.url}${path}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${internalToken}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const user = "load-user";
  const profile = await api(`/v1/cardholders/${user}`, SAMPLE_CARDHOLDER);
  if (profile.status >= 300) throw new Error(`cardholder profile: ${profile.status}`);
  const boundCards: number[] = [];
  for (let i = 0; i < 16; i++) {
    const id = dotva.nextCardId;
    const delivered = await postDotva();
    if (!delivered.ok) throw new Error(`a setup card was not accepted by the gateway: ${delivered.code}`);
    const bound = await api(`/v1/cardholders/${user}/cards/${id}`, { workspace_id: template.workspace_id });
    if (bound.status >= 300) throw new Error(`binding card ${id}: ${bound.status}`);
    boundCards.push(id);
  }
  let taskSeq = 700_000;
  const acceptedTasks = new Set<string>();
  const postAuthenticated = async (i: number): Promise<Outcome> => {
    const taskId = taskSeq++;
    const event = authenticatedEvent({
      taskId,
      cardId: boundCards[i % boundCards.length]!,
      externalUserId: user,
    });
    try {
      const r = await knot.sendWebhook(gw.url, event);
      if (r.status !== 200) return { ok: false, code: httpCode(r.status, r.body) };
      acceptedTasks.add(String(taskId));
      return { ok: true, code: "OK" };
    } catch (e) {
      return transportFailure(e);
    }
  };

  const custodyTarget: CustodyTarget = {
    address: custody.address,
    caCert: pki.caCert,
    clientCert: pki.gateway.cert,
    clientKey: pki.gateway.key,
    dotvaPublicKeyPem: dotvaKeyPem,
    knotJwk: readFileSync(pki.knotJwk, "utf8"),
    card,
  };
  const caller = await custodyCaller(custodyTarget);
  closers.push(() => caller.close());
  // Two connections, so that the calls a slow custody holds open stay under its per-connection stream
  // limit (256): past it HTTP/2 refuses streams and then resets the connection, which is the client's
  // doing, not custody's answer.
  const baseClients = [caller.client(), caller.client()];
  const baseCall = (i: number) => caller.reencrypt(baseClients[i % 2]!, i, BASE_DEADLINE_MS);
  // Warm the connections, the workers' key copies and the JIT before the clock starts.
  for (let i = 0; i < 20; i++) {
    const r = await baseCall(i);
    if (!r.ok) throw new Error(`custody warm-up call failed: ${r.code}`);
  }

  // The burst processes start and connect before the clock starts, so that their start-up (tsx compiling
  // them) is not part of the sustained phase; SIGUSR2 sets them off at its end.
  const burstConfig: BurstConfig = {
    seconds: o.burst.seconds,
    custody: custodyTarget,
    custodyConcurrency: o.burst.custodyConcurrency,
    custodyChannels: o.burst.custodyChannels,
    dotva: dotvaTarget(50_000_000),
    gatewayConnections: o.burst.gatewayConnections,
  };
  const burstConfigFile = join(work, "burst.json");
  writeFileSync(burstConfigFile, JSON.stringify(burstConfig));
  const burstProcs = (["custody", "gateway"] as const).map((part) => {
    const proc = startTs("src/tools/load/burst.ts", {
      LOAD_BURST_CONFIG: burstConfigFile,
      LOAD_BURST_PART: part,
    });
    procs.push(proc);
    const exited = new Promise<void>((resolve) => proc.child.once("exit", () => resolve()));
    return { part, proc, exited };
  });
  for (const { part, proc } of burstProcs) {
    await waitUntil(
      `the ${part} burst process`,
      async () => proc.output().includes("BURST_READY"),
      proc,
      60_000,
    );
  }
  const burstResult = async <T>(i: 0 | 1): Promise<T> => {
    const { part, proc, exited } = burstProcs[i]!;
    await exited;
    const line = proc
      .output()
      .split("\n")
      .find((l) => l.startsWith("BURST_RESULT "));
    if (!line) throw new Error(`the ${part} burst ended without a result:\n${proc.output().slice(-2000)}`);
    return JSON.parse(line.slice("BURST_RESULT ".length)) as T;
  };

  // --- 1. sustained load -----------------------------------------------------------------------------
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const custodyRss = new RssSampler(custody.proc.child.pid!, t0);
  const gatewayRss = new RssSampler(gw.proc.child.pid!, t0);
  const custodyHeap = new HeapSampler(`http://127.0.0.1:${custodyMetricsPort}/metrics`, "custody_", t0);
  const gatewayHeap = new HeapSampler(`${gw.url}/metrics`, "gateway_", t0);
  closers.push(
    () => custodyRss.stop(),
    () => gatewayRss.stop(),
    () => custodyHeap.stop(),
    () => gatewayHeap.stop(),
  );
  const loads = {
    custody: new PacedLoad(o.custodyRate, baseCall, t0),
    dotva: new PacedLoad(o.dotvaRate, () => postDotva(), t0),
    knot: new PacedLoad(o.knotRate, (i) => postAuthenticated(i), t0),
  };
  closers.push(...Object.values(loads).map((l) => () => l.stop()));
  o.log(
    `sustained: custody ${o.custodyRate}/s, Dotva webhooks ${o.dotvaRate}/s, Knot AUTHENTICATED ${o.knotRate}/s for ${o.sustainedSeconds} s`,
  );

  for (let s = 10; s < o.sustainedSeconds; s += 10) {
    await sleep(t0 + s * 1000 - performance.now());
    o.log(
      `  ${s} s: RSS custody ${mib(custodyRss.samples.at(-1)?.bytes)} MiB, gateway ${mib(gatewayRss.samples.at(-1)?.bytes)} MiB`,
    );
  }
  await sleep(t0 + o.sustainedSeconds * 1000 - performance.now());
  const sustainedEnd = now();

  // --- 2. overload burst -------------------------------------------------------------------------------
  o.log(
    `burst: ${o.burst.custodyConcurrency} ReencryptForKnot at once each second over ${o.burst.custodyChannels} connections (worker queue ${o.custodyMaxQueue}), ${o.burst.gatewayConnections} connections posting Dotva webhooks, for ${o.burst.seconds} s`,
  );
  for (const { proc } of burstProcs) proc.child.kill("SIGUSR2");
  const [custodyBurst, gatewayBurst] = await Promise.all([
    burstResult<CustodyBurstResult>(0),
    burstResult<GatewayBurstResult>(1),
  ]);
  const burstEnd = now();
  o.log(
    `  custody burst ${custodyBurst.seconds.toFixed(1)} s, outcomes ${JSON.stringify(custodyBurst.outcomes)}; gateway burst ${gatewayBurst.seconds.toFixed(1)} s, statuses ${JSON.stringify(gatewayBurst.statuses)}, ${gatewayBurst.errors} without answer, p50 ${gatewayBurst.p50Ms} ms p99 ${gatewayBurst.p99Ms} ms`,
  );

  // --- 3. recovery ---------------------------------------------------------------------------------------
  const times = {
    baselineFrom: sustainedEnd - o.recovery.baselineSeconds * 1000,
    baselineTo: sustainedEnd,
    burstEnd,
  };
  const judge = () =>
    Object.fromEntries(
      Object.entries(loads).map(([name, load]) => [name, recoveryVerdict(load.records, times, o.recovery)]),
    ) as Record<keyof typeof loads, RecoveryVerdict>;
  const recoveryDeadline = burstEnd + o.recovery.withinSeconds * 1000;
  while (now() < recoveryDeadline && !Object.values(judge()).every((v) => v.ok)) await sleep(250);
  await Promise.all(Object.values(loads).map((l) => l.stop()));
  const recoveryEnd = now();
  const recovery = judge();
  for (const [name, v] of Object.entries(recovery)) {
    o.log(
      `  ${name}: baseline p50 ${v.baseline.p50.toFixed(1)} ms p99 ${v.baseline.p99.toFixed(1)} ms; first window after the burst p50 ${v.firstWindow.p50.toFixed(1)} ms p99 ${v.firstWindow.p99.toFixed(1)} ms (${v.firstWindow.failed} failed); recovered after ${v.recoveredAfterSeconds ?? "-"} s`,
    );
  }

  // --- 4. every accepted AUTHENTICATED delivered, or its job recorded as failed with a code ----------------
  // A job whose deadline (Knot's 15 s window) passed while custody refused it as overloaded ends failed by
  // design; one that is neither delivered nor failed would be lost.
  const jobState = async (taskId: string): Promise<string> => {
    const r = await fetch(`${gw.url}/v1/tasks/${taskId}`, {
      headers: { authorization: `Bearer ${internalToken}` },
      signal: AbortSignal.timeout(5_000),
    }).catch(() => undefined);
    if (!r?.ok) return `HTTP_${r?.status ?? 0}`;
    const job = ((await r.json()) as { job?: { state: string; errorCode?: string } }).job;
    return job ? (job.state === "failed" ? `failed/${job.errorCode ?? "-"}` : job.state) : "NO_JOB";
  };
  const undelivered = () => {
    const received = new Set(knot.received.map((r) => r.taskId));
    return [...acceptedTasks].filter((id) => !received.has(id));
  };
  const deliveryDeadline = performance.now() + o.deliveryWaitSeconds * 1000;
  let notDelivered: Record<string, number> = {};
  for (;;) {
    const states = await Promise.all(undelivered().map(jobState));
    notDelivered = {};
    for (const state of states) notDelivered[state] = (notDelivered[state] ?? 0) + 1;
    const settled = states.every((state) => state.startsWith("failed/"));
    if (settled || performance.now() >= deliveryDeadline) break;
    await sleep(500);
  }
  const deliveredCount = acceptedTasks.size - undelivered().length;
  const unaccounted = Object.entries(notDelivered).filter(([state]) => !state.startsWith("failed/"));
  const postedTwice = knot.received.length - new Set(knot.received.map((r) => r.taskId)).size;
  for (const sampler of [custodyRss, gatewayRss, custodyHeap, gatewayHeap]) sampler.stop();

  // --- verdicts ------------------------------------------------------------------------------------------
  const sustainedSeconds = sustainedEnd / 1000;
  const memoryBounds = (ceilingBytes: number) => ({
    warmupSeconds: o.warmupSeconds,
    ceilingBytes,
    maxSlopeBytesPerMinute: o.memory.maxSlopeBytesPerMinute,
  });
  const memory: Record<"custody" | "gateway", MemoryVerdict> = {
    custody: memoryVerdict(
      custodyRss.between(0, sustainedSeconds),
      memoryBounds(o.memory.custodyCeilingBytes),
    ),
    gateway: memoryVerdict(
      gatewayRss.between(0, sustainedSeconds),
      memoryBounds(o.memory.gatewayCeilingBytes),
    ),
  };
  const burstMax = (samples: RssSample[]) => Math.max(0, ...samples.map((s) => s.bytes));
  const custodyBurstRss = burstMax(custodyRss.between(sustainedSeconds, recoveryEnd / 1000));
  const gatewayBurstRss = burstMax(gatewayRss.between(sustainedSeconds, recoveryEnd / 1000));
  const verdicts: Verdict[] = [];
  const verdict = (name: string, failures: string[]) =>
    verdicts.push({ name, ok: failures.length === 0, failures });
  // The ceiling holds during the burst too: that is when the container would be killed.
  const overCeiling = (who: string, bytes: number, ceiling: number) =>
    bytes >= ceiling
      ? [`${who} RSS reached ${mib(bytes)} MiB during the burst (ceiling ${mib(ceiling)} MiB)`]
      : [];
  verdict("custody_memory", [
    ...memory.custody.failures,
    ...overCeiling("custody", custodyBurstRss, o.memory.custodyCeilingBytes),
  ]);
  verdict("gateway_memory", [
    ...memory.gateway.failures,
    ...overCeiling("gateway", gatewayBurstRss, o.memory.gatewayCeilingBytes),
  ]);
  const unexpected = (counts: Record<string, number>, allowed: ReadonlySet<string>) =>
    Object.entries(counts).filter(([code]) => !allowed.has(code));
  verdict(
    "sustained_all_succeeded",
    Object.entries(loads).flatMap(([name, load]) =>
      unexpected(load.codesBetween(0, sustainedEnd), new Set(["OK"])).map(
        ([code, n]) => `${name}: ${n} calls ended ${code} at the base rate`,
      ),
    ),
  );
  const custodyRefused = custodyBurst.outcomes[CUSTODY_REFUSED] ?? 0;
  verdict("custody_burst_refused_as_overloaded", [
    ...(custodyRefused === 0 ? ["nothing in the burst was refused: it did not overload custody"] : []),
    ...unexpected(custodyBurst.outcomes, ALLOWED_DURING_BURST.burst).map(
      ([code, n]) =>
        `${n} burst calls ended ${code} (only OK, ${CUSTODY_REFUSED} or ${CUSTODY_EXPIRED} are allowed)`,
    ),
    ...unexpected(loads.custody.codesBetween(sustainedEnd, burstEnd), ALLOWED_DURING_BURST.custodyBase).map(
      ([code, n]) => `${n} base-rate calls during the burst ended ${code}`,
    ),
  ]);
  verdict("gateway_burst_answered_200_or_503", [
    ...Object.entries(gatewayBurst.statuses)
      .filter(([code]) => code !== "200" && code !== "503")
      .map(([code, n]) => `${n} burst webhooks answered ${code}`),
    ...(gatewayBurst.errors > 0
      ? [`${gatewayBurst.errors} burst webhooks got no answer (${gatewayBurst.timeouts} of them timed out)`]
      : []),
    ...(gatewayBurst.answered === 0 ? ["the gateway burst sent nothing"] : []),
    ...(["dotva", "knot"] as const).flatMap((name) =>
      unexpected(loads[name].codesBetween(sustainedEnd, burstEnd), ALLOWED_DURING_BURST.http).map(
        ([code, n]) => `${name}: ${n} base-rate webhooks during the burst ended ${code}`,
      ),
    ),
  ]);
  const alive = (p: Proc) => p.child.exitCode === null && p.child.signalCode === null;
  verdict("processes_alive", [
    ...(alive(custody.proc)
      ? []
      : [`custody exited (${custody.proc.child.exitCode ?? custody.proc.child.signalCode})`]),
    ...(alive(gw.proc) ? [] : [`gateway exited (${gw.proc.child.exitCode ?? gw.proc.child.signalCode})`]),
  ]);
  for (const [name, v] of Object.entries(recovery)) verdict(`${name}_latency_recovered`, [...v.failures]);
  verdict("authenticated_none_lost", [
    ...unaccounted.map(
      ([state, n]) =>
        `${n} accepted AUTHENTICATED neither reached Knot nor failed with a recorded code within ${o.deliveryWaitSeconds} s of the end (job ${state})`,
    ),
    ...(acceptedTasks.size === 0 ? ["no AUTHENTICATED was accepted"] : []),
  ]);

  const pct = (p: Percentiles) => ({ n: p.n, p50_ms: round(p.p50, 1), p99_ms: round(p.p99, 1) });
  const rssFigures = (
    name: string,
    sampler: RssSampler,
    v: MemoryVerdict,
    ceiling: number,
    burstBytes: number,
  ) => ({
    [`${name}_rss_start_mib`]: round((sampler.samples[0]?.bytes ?? Number.NaN) / MIB, 1),
    [`${name}_rss_max_mib`]: round(v.maxBytes / MIB, 1),
    [`${name}_rss_end_of_sustained_mib`]: round(
      (sampler.between(0, sustainedSeconds).at(-1)?.bytes ?? Number.NaN) / MIB,
      1,
    ),
    [`${name}_rss_slope_mib_per_min`]: round(v.slopeBytesPerMinute / MIB, 3),
    [`${name}_rss_burst_max_mib`]: round(burstBytes / MIB, 1),
    [`${name}_rss_ceiling_mib`]: round(ceiling / MIB, 0),
  });
  const heapFigures = (name: string, sampler: HeapSampler) => {
    const fitted = sampler.samples.filter(
      (s) => s.t >= Math.max(o.warmupSeconds, sustainedSeconds / 2) && s.t < sustainedSeconds,
    );
    return {
      [`${name}_heap_used_end_of_sustained_mib`]: round((fitted.at(-1)?.bytes ?? Number.NaN) / MIB, 1),
      [`${name}_heap_used_slope_mib_per_min`]: round(
        (60 * leastSquaresSlope(fitted.map((s) => ({ x: s.t, y: s.bytes })))) / MIB,
        3,
      ),
    };
  };
  // Per isolate: full collections, live heap after the first and the last, and its slope over the run.
  const gcFigures = (name: string, proc: Proc) =>
    o.traceGc
      ? {
          [`${name}_mark_compacts`]: [...markCompacts(proc.output()).values()].map((list) => ({
            count: list.length,
            first_after_mib: round(list[0]!.afterBytes / MIB, 1),
            last_after_mib: round(list.at(-1)!.afterBytes / MIB, 1),
            slope_mib_per_min: round(
              (60_000 * leastSquaresSlope(list.map((m) => ({ x: m.ms, y: m.afterBytes })))) / MIB,
              2,
            ),
          })),
        }
      : {};
  const figures: Record<string, unknown> = {
    load: "custody+gateway",
    custody_memory_env: manifestMemoryEnv("custody"),
    sustained_seconds: o.sustainedSeconds,
    warmup_seconds: o.warmupSeconds,
    custody_rate_per_s: o.custodyRate,
    dotva_rate_per_s: o.dotvaRate,
    knot_rate_per_s: o.knotRate,
    calls_sustained: Object.fromEntries(
      Object.entries(loads).map(([name, load]) => [
        name,
        load.records.filter((r) => r.start < sustainedEnd).length,
      ]),
    ),
    ...rssFigures("custody", custodyRss, memory.custody, o.memory.custodyCeilingBytes, custodyBurstRss),
    ...rssFigures("gateway", gatewayRss, memory.gateway, o.memory.gatewayCeilingBytes, gatewayBurstRss),
    max_slope_mib_per_min: round(o.memory.maxSlopeBytesPerMinute / MIB, 3),
    // Diagnostic, not a verdict: the main isolate's used heap (every 5 s) over the same second half.
    ...heapFigures("custody", custodyHeap),
    ...heapFigures("gateway", gatewayHeap),
    ...gcFigures("custody", custody.proc),
    ...gcFigures("gateway", gw.proc),
    burst_seconds: round((burstEnd - sustainedEnd) / 1000, 1),
    custody_burst_seconds: round(custodyBurst.seconds, 1),
    gateway_burst_seconds: round(gatewayBurst.seconds, 1),
    custody_max_queue: o.custodyMaxQueue,
    custody_burst_per_wave: o.burst.custodyConcurrency,
    custody_burst_outcomes: custodyBurst.outcomes,
    custody_burst_refusal_messages: custodyBurst.refusalMessages,
    gateway_burst_connections: o.burst.gatewayConnections,
    gateway_burst_answered: gatewayBurst.answered,
    gateway_burst_statuses: gatewayBurst.statuses,
    gateway_burst_no_answer: gatewayBurst.errors,
    gateway_burst_p50_ms: gatewayBurst.p50Ms,
    gateway_burst_p99_ms: gatewayBurst.p99Ms,
    base_calls_during_burst: Object.fromEntries(
      Object.entries(loads).map(([name, load]) => [name, load.codesBetween(sustainedEnd, burstEnd)]),
    ),
    recovery: Object.fromEntries(
      Object.entries(recovery).map(([name, v]) => [
        name,
        {
          baseline: pct(v.baseline),
          limit_p50_ms: round(v.limit.p50, 1),
          limit_p99_ms: round(v.limit.p99, 1),
          first_window: { ...pct(v.firstWindow), failed: v.firstWindow.failed },
          recovered_after_s: v.recoveredAfterSeconds ?? null,
        },
      ]),
    ),
    recovery_within_s: o.recovery.withinSeconds,
    authenticated_accepted: acceptedTasks.size,
    authenticated_delivered: deliveredCount,
    authenticated_not_delivered: notDelivered,
    knot_card_posted_twice: postedTwice,
    load_average_1m_before: round(load1Before),
    load_average_1m_after: round(loadavg()[0]!),
  };
  return { ok: verdicts.every((v) => v.ok), verdicts, figures };
}
