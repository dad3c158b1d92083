/**
 * npm run bench:custody [-- --store file|pkcs11] [--seconds 5] [--rounds 3] [--concurrency 64]
 *                        [--workers N] [--processes P] [--cpu-prof DIR] [--echo-one-by-one]
 *
 * How much CPU custody spends per ReencryptForKnot beyond the two costs it cannot avoid: the RSA
 * private operation and the gRPC/mTLS transport. All measured in the same run on this machine, in rounds
 * (the cores are shared, so a drift in load hits every measure of a round alike):
 *   - rsa_us_per_op: `openssl speed -seconds 3 rsa2048`, one core; openssl divides by its own user CPU
 *     time, so the figure is CPU per private op, not wall time;
 *   - echo_cpu_us_per_call: a grpc-js server (src/tools/bench/echo-server.ts) with the same proto, credentials and
 *     server options, answering each call at once with a real custody response, driven by the same
 *     client at the same concurrency with the same requests;
 *   - custody_cpu_us_per_call: custody (src/custody/main.ts) as child processes, driven the same way:
 *     --workers N is CUSTODY_WORKERS (default 2; 0 = inline on the main thread), --processes P how many
 *     custody processes (default 1 with workers, the number of cores inline: one process per core, as
 *     inline mode is deployed), reached through one channel that balances round_robin over their
 *     addresses, as the gateway's custody client does; their CPU is summed;
 *   - PKCS#11 store only: the bare pkcs11js loop's CPU per op on the same SoftHSM2 token
 *     (pkcs11_bare_cpu_us_per_op);
 *   - the core floor (core_floor_cpu_us_per_call): the echo server running the re-encryption core
 *     inline for each call with custody's key store (the same configuration: key file or token) and
 *     nothing else custody does (echo-server.ts, ECHO_CORE), driven the same way. What any custody on
 *     grpc-js and node:crypto spends at least: core_floor_efficiency, the efficiency below computed
 *     for the floor instead of custody, is the highest this stack reaches here, and
 *     custody_vs_core_floor, the floor's CPU over custody's, is what custody's checks, audit line,
 *     limits and scheduling leave (1 = they cost nothing).
 * Every server runs under custody's production heap and arena bounds (NODE_OPTIONS and
 * MALLOC_ARENA_MAX from deploy/kubernetes/custody.yaml). A server's CPU is utime + stime of its process
 * from /proc/<pid>/stat (all threads: gRPC main thread, re-encryption workers, the token library) over
 * the window from the first call sent to the last answer, divided by the calls completed in it. Then:
 *     custody_cpu_efficiency = (rsa_us_per_op + echo_cpu_us_per_call) / custody_cpu_us_per_call
 *     pkcs11_cpu_efficiency  = (pkcs11_bare_cpu_us_per_op + echo_cpu_us_per_call) / custody_cpu_us_per_call
 * and, after the rounds, latency paced open-loop at half the peak rate custody reached at 64 in flight,
 * as the client sees it and as custody's audit lines record it (handler start to answer).
 * With --cpu-prof DIR, custody runs under `node --cpu-prof` (one profile per thread, written when it
 * exits); its figures then include the profiler's cost. With --echo-one-by-one (diagnostic), the echo
 * server answers one call per 1 ms tick, as custody's workers do, instead of a whole burst at once; the
 * echo figure is then no longer the reference of the issue's ratio. Ends with one JSON line.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { credentials } from "@grpc/grpc-js";
import { CompactEncrypt } from "jose";
import type { CardCustodyClient } from "../../contract/generated/custody/v1/CardCustody.js";
import type { ReencryptForKnotResponse__Output } from "../../contract/generated/custody/v1/ReencryptForKnotResponse.js";
import { loadCustodyProto, loadHealthProto } from "../../contract/proto.js";
import { fingerprintForms } from "../../core/crypto/fingerprint.js";
import { CUSTODY_SERVICE_CONFIG } from "../../gateway/custody-client.js";
import { GATEWAY_SPIFFE, makeDevPki } from "../dev-pki.js";
import { manifestMemoryEnv } from "../load/manifest-limits.js";
import { freePort } from "../processes.js";
import { SAMPLE_CARDHOLDER } from "../simulators/sample-cardholder.js";
import { BENCH_STORES } from "./custody-stores.js";
import { opensslRsa2048PrivateOpsPerSecond } from "./openssl-speed.js";
import { processCpuMicros, threadCpuMicros } from "./proc-cpu.js";

const { values: args } = parseArgs({
  options: {
    store: { type: "string", default: "file" },
    seconds: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "64" },
    "cpu-prof": { type: "string" },
    "echo-one-by-one": { type: "boolean", default: false },
    workers: { type: "string", default: "2" },
    processes: { type: "string" },
  },
});
const WORKERS = Number(args.workers);
const PROCESSES = Number(args.processes ?? (WORKERS === 0 ? availableParallelism() : 1));
if (!Number.isInteger(WORKERS) || WORKERS < 0) throw new Error("--workers must be an integer >= 0");
if (!Number.isInteger(PROCESSES) || PROCESSES < 1) throw new Error("--processes must be an integer >= 1");
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const CONCURRENCY = Number(args.concurrency);
const OPENSSL_SECONDS = 3;
const storeEntry = BENCH_STORES[args.store!];
if (!storeEntry) throw new Error(`--store must be one of ${Object.keys(BENCH_STORES).join(", ")}`);

// A fresh machine: say what is missing and how to get it rather than fail deep inside a phase.
const missing = [storeEntry.missing()];
try {
  execFileSync("openssl", ["version"], { stdio: "ignore" });
} catch {
  missing.push("openssl (Debian openssl)");
}
if (missing.some(Boolean)) {
  console.error(
    `bench:custody needs ${missing.filter(Boolean).join(" and ")}: run \`bash scripts/provision.sh\` as root (it installs the Debian packages the tests and benchmarks use), then run the benchmark again.`,
  );
  process.exit(2);
}

const load1Before = loadavg()[0]!;
const work = mkdtempSync(join(tmpdir(), "bench-custody-"));
const children: ChildProcess[] = [];
process.on("exit", () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
});

const pki = makeDevPki(join(work, "pki"));
const dotva = generateKeyPairSync("rsa", { modulusLength: 2048 });
const fingerprint = fingerprintForms(dotva.publicKey).canonical;
const knotJwk = readFileSync(pki.knotJwk, "utf8");
const secrets = new TextEncoder().encode(
  JSON.stringify({
    pan: "4242424242424242",
    cvv: "123",
    expiry_month: 8,
    expiry_year: new Date().getUTCFullYear() + 3,
  }),
);
// Distinct ciphertexts, made up front: the load generator then spends its CPU on gRPC only.
const jwes = await Promise.all(
  Array.from({ length: 512 }, () =>
    new CompactEncrypt(secrets)
      .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM" })
      .encrypt(dotva.publicKey),
  ),
);

const round = (x: number, digits = 3) => Number(x.toFixed(digits));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

// --- servers as child processes ------------------------------------------------------------------
const nodeArgs = (entry: string, profile: boolean) => [
  ...(profile ? ["--cpu-prof", `--cpu-prof-dir=${resolve(args["cpu-prof"]!)}`] : []),
  "--import",
  "tsx",
  fileURLToPath(new URL(entry, import.meta.url)),
];
const startChild = (
  entry: string,
  env: Record<string, string>,
  opts: { profile?: boolean; stdout: "ignore" | "pipe" },
) => {
  const child = spawn(process.execPath, nodeArgs(entry, opts.profile ?? false), {
    // Every server under the heap and arena bounds custody has in production (its Kubernetes manifest):
    // V8 would otherwise size its young generation from this machine's memory, and pauses with it.
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...manifestMemoryEnv("custody"), ...env },
    stdio: ["ignore", opts.stdout, "inherit"],
  });
  children.push(child);
  return child;
};
const stopChild = async (child: ChildProcess) => {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
};

const channelOptions = { "grpc.ssl_target_name_override": "localhost" };
const channelCredentials = credentials.createSsl(
  readFileSync(pki.caCert),
  readFileSync(pki.gateway.key),
  readFileSync(pki.gateway.cert),
);
const CardCustody = loadCustodyProto().custody.v1.CardCustody;

async function waitServing(port: number, child: ChildProcess): Promise<void> {
  const health = new (loadHealthProto().grpc.health.v1.Health)(
    `127.0.0.1:${port}`,
    channelCredentials,
    channelOptions,
  );
  try {
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error("custody exited during start-up");
      const serving = await new Promise<boolean>((done) =>
        health.Check({ service: "" }, { deadline: Date.now() + 1000 }, (err, res) =>
          done(!err && res?.status === "SERVING"),
        ),
      );
      if (serving) return;
      if (i > 150) throw new Error("custody did not become ready");
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    health.close();
  }
}

const store = await storeEntry.setup(work, dotva.privateKey);
const custodyPorts: number[] = [];
const custodies: ChildProcess[] = [];
for (let i = 0; i < PROCESSES; i++) {
  const port = await freePort();
  custodyPorts.push(port);
  custodies.push(startCustodyProcess(port));
}
for (let i = 0; i < PROCESSES; i++) await waitServing(custodyPorts[i]!, custodies[i]!);
const custodyPids = custodies.map((c) => c.pid!);

function auditFile(port: number): string {
  return join(work, `custody-audit-${port}.jsonl`);
}

/**
 * Custody's own time for the calls it finished since `since`: the duration_ms of its audit lines, from
 * the handler's start to its answer. Beside the client's latency it tells custody's tail from the
 * time the load generator, sharing the cores, waited to send or to read.
 */
