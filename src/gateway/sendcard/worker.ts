/**
 * Runs send-card jobs from storage: woken at once when this instance records an AUTHENTICATED, and
 * polling for the rest (jobs left by a restart or recorded by another instance). Jobs are leased in
 * storage, so any number of instances can run this loop against one PostgreSQL. The poll also expires
 * abandoned jobs and purges secrets past their retention (GatewayConfig.secrets).
 */
import { randomUUID } from "node:crypto";
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
  private timer?: NodeJS.Timeout;
  private ticking = false;
  private again = false;
  private stopped = false;
  // Expiry sweeps ride on the poll timer only: a wake-up for a fresh job should cost one write, not two.
  private expireDue = true;

  constructor(private readonly opts: WorkerOptions) {}

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
    const free = this.opts.concurrency - this.running.size;
    if (free <= 0) return;
    const jobs = await repo.claimJobs(this.owner, now, now + this.opts.leaseMs, free);
    for (const job of jobs) {
      const p = this.run(job).finally(() => this.running.delete(p));
      this.running.add(p);
    }
  }

  private async run(job: SendCardJob): Promise<void> {
    const { repo, metrics, log } = this.opts;
    try {
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

  /** Runs a job this instance leased to itself when it recorded the AUTHENTICATED webhook. */
  runClaimed(job: SendCardJob): void {
    if (this.stopped) return;
    const p = this.run(job).finally(() => this.running.delete(p));
    this.running.add(p);
  }

  /** Stops claiming and waits for jobs in flight (bounded by their deadlines). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.allSettled([...this.running]);
  }
}
