/**
 * npm run bench:custody [-- --store file] [--seconds 5] [--concurrency 64]
 *
 * End-to-end ReencryptForKnot over mTLS against a custody process started here (one persistent
 * channel, many calls in flight), and in the same run the references:
 *   - the in-process worker pool rate (the service's Reencryptor without gRPC);
 *   - `openssl speed -multi <cores> -seconds 3 rsa2048` private ops/s (the physical ceiling);
 *   - a naive single-thread jose compactDecrypt + CompactEncrypt loop.
 * Then latency at half the measured peak rate, paced open-loop. Ends with one JSON line.
 */
import { spawn } from "node:child_process";
import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { credentials } from "@grpc/grpc-js";
import { CompactEncrypt, compactDecrypt } from "jose";
import { GATEWAY_SPIFFE, makeDevPki } from "../scripts/dev-pki.js";
import { fingerprintForms } from "../src/crypto/fingerprint.js";
import { parseKnotUser } from "../src/custody/card/knot-user.js";
import { Reencryptor } from "../src/custody/reencryptor.js";
import { loadCustodyProto, loadHealthProto } from "../src/shared/proto.js";
import { freePort } from "../src/simulators/processes.js";
import { SAMPLE_CARDHOLDER } from "../src/simulators/sample-cardholder.js";
import { BENCH_STORE_REFERENCES, BENCH_STORES } from "./custody-stores.js";
import { opensslRsa2048PrivateOpsPerSecond } from "./openssl-speed.js";

const { values: args } = parseArgs({
  options: {
    store: { type: "string", default: "file" },
    seconds: { type: "string", default: "5" },
    concurrency: { type: "string", default: "64" },
  },
});
const SECONDS = Number(args.seconds);
const CONCURRENCY = Number(args.concurrency);
const CORES = availableParallelism();
const setupStore = BENCH_STORES[args.store!];
if (!setupStore) throw new Error(`--store must be one of ${Object.keys(BENCH_STORES).join(", ")}`);

const work = mkdtempSync(join(tmpdir(), "bench-custody-"));
const pki = makeDevPki(join(work, "pki"));
const dotva = generateKeyPairSync("rsa", { modulusLength: 2048 });
const fingerprint = fingerprintForms(dotva.publicKey).canonical;
const knotJwk = readFileSync(pki.knotJwk, "utf8");
const knotPublic = createPublicKey(createPrivateKey(readFileSync(pki.knotPrivateKey)));
const secrets = new TextEncoder().encode(
  JSON.stringify({ pan: "4242424242424242", cvv: "123", expiry_month: 8, expiry_year: 2030 }),
);
const encryptSecrets = () =>
  new CompactEncrypt(secrets)
    .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM" })
    .encrypt(dotva.publicKey);
// Distinct ciphertexts, made up front: the load generator then spends its CPU on gRPC only.
const jwes = await Promise.all(Array.from({ length: 512 }, encryptSecrets));

const round = (x: number, digits = 3) => Number(x.toFixed(digits));
const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
const log = (line: string) => console.log(line);

// --- the custody process -------------------------------------------------------------------------
const port = await freePort();
const storeEnv = await setupStore(work, dotva.privateKey);
const main = fileURLToPath(new URL("../src/custody/main.ts", import.meta.url));
const custody = spawn(process.execPath, ["--import", "tsx", main], {
  env: {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    CUSTODY_LISTEN: `127.0.0.1:${port}`,
    CUSTODY_TLS_CERT: pki.server.cert,
    CUSTODY_TLS_KEY: pki.server.key,
    CUSTODY_TLS_CLIENT_CA: pki.caCert,
    CUSTODY_ALLOW_REENCRYPT: `uri:${GATEWAY_SPIFFE}`,
    CUSTODY_RECIPIENT_PINS: readFileSync(pki.knotThumbprint, "utf8").trim(),
    CUSTODY_RATE_PER_SECOND: "1000000",
    CUSTODY_RATE_BURST: "1000000",
    CUSTODY_MAX_IN_FLIGHT_PER_CALLER: "4096",
    ...storeEnv,
  },
  // The audit log is written as in production (one line per call) and discarded here.
  stdio: ["ignore", "ignore", "inherit"],
});
const stopCustody = () => custody.kill("SIGTERM");
process.on("exit", stopCustody);

const channelOptions = { "grpc.ssl_target_name_override": "localhost" };
const channelCredentials = credentials.createSsl(
  readFileSync(pki.caCert),
  readFileSync(pki.gateway.key),
  readFileSync(pki.gateway.cert),
);
const health = new (loadHealthProto().grpc.health.v1.Health)(
  `127.0.0.1:${port}`,
  channelCredentials,
  channelOptions,
);
for (let i = 0; ; i++) {
  const serving = await new Promise<boolean>((resolve) =>
    health.Check({ service: "" }, { deadline: Date.now() + 1000 }, (err, res) =>
      resolve(!err && res?.status === "SERVING"),
    ),
  );
  if (serving) break;
  if (i > 100) throw new Error("custody did not become ready");
  await new Promise((r) => setTimeout(r, 200));
}
health.close();
const client = new (loadCustodyProto().custody.v1.CardCustody)(
  `127.0.0.1:${port}`,
  channelCredentials,
  channelOptions,
);

let next = 0;
function call(): Promise<number> {
  const started = performance.now();
  const jwe = jwes[next++ % jwes.length]!;
  return new Promise((resolve, reject) =>
    client.ReencryptForKnot(
      {
        secrets_jwe: jwe,
        key_fingerprint: fingerprint,
        knot_jwk: knotJwk,
        user: SAMPLE_CARDHOLDER,
        request_id: "bench",
      },
      { deadline: Date.now() + 10_000 },
      (err) => (err ? reject(err) : resolve(performance.now() - started)),
    ),
  );
}