function handlerMillisSince(since: Date): number[] {
  const after = since.toISOString();
  return custodyPorts
    .flatMap((port) => readFileSync(auditFile(port), "utf8").trimEnd().split("\n"))
    .map((line) => JSON.parse(line) as { event: string; ts: string; duration_ms?: number })
    .filter((line) => line.event === "reencrypt" && line.ts >= after)
    .map((line) => line.duration_ms!)
    .sort((a, b) => a - b);
}

/** Custody's environment for one process listening on `port`, as the bench runs it. */
function custodyEnv(port: number): Record<string, string> {
  return {
    CUSTODY_LISTEN: `127.0.0.1:${port}`,
    CUSTODY_TLS_CERT: pki.server.cert,
    CUSTODY_TLS_KEY: pki.server.key,
    CUSTODY_TLS_CLIENT_CA: pki.caCert,
    CUSTODY_ALLOW_REENCRYPT: `uri:${GATEWAY_SPIFFE}`,
    CUSTODY_ALLOW_HEALTH: `uri:${GATEWAY_SPIFFE}`,
    CUSTODY_RECIPIENT_PINS: readFileSync(pki.knotThumbprint, "utf8").trim(),
    CUSTODY_RATE_PER_SECOND: "1000000",
    CUSTODY_RATE_BURST: "1000000",
    CUSTODY_MAX_IN_FLIGHT_PER_CALLER: "4096",
    CUSTODY_WORKERS: String(WORKERS),
    // The audit chain as in production: one synchronous line per call, one file per process.
    CUSTODY_AUDIT_FILE: auditFile(port),
    ...store.env,
  };
}

