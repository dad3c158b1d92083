/**
 * Open-loop load: calls start on a fixed schedule (rate per second) whatever the answers do, so that a
 * slow service shows as latency and queueing instead of as a load generator that slows down with it.
 * Each call is recorded with its start time on the run's clock, its duration and its outcome code.
 */
import type { CallRecord } from "./verdicts.js";

export interface Outcome {
  readonly ok: boolean;
  readonly code: string;
}

export class PacedLoad {
  readonly records: CallRecord[] = [];
  private readonly pending = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private sent = 0;
  private readonly started: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly call: (i: number) => Promise<Outcome>,
    /** The run's clock origin (performance.now() ms). */
    private readonly since: number,
  ) {
    this.started = performance.now();
    this.tick();
  }

  private tick(): void {
    const now = performance.now();
    // Catch up after a stalled event loop: every call that fell due is started now.
    while (this.started + (this.sent * 1000) / this.ratePerSecond <= now) this.fire(this.sent++);
    const next = this.started + (this.sent * 1000) / this.ratePerSecond;
    this.timer = setTimeout(() => this.tick(), Math.max(0, next - performance.now()));
  }

  private fire(i: number): void {
    const t0 = performance.now();
    const record: CallRecord = { start: t0 - this.since };
    this.records.push(record);
    const done = this.call(i)
      .catch((): Outcome => ({ ok: false, code: "CLIENT_ERROR" }))
      .then((outcome) => {
        record.ms = performance.now() - t0;
        record.ok = outcome.ok;
        record.code = outcome.code;
      });
    this.pending.add(done);
    void done.finally(() => this.pending.delete(done));
  }

  /** Stops starting calls and waits for those in flight. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    await Promise.all([...this.pending]);
  }

  /** Outcome codes of the calls started in [from, to), counted. */
  codesBetween(from: number, to: number): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const r of this.records) {
      if (r.start < from || r.start >= to) continue;
      const code = r.code ?? "PENDING";
      counts[code] = (counts[code] ?? 0) + 1;
    }
    return counts;
  }
}
