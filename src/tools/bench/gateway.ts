/**
 * npm run bench:gateway — the gateway against the simulators, with a Fastify hello-world measured in the
 * same run as the reference (BENCHMARKS.md explains the method).
 *
 * 1+2. hello-world (closed-loop POSTs of a Dotva-sized JSON body to a bare Fastify process) and durable
 *    intake (the same load against POST /webhooks/dotva on SQLite: WAL, synchronous=FULL, group commit;
 *    every request a new card, counted only when answered 200 = committed), alternating in BENCH_ROUNDS
 *    rounds of BENCH_SECONDS each; the ratio is taken per round and the median round reported.
 * 3. AUTHENTICATED → POST /card: open-loop AUTHENTICATED webhooks at BENCH_SEND_RATE/s (default 50) for
 *    BENCH_SEND_SECONDS; latency from sending the webhook to the Knot simulator holding the decrypted card,
 *    through custody over mTLS. Custody's share of it is reported from custody's own metrics (time in
 *    its ReencryptForKnot handler, mean) and its CPU over the phase (/proc, as bench:custody), so the
 *    figures show whether custody is what limits the card flow.
 *
 * Everything listens on 127.0.0.1; every phase is bounded in time. Ends with one JSON line.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { makeDevPki } from "../dev-pki.js";
import {
  dotvaPublicKeyPem,
  freePort,
  httpOk,
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
import { closedLoop } from "./http-load.js";
import { processCpuMicros } from "./proc-cpu.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
const SEND_RATE = Number(process.env.BENCH_SEND_RATE ?? 50);
const SEND_SECONDS = Number(process.env.BENCH_SEND_SECONDS ?? 6);

const procs: Proc[] = [];
const work = mkdtempSync(join(tmpdir(), "bench-gateway-"));
const load1 = loadavg()[0]!;
const secret = () => randomBytes(24).toString("base64url");
const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function main() {
  const pki = makeDevPki(fileURLToPath(new URL("../../../keys/dev/", import.meta.url)));
  const knotSecret = secret();
  const knot = await startDevKnot(pki, "bench", knotSecret);
  const custodyMetricsPort = await freePort();
  const custody = await startCustodyProcess(pki, [readFileSync(pki.knotThumbprint, "utf8").trim()], {
    CUSTODY_METRICS_LISTEN: `127.0.0.1:${custodyMetricsPort}`,
  });
  procs.push(custody.proc);

  const dotvaSecret = { header: "x-dotva-secret", value: secret() };
  const dotva = new DotvaSimulator(dotvaPublicKeyPem(pki.dotvaKeyDir), { sharedSecret: dotvaSecret });
  // One real JWE; each request gets its own card_uuid/card_id (the gateway never decrypts at intake).
  const template = await dotva.issue({
    pan: TEST_PANS[0],
    cvv: "123",
    expiry_month: 8,
    expiry_year: new Date().getUTCFullYear() + 3,
  });
  const bodyFor = (i: number) => {
    const e = { ...template, data: { ...template.data, card_uuid: randomUUID(), card_id: i } };
    const text = dotva.body(e);
    return { text, headers: dotva.headers(text) };
  };

  // 1. reference, started now and measured interleaved with the intake (below)
  const helloPort = await freePort();
  const hello = startTs("src/tools/bench/hello-server.ts", { GATEWAY_PORT: String(helloPort) });
  procs.push(hello);
  await waitUntil("hello", () => httpOk(`http://127.0.0.1:${helloPort}/healthz`), hello);
  const helloUrl = `http://127.0.0.1:${helloPort}/webhooks/dotva`;

  // 2. durable intake
  const internalToken = secret() + secret();
  const gw = await startGatewayProcess(
    localGatewayEnv({
      work,
      pki,
      custodyAddress: custody.address,
      knotUrl: knot.url,
      knotClientId: "bench",
      knotClientSecret: knotSecret,
      dotvaSharedSecret: dotvaSecret.value,
      internalToken,
    }),
  );
  procs.push(gw.proc);
  let seq = 0;
  const next = () => bodyFor(1_000_000 + seq++);
  // Other agents share these 2 cores, so hello-world and intake alternate in short rounds and the ratio
  // is taken within each round; the median round is reported.
  await closedLoop({ url: helloUrl, concurrency: CONCURRENCY, seconds: 1, body: bodyFor });
  await closedLoop({ url: `${gw.url}/webhooks/dotva`, concurrency: CONCURRENCY, seconds: 1, body: next });
  const rounds: { hello: number; intake: number; failed: number }[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const h = await closedLoop({ url: helloUrl, concurrency: CONCURRENCY, seconds: SECONDS, body: bodyFor });
    const i = await closedLoop({
      url: `${gw.url}/webhooks/dotva`,
      concurrency: CONCURRENCY,
      seconds: SECONDS,
      body: next,
    });
    rounds.push({ hello: h.perSecond, intake: i.perSecond, failed: i.failed + h.failed });
    console.log(
      `round ${r + 1}: hello-world ${h.perSecond.toFixed(0)} req/s, durable intake ${i.perSecond.toFixed(0)} req/s (${i.failed} failed)`,
    );
  }
  await hello.stop();
  rounds.sort((a, b) => a.intake / a.hello - b.intake / b.hello);
  const median = rounds[Math.floor(rounds.length / 2)]!;

  // 3. AUTHENTICATED → POST /card at a fixed rate
  const api = (path: string, body: unknown) =>
    fetch(`${gw.url}${path}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${internalToken}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  await api("/v1/cardholders/bench-user", SAMPLE_CARDHOLDER);
  const total = SEND_RATE * SEND_SECONDS;
  const warm = Math.min(10, total);
  // A card is sent only to tasks of the user it is bound to.
  for (let c = 0; c < Math.min(seq, total + warm); c++) {
    await api(`/v1/cardholders/bench-user/cards/${1_000_000 + c}`, { workspace_id: template.workspace_id });
  }
  const sentAt = new Map<string, number>();
  const ackMs: number[] = [];
  const custodyPid = custody.proc.child.pid!;
  const custodyBefore = await custodyHandlerTime(custodyMetricsPort);
  const custodyCpu0 = processCpuMicros(custodyPid);
  const start = performance.now();
  const webhooks: Promise<unknown>[] = [];
  for (let i = 0; i < total + warm; i++) {
    const due = start + (i * 1000) / SEND_RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const taskId = 900_000 + i;
    sentAt.set(String(taskId), Date.now());
    const sent = Date.now();
    webhooks.push(
      knot
        .sendWebhook(
          gw.url,
          authenticatedEvent({
            taskId,
            cardId: 1_000_000 + (i % seq),
            externalUserId: "bench-user",
          }),
        )
        .then(() => {
          if (i >= warm) ackMs.push(Date.now() - sent);
        }),
    );
  }
  await Promise.all(webhooks);
  const deadline = Date.now() + 20_000;
  while (knot.received.length < total + warm && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));
  const latencies = knot.received
    .filter((r) => Number(r.taskId) >= 900_000 + warm)
    .map((r) => r.receivedAt - sentAt.get(r.taskId)!)
    .sort((a, b) => a - b);
  const p50 = pct(latencies, 50);
  const p99 = pct(latencies, 99);
  const custodyBusy = (processCpuMicros(custodyPid) - custodyCpu0) / ((performance.now() - start) * 1000);
  const custodyAfter = await custodyHandlerTime(custodyMetricsPort);
  const custodyCalls = custodyAfter.count - custodyBefore.count;
  const custodyMeanMs = (1000 * (custodyAfter.sum - custodyBefore.sum)) / custodyCalls;
  ackMs.sort((a, b) => a - b);
  // The gateway's own view (AUTHENTICATED receipt → Knot's 2xx), to tell queueing before the gateway
  // (load generator, network) from time spent inside it.
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  const metric = (name: string) =>
    Number(metrics.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1] ?? Number.NaN);
  const gatewayMeanMs =
    (1000 * metric("gateway_send_card_latency_seconds_sum")) /
    metric("gateway_send_card_latency_seconds_count");
  console.log(
    `AUTHENTICATED→card at ${SEND_RATE}/s: ${latencies.length}/${total} delivered, p50 ${p50} ms, p99 ${p99} ms` +
      ` (webhook answered: p50 ${pct(ackMs, 50)} ms, p99 ${pct(ackMs, 99)} ms; gateway-side mean ${gatewayMeanMs.toFixed(1)} ms)`,
  );
  console.log(
    `custody during the sends: ${custodyCalls} calls, ${custodyMeanMs.toFixed(2)} ms mean in its handler (${((100 * custodyMeanMs) / gatewayMeanMs).toFixed(0)}% of the gateway-side mean), CPU ${(100 * custodyBusy).toFixed(0)}% of one core`,
  );
  await knot.close();

  const result = {
    bench: "gateway",
    rounds: ROUNDS,
    seconds_per_measure: SECONDS,
    concurrency: CONCURRENCY,
    hello_per_s: Math.round(median.hello),
    intake_per_s: Math.round(median.intake),
    failed_requests: rounds.reduce((n, r) => n + r.failed, 0),
    intake_vs_hello: Number((median.intake / median.hello).toFixed(3)),
    send_rate_per_s: SEND_RATE,
    sends: total,
    sends_delivered: latencies.length,
    send_p50_ms: p50,
    send_p99_ms: p99,
    webhook_ack_p50_ms: pct(ackMs, 50),
    webhook_ack_p99_ms: pct(ackMs, 99),
    gateway_side_send_mean_ms: Number(gatewayMeanMs.toFixed(1)),
    custody_calls_during_sends: custodyCalls,
    custody_handler_mean_ms: Number(custodyMeanMs.toFixed(2)),
    custody_share_of_gateway_side_send: Number((custodyMeanMs / gatewayMeanMs).toFixed(3)),
    custody_cpu_cores_busy_during_sends: Number(custodyBusy.toFixed(3)),
    storage: "sqlite WAL synchronous=FULL group-commit",
    load_average_1m_before: Number(load1.toFixed(2)),
  };
  return result;
}

/** Custody's time in ReencryptForKnot handlers so far (its Prometheus histogram's sum and count). */
async function custodyHandlerTime(port: number): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = (series: string) =>
    Number(
      text.match(
        new RegExp(`^custody_call_duration_seconds_${series}\\{method="ReencryptForKnot"\\} (\\S+)$`, "m"),
      )?.[1] ?? 0,
    );
  return { sum: value("sum"), count: value("count") };
}

let result: object | undefined;
try {
  result = await main();
} finally {
  await Promise.all(procs.map((p) => p.stop()));
  rmSync(work, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