function startCustodyProcess(port: number): ChildProcess {
  return startChild(
    "../../custody/main.ts",
    custodyEnv(port),
    // stdout is custody's operator log (one line per call too) to /dev/null.
    { profile: args["cpu-prof"] !== undefined, stdout: "ignore" },
  );
}
// One channel over every custody address, round_robin, as the gateway's custody client.
const custodyClient = new CardCustody(
  `ipv4:${custodyPorts.map((port) => `127.0.0.1:${port}`).join(",")}`,
  channelCredentials,
  { ...channelOptions, "grpc.service_config": CUSTODY_SERVICE_CONFIG },
) as unknown as CardCustodyClient;

let next = 0;
function call(client: CardCustodyClient): Promise<{ ms: number; res: ReencryptForKnotResponse__Output }> {
  const started = performance.now();
  const jwe = jwes[next++ % jwes.length]!;
  return new Promise((done, reject) =>
    client.ReencryptForKnot(
      {
        secrets_jwe: jwe,
        key_fingerprint: fingerprint,
        knot_jwk: knotJwk,
        user: SAMPLE_CARDHOLDER,
        request_id: "bench",
      },
      { deadline: Date.now() + 30_000 },
      (err, res) => (err || !res ? reject(err) : done({ ms: performance.now() - started, res })),
    ),
  );
}

