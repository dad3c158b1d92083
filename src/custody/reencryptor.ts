/**
 * The pool of worker threads that run re-encryptions (piscina), sized to the cores: RSA private
 * operations are CPU-bound and the main thread must stay free for TLS and gRPC framing.
 *
 * The call's Key goes with the job. A key that lives in this process (Key.inProcess) travels with the
 * task (cloning a KeyObject shares the native key, it costs nothing measurable); for any other key the
 * worker gets a MessagePort to ask the main thread for the unwrap (worker/worker-keys.ts).
 */
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { MessageChannel } from "node:worker_threads";
import { Piscina } from "piscina";
import type { UnwrapKey } from "../crypto/jwe-decrypt.js";
import type { Key } from "../keystore/key-store.js";
import type { KnotUser } from "./card/knot-user.js";
import { OverloadedError, toGrpcFailure } from "./errors.js";
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

  async run(job: ReencryptJob, key: Key): Promise<ReencryptResult> {
    if (this.pool.queueSize >= this.options.maxQueue)
      throw new OverloadedError("custody is at capacity; retry with backoff");
    const { info, generation, inProcess } = key;
    if (inProcess) return this.pool.run({ ...job, key: { info, generation, inProcess } });
    const { port1, port2 } = new MessageChannel();
    port1.on("message", async (encryptedKey: Uint8Array) => {
      const reply = await answerUnwrap(key.unwrap, encryptedKey);
      port1.postMessage(reply, reply.ok ? [reply.cek.buffer as ArrayBuffer] : []);
    });
    try {
      return await this.pool.run(
        { ...job, key: { info, generation, unwrapPort: port2 } },
        { transferList: [port2] },
      );
    } finally {
      port1.close();
    }
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

async function answerUnwrap(unwrap: UnwrapKey, encryptedKey: Uint8Array): Promise<UnwrapReply> {
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
    return { ok: false, failure: toGrpcFailure(err) };
  }
}
