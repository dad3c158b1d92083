/**
 * The load test's verdicts as pure functions of what was measured, so that a unit test can feed them a
 * leaking memory series or a latency that never comes back and see them fail.
 *
 * Memory: after a warm-up (JIT, TLS sessions, worker key copies, SQLite's page cache), the resident set
 * must stay under a ceiling, and its least-squares slope over the second half of the sustained phase must
 * stay under a small bound. A leak of a few hundred bytes per call shows as a steady slope long before it
 * reaches any ceiling; a garbage-collected heap shows as a saw-tooth around a flat line.
 *
 * Latency: the baseline is the base-rate calls of the last seconds before the burst. After the burst,
 * windows of base-rate calls are judged in turn; the service has recovered at the end of the first window
 * whose calls all succeeded and whose p50 and p99 are within `factor × baseline + slackMs`.
 */

export const MIB = 1024 * 1024;

export interface RssSample {
  /** Seconds since the sustained phase started. */
  readonly t: number;
  readonly bytes: number;
}

/** Least-squares slope of y over x; 0 for fewer than two distinct x. */
export function leastSquaresSlope(points: readonly { readonly x: number; readonly y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const meanX = points.reduce((s, p) => s + p.x, 0) / n;
  const meanY = points.reduce((s, p) => s + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - meanX) * (p.y - meanY);
    den += (p.x - meanX) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

export interface MemoryBounds {
  readonly warmupSeconds: number;
  readonly ceilingBytes: number;
  readonly maxSlopeBytesPerMinute: number;
}

export interface MemoryVerdict {
  readonly ok: boolean;
  readonly samples: number;
  readonly maxBytes: number;
  /** Over the second half of the sustained phase (from max(warm-up, half the phase)). */
  readonly slopeBytesPerMinute: number;
  readonly failures: readonly string[];
}

/** Fewer samples than this in the fitted half and the slope says nothing: the verdict fails. */
const MIN_FIT_SAMPLES = 5;

export function memoryVerdict(samples: readonly RssSample[], bounds: MemoryBounds): MemoryVerdict {
  const failures: string[] = [];
  const afterWarmup = samples.filter((s) => s.t >= bounds.warmupSeconds);
  const lastT = samples.reduce((m, s) => Math.max(m, s.t), 0);
  const fitFrom = Math.max(bounds.warmupSeconds, lastT / 2);
  const fitted = samples.filter((s) => s.t >= fitFrom);
  const maxBytes = afterWarmup.reduce((m, s) => Math.max(m, s.bytes), 0);
  const slopeBytesPerMinute = 60 * leastSquaresSlope(fitted.map((s) => ({ x: s.t, y: s.bytes })));
  if (fitted.length < MIN_FIT_SAMPLES) {
    failures.push(
      `only ${fitted.length} RSS samples after ${fitFrom.toFixed(0)} s (need ${MIN_FIT_SAMPLES}): the sustained phase is too short for a trend`,
    );
  }
  if (maxBytes >= bounds.ceilingBytes) {
    failures.push(
      `RSS reached ${(maxBytes / MIB).toFixed(1)} MiB after the warm-up (ceiling ${(bounds.ceilingBytes / MIB).toFixed(0)} MiB)`,
    );
  }
  if (slopeBytesPerMinute >= bounds.maxSlopeBytesPerMinute) {
    failures.push(
      `RSS grows ${(slopeBytesPerMinute / MIB).toFixed(2)} MiB/min over the second half (bound ${(bounds.maxSlopeBytesPerMinute / MIB).toFixed(2)} MiB/min)`,
    );
  }
  return { ok: failures.length === 0, samples: afterWarmup.length, maxBytes, slopeBytesPerMinute, failures };
}

/** One base-rate call: when it started (ms on the run's clock), how long it took once it ended. */
export interface CallRecord {
  readonly start: number;
  ms?: number;
  ok?: boolean;
  /** "OK", a gRPC status/reason ("RESOURCE_EXHAUSTED/OVERLOADED") or an HTTP status/code ("HTTP_503/OVERLOADED"). */
  code?: string;
}

export interface Percentiles {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
}

/** Nearest-rank percentiles of the finished calls started in [from, to). */
export function latencyIn(records: readonly CallRecord[], from: number, to: number): Percentiles {
  const ms = records
    .filter((r) => r.start >= from && r.start < to && r.ms !== undefined)
    .map((r) => r.ms!)
    .sort((a, b) => a - b);
  const at = (p: number) =>
    ms.length === 0 ? Number.NaN : ms[Math.min(ms.length - 1, Math.ceil(p * ms.length) - 1)]!;
  return { n: ms.length, p50: at(0.5), p99: at(0.99) };
}

export interface RecoveryBounds {
  readonly withinSeconds: number;
  readonly windowSeconds: number;
  readonly factor: number;
  readonly slackMs: number;
  /** A window with fewer finished calls is not judged (too few to say anything). */
  readonly minCalls: number;
}

export interface RecoveryVerdict {
  readonly ok: boolean;
  readonly baseline: Percentiles;
  readonly limit: { readonly p50: number; readonly p99: number };
  /** From the end of the burst to the end of the first recovered window; undefined if none. */
  readonly recoveredAfterSeconds: number | undefined;
  /** The first window after the burst, to show how far off it was. */
  readonly firstWindow: Percentiles & { readonly failed: number };
  readonly failures: readonly string[];
}

export function recoveryVerdict(
  records: readonly CallRecord[],
  times: { readonly baselineFrom: number; readonly baselineTo: number; readonly burstEnd: number },
  bounds: RecoveryBounds,
): RecoveryVerdict {
  const baseline = latencyIn(records, times.baselineFrom, times.baselineTo);
  const limit = {
    p50: bounds.factor * baseline.p50 + bounds.slackMs,
    p99: bounds.factor * baseline.p99 + bounds.slackMs,
  };
  const windowMs = bounds.windowSeconds * 1000;
  const stepMs = windowMs / 2;
  const deadline = times.burstEnd + bounds.withinSeconds * 1000;
  const window = (from: number) => {
    const calls = records.filter((r) => r.start >= from && r.start < from + windowMs);
    return {
      ...latencyIn(calls, from, from + windowMs),
      failed: calls.filter((r) => r.ok === false).length,
      pending: calls.filter((r) => r.ms === undefined).length,
    };
  };
  const first = window(times.burstEnd);
  let recoveredAfterSeconds: number | undefined;
  for (let from = times.burstEnd; from + windowMs <= deadline; from += stepMs) {
    const w = window(from);
    // A call still running may yet be slow: the windows from here on cannot be judged yet.
    if (w.pending > 0) break;
    if (w.n >= bounds.minCalls && w.failed === 0 && w.p50 <= limit.p50 && w.p99 <= limit.p99) {
      recoveredAfterSeconds = (from + windowMs - times.burstEnd) / 1000;
      break;
    }
  }
  const failures: string[] = [];
  if (baseline.n < bounds.minCalls) failures.push(`only ${baseline.n} calls in the pre-burst baseline`);
  if (recoveredAfterSeconds === undefined) {
    failures.push(
      `latency did not return within ${bounds.withinSeconds} s of the burst to p50 <= ${limit.p50.toFixed(1)} ms and p99 <= ${limit.p99.toFixed(1)} ms with every call succeeding (first window: p50 ${first.p50.toFixed(1)} ms, p99 ${first.p99.toFixed(1)} ms, ${first.failed} failed of ${first.n})`,
    );
  }
  return {
    ok: failures.length === 0,
    baseline,
    limit,
    recoveredAfterSeconds,
    firstWindow: { n: first.n, p50: first.p50, p99: first.p99, failed: first.failed },
    failures,
  };
}
