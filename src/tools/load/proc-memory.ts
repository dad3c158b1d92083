/**
 * Resident memory of another process (all its threads: custody's re-encryption workers, libuv's pool,
 * SQLite), read from /proc/<pid>/status, and a sampler that records it once a second; and the main
 * isolate's used V8 heap from a service's Prometheus /metrics, to tell a growing JavaScript heap from
 * growth elsewhere (worker isolates, native buffers, the allocator) when the RSS climbs.
 */
import { readFileSync } from "node:fs";
import { MIB, type RssSample } from "./verdicts.js";

/** VmRSS in bytes; undefined once the process is gone. */
export function residentBytes(pid: number): number | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const kib = status.match(/^VmRSS:\s+(\d+) kB$/m)?.[1];
  return kib === undefined ? undefined : Number(kib) * 1024;
}

export class RssSampler {
  readonly samples: RssSample[] = [];
  private readonly timer: NodeJS.Timeout;

  /** `since` is the run's clock origin (performance.now() ms) that sample times count from. */
  constructor(
    private readonly pid: number,
    private readonly since: number,
    intervalMs = 1000,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    const bytes = residentBytes(this.pid);
    if (bytes !== undefined) this.samples.push({ t: (performance.now() - this.since) / 1000, bytes });
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The samples taken in [fromSeconds, toSeconds). */
  between(fromSeconds: number, toSeconds: number): RssSample[] {
    return this.samples.filter((s) => s.t >= fromSeconds && s.t < toSeconds);
  }
}

/** `<prefix>nodejs_heap_size_used_bytes` from a Prometheus text page; undefined when absent or unreachable. */
export async function heapUsedBytes(metricsUrl: string, prefix: string): Promise<number | undefined> {
  try {
    const r = await fetch(metricsUrl, { signal: AbortSignal.timeout(2_000) });
    const text = await r.text();
    const value = text.match(new RegExp(`^${prefix}nodejs_heap_size_used_bytes (\\S+)$`, "m"))?.[1];
    return value === undefined ? undefined : Number(value);
  } catch {
    return undefined;
  }
}

export class HeapSampler {
  readonly samples: RssSample[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(metricsUrl: string, prefix: string, since: number, intervalMs = 5000) {
    this.timer = setInterval(() => {
      const t = (performance.now() - since) / 1000;
      void heapUsedBytes(metricsUrl, prefix).then((bytes) => {
        if (bytes !== undefined) this.samples.push({ t, bytes });
      });
    }, intervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** One full (mark-compact) collection from `node --trace-gc`: the isolate and its live heap after it. */
export interface MarkCompact {
  readonly isolate: string;
  /** Milliseconds since the process started, as V8 prints them. */
  readonly ms: number;
  readonly afterBytes: number;
}

const MARK_COMPACT =
  /^\[\d+:(0x[0-9a-f]+)\]\s+(\d+) ms: Mark-Compact(?: \([^)]*\))? [\d.]+ \([\d.]+\) -> ([\d.]+) \([\d.]+\) MB/gm;

/**
 * The full collections in a process's `--trace-gc` output, per isolate (the main thread and each worker
 * have their own). What is live after a mark-compact is the heap without its garbage: if that keeps
 * rising, something holds on to objects; a rising heap before collection only says V8 has not run one.
 */
export function markCompacts(output: string): Map<string, MarkCompact[]> {
  const byIsolate = new Map<string, MarkCompact[]>();
  for (const m of output.matchAll(MARK_COMPACT)) {
    const list = byIsolate.get(m[1]!) ?? [];
    list.push({ isolate: m[1]!, ms: Number(m[2]), afterBytes: Number(m[3]) * MIB });
    byIsolate.set(m[1]!, list);
  }
  return byIsolate;
}
