/**
 * The pool of worker threads that run re-encryptions (piscina), sized to the cores: RSA private
 * operations are CPU-bound and the main thread must stay free for TLS and gRPC framing.
 *
 * How the private key reaches the work is the KeyAccess of the call (see key-source.ts): a KeyObject
 * travels with the task (cloning one shares the native key, it costs nothing measurable), or the worker
 * gets a MessagePort to ask the main thread for the unwrap.
 */
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { MessageChannel } from "node:worker_threads";
import { Piscina } from "piscina";
import { JweDecryptError } from "../crypto/errors.js";
import type { KnotUser } from "./card/knot-user.js";
import { OverloadedError, toGrpcFailure } from "./errors.js";
import type { KeyAccess } from "./key-source.js";
import type { ReencryptResult, ReencryptTask, UnwrapReply } from "./worker/task.js";

export interface ReencryptorOptions {
  /** Worker threads; defaults to the number of cores. */
  readonly workers?: number;
  /** Jobs waiting for a worker before new ones are refused with RESOURCE_EXHAUSTED. */
  readonly maxQueue: number;
}

export interface ReencryptJob {
  readonly secretsJwe: string;
  readonly knotJwk: string;
  readonly user: KnotUser;
  readonly now: number;
  readonly deadline: number;
}

const TASKS_PER_WORKER = 4;

function workerEntry(): { filename: string; execArgv: string[] } {
  // Running from TypeScript sources (tsx, vitest): the worker is a .ts file and needs tsx's loader too.
  const fromSource = import.meta.url.endsWith(".ts");
  const url = new URL(`./worker/reencrypt-worker.${fromSource ? "ts" : "js"}`, import.meta.url);
  const execArgv = fromSource ? [...process.execArgv, "--import", "tsx"] : [...process.execArgv];
  return { filename: fileURLToPath(url), execArgv };
}

export class Reencryptor {
  private readonly pool: Piscina<ReencryptTask, ReencryptResult>;
  readonly workers: number;

  constructor(private readonly options: ReencryptorOptions) {
    this.workers = options.workers ?? availableParallelism();
    this.pool = new Piscina({
      ...workerEntry(),
      minThreads: this.workers,
      maxThreads: this.workers,
      idleTimeout: Number.POSITIVE_INFINITY,
      maxQueue: options.maxQueue,
      // Each worker holds a few jobs in its own queue, so it starts the next one as soon as one ends
      // instead of idling until the main thread (busy with TLS and gRPC) hands it more work. The jobs
      // are CPU-bound and synchronous inside, so they still run one after another.
      concurrentTasksPerWorker: TASKS_PER_WORKER,
    });
  }

  /**
   * Loads the worker modules now, so the first real calls do not pay for it: jobs whose deadline has
   * already passed go through every worker's entry point and return before any key is touched.
   */
  async warmUp(): Promise<void> {
    const expired = { secretsJwe: "", knotJwk: "", user: {} as KnotUser, now: 0, deadline: 0 };
    await Promise.all(Array.from({ length: this.workers * 2 }, () => this.pool.run(expired)));
  }

  get queueSize(): number {
    return this.pool.queueSize;
  }

  async run(job: ReencryptJob, access: KeyAccess): Promise<ReencryptResult> {
    if (this.pool.queueSize >= this.options.maxQueue)
      throw new OverloadedError("custody is at capacity; retry with backoff");
    if (access.kind === "in-worker") {
      const { privateKey: key, fingerprint, generation } = access;
      return this.pool.run({ ...job, privateKey: { key, fingerprint, generation } });
    }
    const { port1, port2 } = new MessageChannel();
    port1.on("message", (encryptedKey: Uint8Array) => {
      answerUnwrap(access.unwrap, encryptedKey).then(
        (reply) => port1.postMessage(reply, reply.ok ? [reply.cek.buffer as ArrayBuffer] : []),
        () => port1.postMessage({ ok: false, decryptFailed: true } satisfies UnwrapReply),
      );
    });
    try {
      return await this.pool.run({ ...job, unwrapPort: port2 }, { transferList: [port2] });
    } finally {
      port1.close();
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

async function answerUnwrap(
  unwrap: (encryptedKey: Buffer) => Promise<Buffer>,
  encryptedKey: Uint8Array,
): Promise<UnwrapReply> {
  try {
    const cek = await unwrap(
      Buffer.from(encryptedKey.buffer, encryptedKey.byteOffset, encryptedKey.byteLength),
    );
    // A fresh ArrayBuffer of exactly the key, transferred (not copied) to the worker.
    const copy = new Uint8Array(cek.length);
    copy.set(cek);
    cek.fill(0);
    return { ok: true, cek: copy };
  } catch (err) {
    if (err instanceof JweDecryptError) return { ok: false, decryptFailed: true };
    return { ok: false, decryptFailed: false, failure: toGrpcFailure(err) };
  }
}
