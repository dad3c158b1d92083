/**
 * The deadline custody holds a call to: the client's, or CUSTODY_DEFAULT_DEADLINE_MS when it sent none,
 * and never later than CUSTODY_MAX_CALL_DEADLINE_MS after the call arrived. A client that sends no
 * deadline, or one an hour away, would otherwise keep its per-caller slot, a queue place and a PKCS#11
 * session wait for as long as the slowest step takes.
 *
 * grpc-js ends a call at the client's own deadline (without a reason code), but knows nothing of the cap;
 * `DeadlineTimer` ends the wait at the effective deadline with whatever `expired` makes (the service's
 * DEADLINE_EXCEEDED failure). One timer per call, armed only when the call first awaits something that
 * can be slow and cleared when the call ends, so a call that never waits costs no timer at all.
 */

/** Epoch milliseconds at which the call must have been answered. */
export function effectiveDeadline(
  clientDeadline: Date | number,
  arrivedAt: number,
  limits: { readonly defaultMs: number; readonly maxMs: number },
): number {
  const ms = clientDeadline instanceof Date ? clientDeadline.getTime() : clientDeadline;
  const cap = arrivedAt + limits.maxMs;
  return Number.isFinite(ms) ? Math.min(ms, cap) : arrivedAt + limits.defaultMs;
}

export class DeadlineTimer {
  private expiry: Promise<never> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly at: number,
    private readonly expired: () => unknown,
  ) {}

  /**
   * Settles as `work` does, or rejects with `expired()` once the deadline passes, whichever is first.
   * The work itself is not stopped (a worker task or token operation cannot be interrupted): it runs to
   * its end and its result is dropped; the worker pool skips a queued task whose deadline has passed.
   */
  race<T>(work: Promise<T>): Promise<T> {
    this.expiry ??= new Promise<never>((_resolve, reject) => {
      this.timer = setTimeout(() => reject(this.expired()), Math.max(0, this.at - Date.now()));
    });
    return Promise.race([work, this.expiry]);
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}