// The echo server answers with a real custody response, so both directions carry the same bytes.
const sample = (await call(custodyClient)).res;
const responseFile = join(work, "echo-response.json");
writeFileSync(responseFile, JSON.stringify(sample));
async function startEchoServer(extraEnv: Record<string, string>, port?: number) {
  port ??= await freePort();
  const child = startChild(
    "./echo-server.ts",
    {
      ECHO_LISTEN: `127.0.0.1:${port}`,
      ECHO_TLS_CERT: pki.server.cert,
      ECHO_TLS_KEY: pki.server.key,
      ECHO_TLS_CLIENT_CA: pki.caCert,
      ECHO_RESPONSE: responseFile,
      ...extraEnv,
    },
    { stdout: "pipe" },
  );
  await new Promise<void>((ready, failed) => {
    child.stdout!.once("data", () => ready());
    child.once("exit", () => failed(new Error("echo server exited during start-up")));
  });
  const client = new CardCustody(
    `127.0.0.1:${port}`,
    channelCredentials,
    channelOptions,
  ) as unknown as CardCustodyClient;
  return { child, client };
}
const echo = await startEchoServer(args["echo-one-by-one"] ? { ECHO_ONE_BY_ONE: "1" } : {});
// The core floor: the echo server running the re-encryption core with custody's key store (its
// configuration, hence the same store, key and token sessions) and nothing else custody does per call.
const floorPort = await freePort();
const coreFloor = await startEchoServer({ ...custodyEnv(floorPort), ECHO_CORE: "1" }, floorPort);
{
  // A floor that answered something else would measure something else: same card, same recipient header.
  const answer = (await call(coreFloor.client)).res;
  if (
    answer.card_last4 !== sample.card_last4 ||
    answer.card_bin !== sample.card_bin ||
    answer.jwe.split(".")[0] !== sample.jwe.split(".")[0]
  ) {
    throw new Error("the core floor server's answer differs from custody's");
  }
}

/**
 * Closed loop, `concurrency` calls in flight for `seconds`; the window runs from before the first call
 * to after the last answer, so every call counted started and ended inside it.
 */
async function closedLoop(client: CardCustodyClient, pids: readonly number[], seconds: number) {
  const latencies: number[] = [];
  const serverCpu0 = sum(pids.map(processCpuMicros));
  const threads0 = threadsOf(pids);
  const clientCpu0 = process.cpuUsage();
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) latencies.push((await call(client)).ms);
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  const serverCpu = sum(pids.map(processCpuMicros)) - serverCpu0;
  const threads = [...threadsOf(pids)].map(
    ([name, us]) => [name, (us - (threads0.get(name) ?? 0)) / latencies.length] as const,
  );
  const clientCpu = process.cpuUsage(clientCpu0);
  latencies.sort((a, b) => a - b);
  return {
    calls: latencies.length,
    rate: latencies.length / elapsed,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    serverCpuPerCall: serverCpu / latencies.length,
    clientCpuPerCall: (clientCpu.user + clientCpu.system) / latencies.length,
    /** The server's CPU per call by thread name, e.g. "node 700 µs, V8 DefaultWorke 40 µs". */
    threads: threads
      .filter(([, us]) => us >= 1)
      .sort((a, b) => b[1] - a[1])
      .map(([name, us]) => `${name} ${us.toFixed(0)} µs`)
      .join(", "),
  };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** CPU by thread name, summed over the processes. */