async function closedLoop(seconds: number, concurrency: number) {
  const latencies: number[] = [];
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) latencies.push(await call());
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    rate: latencies.length / elapsed,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
  };
}

/** Calls started on a fixed schedule whatever the answers do (open loop), so queueing shows in latency. */
async function openLoop(seconds: number, ratePerSecond: number) {
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  const start = performance.now();
  const total = Math.floor(seconds * ratePerSecond);
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / ratePerSecond;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    pending.push(call().then((ms) => void latencies.push(ms)));
  }
  await Promise.all(pending);
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), calls: latencies.length };
}

// --- references ----------------------------------------------------------------------------------
async function poolRate(seconds: number): Promise<number> {
  const pool = new Reencryptor({ workers: CORES, maxQueue: 100_000 });
  await pool.warmUp();
  // What the file store hands a call: the private KeyObject travels with the job.
  const access = { kind: "in-worker" as const, privateKey: dotva.privateKey, fingerprint, generation: 1 };
  const user = parseKnotUser(SAMPLE_CARDHOLDER);
  let count = 0;
  let i = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: CORES * 8 }, async () => {
      while (performance.now() < end) {
        const result = await pool.run(
          {
            secretsJwe: jwes[i++ % jwes.length]!,
            knotJwk,
            user,
            now: Date.now(),
            deadline: Date.now() + 10_000,
          },
          access,
        );
        if (!result.ok) throw new Error(`pool job failed: ${result.failure.code}`);
        count++;
      }
    }),
  );
  const rate = count / ((performance.now() - start) / 1000);
  await pool.close();
  return rate;
}

async function joseRate(seconds: number): Promise<number> {
  let count = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) {
    const { plaintext } = await compactDecrypt(jwes[count % jwes.length]!, dotva.privateKey);
    await new CompactEncrypt(plaintext)
      .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM" })
      .encrypt(knotPublic);
    count++;
  }
  return count / ((performance.now() - start) / 1000);
}

log(
  `bench:custody on ${process.version}, ${CORES} cores, store ${args.store}, load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`,
);

await closedLoop(1, CONCURRENCY); // warm-up: TLS session, JIT, worker caches
const openssl1 = opensslRsa2048PrivateOpsPerSecond({ seconds: 3, processes: CORES });
log(`openssl speed -multi ${CORES} rsa2048: ${openssl1.toFixed(0)} private ops/s`);
// The store's own reference (PKCS#11: the bare pkcs11js loop), measured before and after the gRPC run
// and averaged, as openssl is: on a shared machine the load drifts between phases.
const storeReference = BENCH_STORE_REFERENCES[args.store!];
const storeBefore = await storeReference?.(SECONDS);
if (storeBefore) log(storeBefore.line);
const grpc = await closedLoop(SECONDS, CONCURRENCY);
log(
  `gRPC+mTLS, ${CONCURRENCY} in flight: ${grpc.rate.toFixed(0)} calls/s  p50 ${grpc.p50.toFixed(2)} ms  p99 ${grpc.p99.toFixed(2)} ms`,
);
const half = await openLoop(SECONDS, grpc.rate / 2);
log(
  `gRPC+mTLS at half peak (${(grpc.rate / 2).toFixed(0)}/s, open loop): p50 ${half.p50.toFixed(2)} ms  p99 ${half.p99.toFixed(2)} ms`,
);
client.close();
stopCustody();
await new Promise((r) => custody.once("exit", r));

const pool = await poolRate(SECONDS);
log(`in-process pool (${CORES} workers): ${pool.toFixed(0)} re-encryptions/s`);
const openssl2 = opensslRsa2048PrivateOpsPerSecond({ seconds: 3, processes: CORES });
log(`openssl speed -multi ${CORES} rsa2048 (again): ${openssl2.toFixed(0)} private ops/s`);
const jose = await joseRate(Math.min(SECONDS, 3));
log(`naive jose, one thread: ${jose.toFixed(0)} re-encryptions/s`);
const storeAfter = await storeReference?.(SECONDS);
if (storeAfter) log(storeAfter.line);
const storeRate = storeBefore && storeAfter ? (storeBefore.rate + storeAfter.rate) / 2 : undefined;

const openssl = (openssl1 + openssl2) / 2;
console.log(
  JSON.stringify({
    bench: "custody",
    store: args.store,
    cores: CORES,
    concurrency: CONCURRENCY,
    seconds_per_measure: SECONDS,
    grpc_calls_per_s: round(grpc.rate, 1),
    grpc_p50_ms: round(grpc.p50, 2),
    grpc_p99_ms: round(grpc.p99, 2),
    half_peak_rate_per_s: round(grpc.rate / 2, 1),
    half_peak_p50_ms: round(half.p50, 2),
    half_peak_p99_ms: round(half.p99, 2),
    pool_per_s: round(pool, 1),
    openssl_rsa2048_sign_per_s_multicore: round(openssl, 1),
    jose_baseline_per_s: round(jose, 1),
    grpc_vs_openssl_multicore: round(grpc.rate / openssl),
    pool_vs_openssl_multicore: round(pool / openssl),
    grpc_vs_jose: round(grpc.rate / jose),
    ...(storeAfter && storeRate !== undefined
      ? {
          ...storeAfter.fields,
          [storeAfter.rateName]: round(storeRate, 1),
          [storeAfter.ratioName]: round(grpc.rate / storeRate),
        }
      : {}),
    load_average_1m: round(loadavg()[0]!, 2),
  }),
);
process.exit(0);
