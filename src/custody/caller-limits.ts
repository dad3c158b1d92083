/**
 * Per-caller admission: a token bucket (sustained calls per second with a burst) and a cap on calls in
 * flight. One misbehaving client then cannot take the RSA workers from the others; it gets
 * RESOURCE_EXHAUSTED and is expected to back off.
 */
export interface CallerLimitsConfig {
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly maxInFlight: number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
  inFlight: number;
}

export class CallerLimits {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly config: CallerLimitsConfig,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /** A release function when admitted (call it exactly once when the call ends), else undefined. */
  tryAcquire(caller: string): (() => void) | undefined {
    const now = this.clock();
    let bucket = this.buckets.get(caller);
    if (!bucket) {
      bucket = { tokens: this.config.burst, updatedAt: now, inFlight: 0 };
      this.buckets.set(caller, bucket);
    }
    bucket.tokens = Math.min(
      this.config.burst,
      bucket.tokens + ((now - bucket.updatedAt) / 1000) * this.config.ratePerSecond,
    );
    bucket.updatedAt = now;
    if (bucket.tokens < 1 || bucket.inFlight >= this.config.maxInFlight) return undefined;
    bucket.tokens -= 1;
    bucket.inFlight += 1;
    const held = bucket;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      held.inFlight -= 1;
    };
  }
}