function threadsOf(pids: readonly number[]): Map<string, number> {
  const total = new Map<string, number>();
  for (const pid of pids)
    for (const [name, us] of threadCpuMicros(pid)) total.set(name, (total.get(name) ?? 0) + us);
  return total;
}

/** Calls started on a fixed schedule whatever the answers do (open loop), so queueing shows in latency. */
async function openLoop(client: CardCustodyClient, seconds: number, ratePerSecond: number) {
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  const start = performance.now();
  const total = Math.floor(seconds * ratePerSecond);
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / ratePerSecond;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(call(client).then(({ ms }) => void latencies.push(ms)));
  }
  await Promise.all(pending);
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), calls: latencies.length };
}

console.log(
  `bench:custody on ${process.version}, ${availableParallelism()} cores, store ${args.store}, ${PROCESSES} custody process(es) with CUSTODY_WORKERS=${WORKERS}, load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`,
);
// Warm-up: TLS sessions, JIT, the workers' key copies and recipient caches, the token's sessions.
await closedLoop(echo.client, [echo.child.pid!], 1);
await closedLoop(coreFloor.client, [coreFloor.child.pid!], 2);
await closedLoop(custodyClient, custodyPids, 2);

interface Round {
  rsa: number;
  echo: Awaited<ReturnType<typeof closedLoop>>;
  custody: Awaited<ReturnType<typeof closedLoop>>;
  coreFloor: Awaited<ReturnType<typeof closedLoop>>;
  bare?: { cpuMicrosPerOp: number; opsPerSecond: number; sessions: number; mechanism: string };
  efficiency: number;
  /** The efficiency the core floor reaches against the same reference: the most this stack allows. */
  floorEfficiency: number;
}
const rounds: Round[] = [];
for (let r = 1; r <= ROUNDS; r++) {
  const rsa = 1e6 / opensslRsa2048PrivateOpsPerSecond({ seconds: OPENSSL_SECONDS });
  const echoRun = await closedLoop(echo.client, [echo.child.pid!], SECONDS);
  const floorRun = await closedLoop(coreFloor.client, [coreFloor.child.pid!], SECONDS);
  const bare = await store.bareReference?.(SECONDS);
  const custodyRun = await closedLoop(custodyClient, custodyPids, SECONDS);
  const floor = (bare ? bare.cpuMicrosPerOp : rsa) + echoRun.serverCpuPerCall;
  rounds.push({
    rsa,
    echo: echoRun,
    custody: custodyRun,
    coreFloor: floorRun,
    efficiency: floor / custodyRun.serverCpuPerCall,
    floorEfficiency: floor / floorRun.serverCpuPerCall,
    ...(bare ? { bare } : {}),
  });
  console.log(
    `round ${r}: openssl rsa2048 ${rsa.toFixed(0)} µs/op | echo ${echoRun.serverCpuPerCall.toFixed(0)} µs CPU/call (${echoRun.rate.toFixed(0)}/s)` +
      (bare
        ? ` | bare pkcs11 ${bare.cpuMicrosPerOp.toFixed(0)} µs CPU/op (${bare.opsPerSecond.toFixed(0)}/s)`
        : "") +
      ` | core floor ${floorRun.serverCpuPerCall.toFixed(0)} µs CPU/call` +
      ` | custody ${custodyRun.serverCpuPerCall.toFixed(0)} µs CPU/call (${custodyRun.rate.toFixed(0)}/s, p50 ${custodyRun.p50.toFixed(1)} ms, p99 ${custodyRun.p99.toFixed(1)} ms; client ${custodyRun.clientCpuPerCall.toFixed(0)} µs/call) | efficiency ${(floor / custodyRun.serverCpuPerCall).toFixed(3)}`,
  );
  console.log(
    `  by thread: echo ${echoRun.threads} | core floor ${floorRun.threads} | custody ${custodyRun.threads}`,
  );
}

