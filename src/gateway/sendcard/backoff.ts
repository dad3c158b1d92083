/**
 * Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"),
 * bounded by an absolute deadline. Written here rather than taken from p-retry or exponential-backoff:
 * neither schedules against a wall-clock deadline that survives a restart (ours is stored with the job),
 * and the decision of what is retryable depends on Knot's error body, which they would not see.
 */
export interface BackoffPolicy {
  readonly baseMs: number;
  readonly capMs: number;
}

/** Delay before retry number `retry` (0 for the first retry): uniform in [0, min(cap, base * 2^retry)). */
export function fullJitterDelay(
  retry: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(retry, 30));
  return Math.floor(random() * ceiling);
}

/**
 * The delay to wait before the next attempt, or undefined when that attempt could not start with at
 * least `minAttemptMs` left before `deadlineAt` (a retry with no time to finish only adds load).
 */
export function nextRetryDelay(
  retry: number,
  now: number,
  deadlineAt: number,
  policy: BackoffPolicy & { readonly minAttemptMs: number },
  random: () => number = Math.random,
): number | undefined {
  const delay = fullJitterDelay(retry, policy, random);
  return now + delay + policy.minAttemptMs <= deadlineAt ? delay : undefined;
}
