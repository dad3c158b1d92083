/**
 * The load test's verdicts on series made to pass and to fail (a leak, a ceiling crossed, a latency that
 * never comes back, refusals after the burst), then a short run of the real thing: custody and the gateway
 * as processes, ~20 s of base load, an overload burst, recovery, with bounds loose enough for a busy
 * 2-core CI machine (npm run load is the minutes-long version with the tight ones).
 */
import { describe, expect, it } from "vitest";
import { manifestMemoryLimitBytes, memoryQuantityBytes } from "./manifest-limits.js";
import { markCompacts } from "./proc-memory.js";
import { runLoad } from "./run.js";
import {
  type CallRecord,
  latencyIn,
  leastSquaresSlope,
  MIB,
  memoryVerdict,
  type RssSample,
  recoveryVerdict,
} from "./verdicts.js";

/** One sample a second for `seconds`: a base, a linear trend and a GC saw-tooth of ±amplitude. */
function rssSeries(o: { seconds: number; baseMiB: number; mibPerMinute: number; sawMiB: number }) {
  return Array.from(
    { length: o.seconds },
    (_, t): RssSample => ({
      t,
      bytes: (o.baseMiB + (o.mibPerMinute * t) / 60 + o.sawMiB * (((t % 10) - 4.5) / 4.5)) * MIB,
    }),
  );
}

const MEMORY = { warmupSeconds: 30, ceilingBytes: 512 * MIB, maxSlopeBytesPerMinute: 1 * MIB };

describe("memory verdict", () => {
  it("fits the slope of a line exactly", () => {
    expect(leastSquaresSlope([0, 1, 2, 3].map((x) => ({ x, y: 5 + 2 * x })))).toBeCloseTo(2, 12);
    expect(leastSquaresSlope([{ x: 1, y: 3 }])).toBe(0);
  });

  it("passes a flat heap with a garbage-collection saw-tooth", () => {
    const v = memoryVerdict(rssSeries({ seconds: 180, baseMiB: 200, mibPerMinute: 0, sawMiB: 2 }), MEMORY);
    expect(v.failures).toEqual([]);
    expect(v.ok).toBe(true);
    expect(Math.abs(v.slopeBytesPerMinute)).toBeLessThan(0.5 * MIB);
  });

  it("fails a leak of 3 MiB/min hidden under the same saw-tooth, far below the ceiling", () => {
    const v = memoryVerdict(rssSeries({ seconds: 180, baseMiB: 200, mibPerMinute: 3, sawMiB: 2 }), MEMORY);
    expect(v.ok).toBe(false);
    expect(v.maxBytes).toBeLessThan(MEMORY.ceilingBytes);
    expect(v.slopeBytesPerMinute / MIB).toBeCloseTo(3, 0);
    expect(v.failures.join()).toMatch(/grows 3\.\d\d MiB\/min/);
  });

  it("ignores the warm-up's growth but not a process that ends above the ceiling", () => {
    const warming = rssSeries({ seconds: 180, baseMiB: 200, mibPerMinute: 0, sawMiB: 2 }).map((s) =>
      s.t < 30 ? { ...s, bytes: s.bytes - (30 - s.t) * 3 * MIB } : s,
    );
    expect(memoryVerdict(warming, MEMORY).ok).toBe(true);
    const high = memoryVerdict(rssSeries({ seconds: 180, baseMiB: 520, mibPerMinute: 0, sawMiB: 2 }), MEMORY);
    expect(high.failures.join()).toMatch(/ceiling 512 MiB/);
  });

  it("refuses to judge a trend from too few samples", () => {
    const v = memoryVerdict(rssSeries({ seconds: 34, baseMiB: 200, mibPerMinute: 0, sawMiB: 0 }), MEMORY);
    expect(v.ok).toBe(false);
    expect(v.failures.join()).toMatch(/too short/);
  });

  it("reads the live heap after each full collection, per isolate, from node --trace-gc", () => {
    // Lines as Node 24 prints them, with an audit line and a scavenge in between.
    const output = [
      "[1690:0x1686f000]      862 ms: Mark-Compact 176.7 (241.4) -> 149.4 (278.0) MB, pooled: 0 MB, 185.79 / 0.00 ms  (average mu = 0.749, current mu = 0.749) allocation failure; GC in old space requested",
      '{"level":30,"audit":"ReencryptForKnot","outcome":"OK"}',
      "[1690:0x1686f000]      901 ms: Scavenge 150.1 (278.0) -> 149.9 (278.0) MB, pooled: 0 MB, 1.2 / 0.00 ms  (average mu = 0.749, current mu = 0.749) allocation failure;",
      "[1690:0x2a000000]     1200 ms: Mark-Compact (reduce) 20.5 (24.0) -> 12.25 (20.0) MB, pooled: 0 MB, 5.1 / 0.00 ms  (average mu = 0.9, current mu = 0.9) memory reducer",
      "[1690:0x1686f000]     5000 ms: Mark-Compact 180.0 (280.0) -> 150.5 (280.0) MB, pooled: 0 MB, 150.0 / 0.00 ms  (average mu = 0.8, current mu = 0.8) allocation failure",
    ].join("\n");
    const gcs = markCompacts(output);
    expect([...gcs.keys()]).toEqual(["0x1686f000", "0x2a000000"]);
    expect(gcs.get("0x1686f000")!.map((m) => [m.ms, m.afterBytes / MIB])).toEqual([
      [862, 149.4],
      [5000, 150.5],
    ]);
    expect(gcs.get("0x2a000000")![0]!.afterBytes / MIB).toBe(12.25);
  });

  it("takes the default ceilings from the Kubernetes manifests' memory limits", () => {
    expect(memoryQuantityBytes("512Mi")).toBe(512 * MIB);
    expect(memoryQuantityBytes("1Gi")).toBe(1024 * MIB);
    expect(() => memoryQuantityBytes("512M")).toThrow(/Ki, <n>Mi or <n>Gi/);
    for (const service of ["custody", "gateway"] as const) {
      expect(manifestMemoryLimitBytes(service)).toBeGreaterThanOrEqual(64 * MIB);
    }
  });
});