const peak = median(rounds.map((r) => r.custody.rate));
const halfStart = new Date();
const half = await openLoop(custodyClient, SECONDS, peak / 2);
const halfHandler = handlerMillisSince(halfStart);
console.log(
  `custody at half its peak (${(peak / 2).toFixed(0)}/s, open loop): p50 ${half.p50.toFixed(2)} ms  p99 ${half.p99.toFixed(2)} ms; in custody's handler (audit lines): p50 ${percentile(halfHandler, 0.5).toFixed(2)} ms  p99 ${percentile(halfHandler, 0.99).toFixed(2)} ms`,
);
custodyClient.close();
for (const server of [echo, coreFloor]) server.client.close();
await Promise.all([...custodies.map(stopChild), stopChild(echo.child), stopChild(coreFloor.child)]);

const efficiencies = rounds.map((r) => r.efficiency);
const efficiencyName = store.bareReference ? "pkcs11_cpu_efficiency" : "custody_cpu_efficiency";
const bareRounds = rounds.flatMap((r) => (r.bare ? [r.bare] : []));
console.log(
  JSON.stringify({
    bench: "custody",
    store: args.store,
    cores: availableParallelism(),
    concurrency: CONCURRENCY,
    custody_workers: WORKERS,
    custody_processes: PROCESSES,
    rounds: ROUNDS,
    seconds_per_measure: SECONDS,
    rsa_us_per_op: round(median(rounds.map((r) => r.rsa)), 1),
    echo_cpu_us_per_call: round(median(rounds.map((r) => r.echo.serverCpuPerCall)), 1),
    echo_calls_per_s: round(median(rounds.map((r) => r.echo.rate)), 1),
    ...(bareRounds.length > 0
      ? {
          pkcs11_sessions: bareRounds[0]!.sessions,
          pkcs11_mechanism: bareRounds[0]!.mechanism,
          pkcs11_bare_cpu_us_per_op: round(median(bareRounds.map((b) => b.cpuMicrosPerOp)), 1),
          pkcs11_bare_ops_per_s: round(median(bareRounds.map((b) => b.opsPerSecond)), 1),
        }
      : {}),
    custody_cpu_us_per_call: round(median(rounds.map((r) => r.custody.serverCpuPerCall)), 1),
    custody_calls_per_s: round(peak, 1),
    custody_p50_ms: round(median(rounds.map((r) => r.custody.p50)), 2),
    custody_p99_ms: round(median(rounds.map((r) => r.custody.p99)), 2),
    client_cpu_us_per_call: round(median(rounds.map((r) => r.custody.clientCpuPerCall)), 1),
    core_floor_cpu_us_per_call: round(median(rounds.map((r) => r.coreFloor.serverCpuPerCall)), 1),
    // The highest custody_cpu_efficiency (pkcs11_cpu_efficiency) any custody on grpc-js and node:crypto
    // reaches here with this store, and what custody's own checks and records leave of the floor (1 =
    // they cost nothing).
    core_floor_efficiency: round(median(rounds.map((r) => r.floorEfficiency))),
    custody_vs_core_floor: round(
      median(rounds.map((r) => r.coreFloor.serverCpuPerCall / r.custody.serverCpuPerCall)),
    ),
    [efficiencyName]: round(median(efficiencies)),
    [`${efficiencyName}_min`]: round(Math.min(...efficiencies)),
    [`${efficiencyName}_max`]: round(Math.max(...efficiencies)),
    half_peak_rate_per_s: round(peak / 2, 1),
    half_peak_p50_ms: round(half.p50, 2),
    half_peak_p99_ms: round(half.p99, 2),
    half_peak_handler_p50_ms: round(percentile(halfHandler, 0.5), 2),
    half_peak_handler_p99_ms: round(percentile(halfHandler, 0.99), 2),
    cpu_profiled: args["cpu-prof"] !== undefined,
    echo_one_by_one: args["echo-one-by-one"],
    load_average_1m_before: round(load1Before, 2),
    load_average_1m_after: round(loadavg()[0]!, 2),
  }),
);
process.exit(0);
