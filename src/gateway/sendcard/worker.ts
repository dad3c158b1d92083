/**
 * Runs send-card jobs from storage: woken at once when this instance records an AUTHENTICATED, and
 * polling for the rest (jobs left by a restart or recorded by another instance). Jobs are leased in
 * storage, so any number of instances can run this loop against one PostgreSQL. The poll also expires
 * abandoned jobs and purges secrets past their retention (GatewayConfig.secrets).
 *
 * SEND_CARD_CONCURRENCY bounds the jobs in flight on every path that starts one: a job leased by the
 * AUTHENTICATED webhook's own transaction, a job claimed by the poll (a restart's leftovers, another
 * instance's lapsed leases) and every retry, which runs inside its job's slot. All of them go through
 * one p-limit queue; the poll claims only as many jobs as there are free slots, and a webhook's job that
 * finds every slot taken waits in the queue (its lease is renewed before it starts, so a job whose lease
 * lapsed while queued and was taken by another instance is dropped, never run twice).
 */
import { randomUUID } from "node:crypto";
import pLimit, { type LimitFunction } from "p-limit";
import type { Logger } from "pino";
import type { SendCardJob } from "../storage/repository.js";
import { isLeaseLost, runSendJob, type SendJobContext } from "./send-job.js";

export interface WorkerOptions extends Omit<SendJobContext, "owner"> {
  readonly pollMs: number;
  readonly concurrency: number;
  readonly log: Logger;
}

export class SendCardWorker {
  readonly owner = `gw-${process.pid}-${randomUUID().slice(0, 8)}`;
  private readonly running = new Set<Promise<void>>();
  /** Task ids queued or running here: the poll may re-lease one of ours whose lease lapsed in the queue. */
  private readonly held = new Set<string>();
  private readonly limit: LimitFunction;
  private timer?: NodeJS.Timeout;
  private ticking = false;
  private again = false;
  private stopped = false;
  // Expiry sweeps ride on the poll timer only: a wake-up for a fresh job should cost one write, not two.
  private expireDue = true;

  constructor(private readonly opts: WorkerOptions) {
    // rejectOnClear: stop() drops the queue, and every queued job's promise must still settle.
    this.limit = pLimit({ concurrency: opts.concurrency, rejectOnClear: true });
  }

  start(): void {
    this.timer = setInterval(() => {
      this.expireDue = true;
      this.wake();
    }, this.opts.pollMs);
    this.timer.unref();
    this.wake();
  }

  wake(): void {
    if (this.stopped) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = true;
    void this.tick()
      .catch((error: unknown) => this.opts.log.error({ err: error }, "send-card poll failed"))
      .finally(() => {
        this.ticking = false;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }

  private async tick(): Promise<void> {
    const { repo, metrics, retention } = this.opts;
    const now = (this.opts.now ?? Date.now)();
    const sweep = this.expireDue;
    this.expireDue = false;
    const expired = sweep ? await repo.expireJobs(now) : [];
    if (sweep) {
      const purged = await repo.purgeSecrets(now - retention.ttlMs, now - retention.keepAfterSendMs, now);
      if (purged.length > 0) {
        metrics.secretsPurged.inc(purged.length);
        this.opts.log.info({ cards: purged.length }, "secrets_jwe purged after their retention period");
      }
    }
    for (const taskId of expired) {
      metrics.deadlineMisses.inc();
      metrics.sendCardOutcomes.inc({ outcome: "failed", code: "DEADLINE_EXCEEDED" });
      this.opts.log.warn({ taskId }, "send-card job expired unattempted or abandoned");
    }
    const free = this.opts.concurrency - this.limit.activeCount - this.limit.pendingCount;
    if (free <= 0 || this.stopped) return;
    const jobs = await repo.claimJobs(this.owner, now, now + this.opts.leaseMs, free);
    for (const job of jobs) {
      // Already queued here (its lease lapsed while it waited): the claim only renewed our lease.
      if (!this.held.has(job.taskId)) this.enqueue(job);
    }
  }

  private enqueue(job: SendCardJob): void {
    this.held.add(job.taskId);
    // A job that waits for a slot may outlive its lease in the queue: it renews before it starts.
    const waits = this.limit.activeCount + this.limit.pendingCount >= this.limit.concurrency;
    const p = this.limit(() => this.run(job, waits))
      .catch((error: unknown) => {
        // Only stop() clears the queue: the job stays leased to us until its lease lapses.
        this.opts.log.info({ taskId: job.taskId, err: error }, "queued send-card job dropped at shutdown");
      })
      .finally(() => {
        this.held.delete(job.taskId);
        this.running.delete(p);
      });
    this.running.add(p);
  }

  private async run(job: SendCardJob, renewFirst: boolean): Promise<void> {
    const { repo, metrics, log } = this.opts;
    try {
      const now = (this.opts.now ?? Date.now)();
      if (renewFirst && !(await repo.renewLease(job.taskId, this.owner, now + this.opts.leaseMs))) {
        log.warn({ taskId: job.taskId }, "send-card job taken by another worker while queued here; dropped");
        return;
      }
      const outcome = await runSendJob(job, { ...this.opts, owner: this.owner });
      if (!outcome) return;
      const mine = await repo.finishJob(job.taskId, this.owner, outcome);
      if (!mine) return;
      metrics.sendCardOutcomes.inc({ outcome: outcome.state, code: outcome.errorCode ?? "OK" });
      if (outcome.errorCode === "DEADLINE_EXCEEDED") metrics.deadlineMisses.inc();
      const fields = {
        taskId: job.taskId,
        attempt: job.attempts,
        ms: outcome.completedAt - job.receivedAt,
        code: outcome.errorCode,
        knotStatus: outcome.knotStatus,
      };
      if (outcome.state === "sent") log.info(fields, "card sent to Knot");
      else log.warn({ ...fields, reason: outcome.errorMessage }, "send-card job failed");
    } catch (error) {
      if (isLeaseLost(error)) {
        log.warn({ taskId: job.taskId }, "send-card lease lost to another worker; stopping this attempt");
        return;
      }
      log.error(
        { taskId: job.taskId, err: error },
        "send-card job crashed; it will be retried after its lease",
      );
    }
  }

  /**
   * Runs a job this instance leased to itself when it recorded the AUTHENTICATED webhook, in a free
   * slot or, when all SEND_CARD_CONCURRENCY slots are busy, after the jobs queued before it.
   */
  runClaimed(job: SendCardJob): void {
    if (this.stopped || this.held.has(job.taskId)) return;
    this.enqueue(job);
  }

  /** Stops claiming, drops queued jobs (their leases lapse to the next owner), waits for those running. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.limit.clearQueue();
    await Promise.allSettled([...this.running]);
  }
}
