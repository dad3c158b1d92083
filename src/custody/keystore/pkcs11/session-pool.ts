/**
 * A fixed set of logged-in sessions, one private operation each at a time (PKCS#11 sessions are not
 * re-entrant). Waiting for a session is bounded, so a saturated store turns into a refused call, not a
 * queue that grows forever. The two ways a wait ends without a session are told apart: the sessions
 * were replaced or closed (`makeGone`: the token side), or every session stayed busy for the whole wait
 * (`makeBusy`: load, not a fault; a session held by a hung operation is that operation's deadline to
 * report). Each `reset` starts a new generation: sessions of an older generation (opened before a
 * recovery) are dropped when returned instead of being handed out again.
 */

export interface PooledSession {
  readonly handle: Buffer;
  readonly generation: number;
}

interface Waiter {
  resolve(session: PooledSession): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class SessionPool {
  private idle: PooledSession[] = [];
  private waiters: Waiter[] = [];
  private generation = 0;

  constructor(
    private readonly makeGone: () => Error,
    private readonly makeBusy: () => Error,
  ) {}

  /** Replaces every session; callers waiting get the new ones. */
  reset(handles: readonly Buffer[]): void {
    this.generation++;
    this.idle = handles.map((handle) => ({ handle, generation: this.generation }));
    while (this.waiters.length > 0 && this.idle.length > 0)
      this.handOut(this.waiters.shift()!, this.idle.pop()!);
  }

  /** Forgets every session (they are about to be closed) and fails everyone waiting. */
  invalidate(): void {
    this.generation++;
    this.idle = [];
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(this.makeGone());
    }
  }

  acquire(timeoutMs: number): Promise<PooledSession> {
    const session = this.idle.pop();
    if (session !== undefined) return Promise.resolve(session);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          reject(this.makeBusy());
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  release(session: PooledSession): void {
    if (session.generation !== this.generation) return;
    const waiter = this.waiters.shift();
    if (waiter !== undefined) this.handOut(waiter, session);
    else this.idle.push(session);
  }

  private handOut(waiter: Waiter, session: PooledSession): void {
    clearTimeout(waiter.timer);
    waiter.resolve(session);
  }
}
