/**
 * Resident memory of another process (all its threads: custody's re-encryption workers, libuv's pool,
 * SQLite), read from /proc/<pid>/status, and a sampler that records it once a second.
 */
import { readFileSync } from "node:fs";
import type { RssSample } from "./verdicts.js";

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