/** Calls at `perSecond` from `fromMs` to `toMs`, each taking `ms(start)` and succeeding unless `failed`. */
function calls(
  fromMs: number,
  toMs: number,
  perSecond: number,
  ms: (start: number) => number,
  failed: (start: number) => boolean = () => false,
): CallRecord[] {
  const out: CallRecord[] = [];
  for (let start = fromMs; start < toMs; start += 1000 / perSecond) {
    out.push({ start, ms: ms(start), ok: !failed(start), code: failed(start) ? "HTTP_503" : "OK" });
  }
  return out;
}

describe("recovery verdict", () => {
  const BOUNDS = { withinSeconds: 10, windowSeconds: 2, factor: 2, slackMs: 20, minCalls: 5 };
  const TIMES = { baselineFrom: 0, baselineTo: 20_000, burstEnd: 23_000 };
  const baseline = calls(0, 20_000, 20, (s) => 10 + (s % 7));

  it("takes nearest-rank percentiles of the calls started in a window", () => {
    const records = calls(0, 1000, 100, (s) => s / 10 + 1);
    expect(latencyIn(records, 0, 1000)).toEqual({ n: 100, p50: 50, p99: 99 });
    expect(latencyIn(records, 0, 500).n).toBe(50);
  });

  it("finds the first window back near the baseline", () => {
    const after = calls(23_000, 40_000, 20, (s) => (s < 26_000 ? 800 : 12));
    const v = recoveryVerdict([...baseline, ...after], TIMES, BOUNDS);
    expect(v.failures).toEqual([]);
    expect(v.firstWindow.p50).toBe(800);
    // The window [26 s, 28 s) is the first without a slow call: 5 s after the burst.
    expect(v.recoveredAfterSeconds).toBe(5);
  });

  it("fails a latency that stays high for longer than allowed", () => {
    const after = calls(23_000, 40_000, 20, (s) => (s < 35_000 ? 300 : 12));
    const v = recoveryVerdict([...baseline, ...after], TIMES, BOUNDS);
    expect(v.ok).toBe(false);
    expect(v.recoveredAfterSeconds).toBeUndefined();
    expect(v.failures.join()).toMatch(/did not return within 10 s/);
  });

  it("does not count fast refusals as recovered", () => {
    const after = calls(
      23_000,
      40_000,
      20,
      () => 2,
      (s) => s < 34_000,
    );
    const v = recoveryVerdict([...baseline, ...after], TIMES, BOUNDS);
    expect(v.ok).toBe(false);
    expect(v.firstWindow.failed).toBeGreaterThan(0);
  });

  it("does not judge a window while one of its calls is still running", () => {
    const after = calls(23_000, 40_000, 20, () => 12);
    const running: CallRecord = { start: 23_100 };
    const v = recoveryVerdict([...baseline, ...after, running], TIMES, BOUNDS);
    expect(v.recoveredAfterSeconds).toBeUndefined();
    running.ms = 15;
    running.ok = true;
    expect(recoveryVerdict([...baseline, ...after, running], TIMES, BOUNDS).recoveredAfterSeconds).toBe(2);
  });
});

describe("a short load run of custody and the gateway", () => {
  it("stays under the memory ceiling, refuses the burst as OVERLOADED, recovers and loses no card", async () => {
    const lines: string[] = [];
    const report = await runLoad({
      sustainedSeconds: 18,
      warmupSeconds: 6,
      custodyRate: 20,
      dotvaRate: 20,
      knotRate: 4,
      burst: { seconds: 2, custodyConcurrency: 500, custodyChannels: 3, gatewayConnections: 200 },
      custodyMaxQueue: 16,
      // The burst is shed by the in-flight cap, which does not depend on the machine; event-loop delay
      // on a loaded 2-core CI machine measures the other test files as much as the gateway, so its limit
      // is out of reach here (overload.test.ts tests it deterministically).
      gatewayEnv: { GATEWAY_MAX_WEBHOOKS_IN_FLIGHT: "32", GATEWAY_MAX_EVENT_LOOP_DELAY_MS: "10000" },
      memory: {
        custodyCeilingBytes: manifestMemoryLimitBytes("custody"),
        gatewayCeilingBytes: manifestMemoryLimitBytes("gateway"),
        // Over 9 s the warm-up still shows: this catches only gross leaks; npm run load holds 1 MiB/min.
        maxSlopeBytesPerMinute: 300 * MIB,
      },
      recovery: {
        withinSeconds: 20,
        windowSeconds: 2,
        factor: 3,
        slackMs: 100,
        minCalls: 5,
        baselineSeconds: 8,
      },
      deliveryWaitSeconds: 20,
      log: (line) => lines.push(line),
    });
    const failed = report.verdicts.filter((v) => !v.ok);
    expect(failed, `${lines.join("\n")}\n${JSON.stringify(report.figures)}`).toEqual([]);
    // The burst really overloaded custody, and the refusals were the queue's.
    const outcomes = report.figures.custody_burst_outcomes as Record<string, number>;
    expect(outcomes["RESOURCE_EXHAUSTED/OVERLOADED"]).toBeGreaterThan(0);
    expect((report.figures.gateway_burst_statuses as Record<string, number>)["503"]).toBeGreaterThan(0);
    expect(report.figures.authenticated_delivered).toBeGreaterThan(0);
  }, 150_000);
});
