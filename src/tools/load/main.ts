/**
 * npm run load [-- --minutes 3] [--custody-rate 40] [--dotva-rate 50] [--knot-rate 10]
 *                  [--custody-ceiling-mib N] [--gateway-ceiling-mib N] [--max-slope-mib-per-min 1]
 *                  [--recovery-seconds 10] [--trace-gc]
 *
 * The bounded load test of custody and the gateway on loopback (run.ts says what each phase does).
 * Defaults:
 *  - rates: about a fifth of what custody re-encrypts per second on this 2-core machine (bench:custody,
 *    200-300/s), and Dotva intake far below its thousands per second, so the phase measures steady state
 *    rather than saturation;
 *  - memory ceilings: each service's container memory limit in deploy/kubernetes/<service>.yaml (512Mi
 *    today), above which the kernel kills the container. The services run here under tsx, which costs
 *    more memory than the production build, so staying under the limit here is the stricter test; the
 *    manifest's request (256Mi, what the scheduler reserves) is not the bound, the figures show where the
 *    processes sit against it;
 *  - growth bound: 1 MiB/min over the second half of the sustained phase (the issue's figure): a leak of
 *    one 200-byte object per call at these rates already exceeds it;
 *  - burst: one wave a second of 1000 ReencryptForKnot at once over 5 connections (each under custody's
 *    256-stream limit) against a worker queue of 64 and a per-caller limit of 256 in flight, and 1000
 *    connections posting Dotva webhooks, for 3 s;
 *  - recovery: within 10 s, to 2 × the pre-burst p50/p99 + 20 ms, in 2-second windows.
 * --trace-gc (diagnosis): both services under `node --trace-gc`; the JSON adds, per isolate, the live heap
 * after each full collection, which tells a leak from a heap V8 has not collected yet.
 * Prints progress, then one JSON line of figures and verdicts; exits 1 when a verdict fails.
 */
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { manifestMemoryLimitBytes } from "./manifest-limits.js";
import { runLoad } from "./run.js";
import { MIB } from "./verdicts.js";

const { values: args } = parseArgs({
  options: {
    minutes: { type: "string", default: "3" },
    "custody-rate": { type: "string", default: "40" },
    "dotva-rate": { type: "string", default: "50" },
    "knot-rate": { type: "string", default: "10" },
    "custody-ceiling-mib": { type: "string", default: String(manifestMemoryLimitBytes("custody") / MIB) },
    "gateway-ceiling-mib": { type: "string", default: String(manifestMemoryLimitBytes("gateway") / MIB) },
    "max-slope-mib-per-min": { type: "string", default: "1" },
    "recovery-seconds": { type: "string", default: "10" },
    "trace-gc": { type: "boolean", default: false },
  },
});

function positive(name: keyof typeof args): number {
  const value = Number(args[name]);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`--${name} must be a positive number`);
    process.exit(2);
  }
  return value;
}

const sustainedSeconds = positive("minutes") * 60;
console.log(`load on ${process.version}, ${availableParallelism()} cores`);
const report = await runLoad({
  sustainedSeconds,
  // JIT, TLS sessions, the workers' key copies and SQLite's page cache settle in the first seconds.
  warmupSeconds: Math.min(30, sustainedSeconds / 4),
  custodyRate: positive("custody-rate"),
  dotvaRate: positive("dotva-rate"),
  knotRate: positive("knot-rate"),
  burst: { seconds: 3, custodyConcurrency: 1000, custodyChannels: 5, gatewayConnections: 1000 },
  custodyMaxQueue: 64,
  memory: {
    custodyCeilingBytes: positive("custody-ceiling-mib") * MIB,
    gatewayCeilingBytes: positive("gateway-ceiling-mib") * MIB,
    maxSlopeBytesPerMinute: positive("max-slope-mib-per-min") * MIB,
  },
  recovery: {
    withinSeconds: positive("recovery-seconds"),
    windowSeconds: 2,
    factor: 2,
    slackMs: 20,
    minCalls: 5,
    baselineSeconds: 20,
  },
  deliveryWaitSeconds: 20,
  traceGc: args["trace-gc"],
  log: (line) => console.log(line),
});
for (const v of report.verdicts) {
  console.log(`${v.ok ? "PASS" : "FAIL"} ${v.name}${v.ok ? "" : `: ${v.failures.join("; ")}`}`);
}
console.log(
  JSON.stringify({
    ...report.figures,
    ok: report.ok,
    verdicts: Object.fromEntries(report.verdicts.map((v) => [v.name, v.ok])),
  }),
);
process.exit(report.ok ? 0 : 1);
