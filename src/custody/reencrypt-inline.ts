/**
 * Inline mode (CUSTODY_WORKERS=0): re-encryptions run on the main thread, with synchronous node:crypto,
 * and one process uses one core; a host scales by running one custody process per core behind the
 * gateway's round-robin channel (docs/custody.md, "Threads or inline"). What it saves is the
 * cross-thread round trip of the worker pool, which measured as the largest cost per call after the
 * RSA operation itself (BENCHMARKS.md, bench:custody).
 *
 * The main thread also serves TLS handshakes, health checks and new requests, so the CPU-bound work is
 * taken from a bounded queue at most BATCH jobs per event-loop turn, with setImmediate between batches:
 * I/O waits behind at most one batch (about 1 ms per job). A full queue is OVERLOADED, as in the pool.
 *
 * A key that lives in this process (the file store) is unwrapped inside the batch, since that is the RSA
 * operation. Any other key (a token's) is unwrapped first, while other work proceeds (the token call runs
 * on libuv's pool), and the job joins the queue holding its content key, which is overwritten when the
 * job ends whatever happens. Everything after the unwrap is the same core the workers run.
 */
import type { UnwrapKey } from "../core/crypto/jwe-decrypt.js";
import { cachedKnotJwkParser } from "../core/crypto/knot-jwk.js";
import { OverloadedError, toGrpcFailure } from "./errors.js";
import type { Key } from "./keystore/key-store.js";
import type { ReencryptJob, ReencryptRunner } from "./reencryptor.js";
import { runReencryption } from "./worker/run-reencryption.js";
import type { ReencryptResult } from "./worker/task.js";

/**
 * Jobs run per event-loop turn. More per turn answers more calls per turn (one read, one TLS write, one
 * pass of the loop for all of them); fewer bounds the wait of everything else on the main thread.
 * Measured on 2 cores at 64 calls in flight (BENCHMARKS.md, bench:custody "Inline mode"): 4 per turn cost
 * ~2400 µs of CPU per call, 16 ~1600, 32 about the same as 16; 16 keeps the wait at ~15 ms.
 */
const BATCH = 16;

interface Ready {
  readonly job: ReencryptJob;
  readonly unwrap: UnwrapKey;
  /** The content key a token unwrapped, overwritten when the job ends. */
  readonly cek?: Buffer;
  readonly resolve: (result: ReencryptResult) => void;
}

export class InlineReencryptor implements ReencryptRunner {
  readonly workers = 0;
  private readonly ready: Ready[] = [];
  private readonly recipientFor = cachedKnotJwkParser();
  /** Jobs admitted whose token unwrap has not answered yet; they count against maxQueue. */
  private unwrapping = 0;
  private running = false;
  private scheduled = false;
  private closing = false;
  private drained: (() => void) | undefined;

  constructor(private readonly options: { readonly maxQueue: number }) {}

  get queued(): number {
    return this.ready.length + this.unwrapping;
  }

  /** Nothing to start: the core's modules are loaded with the service. */
  async warmUp(): Promise<void> {}

  /** Nothing to drop: a file-store key is used through the store's own unwrap, never copied here. */
  keySetChanged(): void {}

  async run(job: ReencryptJob, key: Key): Promise<ReencryptResult> {
    if (this.closing || this.queued >= this.options.maxQueue) return overloaded();
    if (key.inProcess) return this.enqueue(job, key.unwrap);
    this.unwrapping++;
    let cek: Buffer;
    try {
      cek = await key.unwrap(job.jwe.encryptedKey);
    } catch (err) {
      return { ok: false, failure: toGrpcFailure(err) };
    } finally {
      this.unwrapping--;
      this.checkDrained();
    }
    // The core's decryptJwe substitutes a random key for one of the wrong length (the UnwrapKey contract).
    return this.enqueue(job, async () => cek, cek);
  }

  /** Lets the accepted jobs finish (token unwraps included), then refuses new ones. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.busy()) await new Promise<void>((resolve) => (this.drained = resolve));
  }

  private enqueue(job: ReencryptJob, unwrap: UnwrapKey, cek?: Buffer): Promise<ReencryptResult> {
    return new Promise((resolve) => {
      this.ready.push({ job, unwrap, resolve, ...(cek ? { cek } : {}) });
      this.schedule();
    });
  }

  private busy(): boolean {
    return this.running || this.ready.length > 0 || this.unwrapping > 0;
  }

  private schedule(): void {
    if (this.scheduled || this.running || this.ready.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.runBatch();
    });
  }

  private async runBatch(): Promise<void> {
    this.running = true;
    // As in the workers (worker/reencrypt-worker.ts): Node 24's key-type checks throw and catch inside
    // every cipher and RSA call, and capturing those stacks was ~50 µs per re-encryption. Nothing this
    // batch runs reports more than an error's class name. The jobs' promises settle in microtasks, so
    // the whole batch runs within this turn and the limit is restored before any other I/O callback.
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      for (let i = 0; i < BATCH && this.ready.length > 0; i++) {
        const item = this.ready.shift()!;
        item.resolve(await this.reencrypt(item));
      }
    } finally {
      Error.stackTraceLimit = stackTraceLimit;
      this.running = false;
      this.schedule();
      this.checkDrained();
    }
  }

  private async reencrypt({ job, unwrap, cek }: Ready): Promise<ReencryptResult> {
    try {
      return await runReencryption(job, this.recipientFor, () => ({ jwe: job.jwe, unwrap }));
    } finally {
      // decryptJwe overwrites the content key it used; this covers the job that never reached it.
      cek?.fill(0);
    }
  }

  private checkDrained(): void {
    if (this.drained && !this.busy()) this.drained();
  }
}

function overloaded(): ReencryptResult {
  return {
    ok: false,
    failure: toGrpcFailure(new OverloadedError("custody is at capacity; retry with backoff")),
  };
}
