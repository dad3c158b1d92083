/**
 * The pool of worker threads that run re-encryptions, sized to the cores: RSA private operations are
 * CPU-bound and the main thread must stay free for TLS and gRPC framing. The other mode,
 * CUSTODY_WORKERS=0, runs them on the main thread instead (reencrypt-inline.ts); createReencryptor picks.
 *
 * Hand-written rather than a general pool library (piscina before): custody needs a small, fixed part of
 * one, and the parts it needs are custody's own (the content key a token unwrapped before dispatch, the
 * per-worker key copies sent once, crash handling with stable failures). Its main-thread CPU per call
 * measured about the same as piscina's: the cross-thread round trip itself dominates both
 * (BENCHMARKS.md). Each worker has its one long-lived port; a task is one postMessage whose bytes (the
 * parsed JWE, and the content key for a token) travel in one transferred ArrayBuffer; replies are
 * matched by id. A task goes to the least busy worker, at most TASKS_PER_WORKER each, then waits in a
 * bounded queue; a full queue is OVERLOADED (RESOURCE_EXHAUSTED). A worker that dies fails its calls
 * with INTERNAL and is replaced.
 *
 * The call's Key decides where the RSA operation runs. A key that lives in this process (Key.inProcess,
 * the file store) is unwrapped by the worker with its own copy (worker/worker-keys.ts), sent once per
 * worker and key-set generation; every key-set reload (keySetChanged) tells each worker to drop its
 * copies of older generations at once. Any other key (a token's) is unwrapped here before dispatch, and only
 * the 32-byte content key goes to the worker: real or random, the worker cannot tell, and the token
 * sees the same calls either way (the UnwrapKey contract).
 */
import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { KnotUser } from "../core/card/knot-user.js";
import type { ParsedJwe } from "../core/crypto/jwe-decrypt.js";
import { InternalError, OverloadedError, toGrpcFailure } from "./errors.js";
import type { Key } from "./keystore/key-store.js";
import { InlineReencryptor } from "./reencrypt-inline.js";
import {
  CONTENT_KEY_BYTES,
  type KeyCopyStats,
  type ReencryptResult,
  type WorkerControl,
  type WorkerReply,
  type WorkerStatsReply,
  type WorkerTask,
} from "./worker/task.js";

export type { ReencryptResult } from "./worker/task.js";

export interface ReencryptorOptions {
  /** Worker threads; defaults to the number of cores. */
  readonly workers?: number;
  /** Jobs waiting for a worker before new ones are refused with RESOURCE_EXHAUSTED. */
  readonly maxQueue: number;
}

export interface ReencryptJob {
  /** Parsed and checked at the service boundary; the worker uses its bytes without parsing again. */
  readonly jwe: ParsedJwe;
  readonly knotJwk: string;
  readonly user: KnotUser;
  readonly now: number;
  readonly deadline: number;
}

/** What the service needs of a re-encryption runner: the worker pool, or the inline one. */
export interface ReencryptRunner {
  /** Worker threads; 0 in inline mode (re-encryption on the main thread). */
  readonly workers: number;
  /** Jobs admitted and not yet running (the metrics' queue depth); at maxQueue, new calls are OVERLOADED. */
  readonly queued: number;
  warmUp(): Promise<void>;
  /** Resolves with the result or a failure; rejects only on a bug. */
  run(job: ReencryptJob, key: Key): Promise<ReencryptResult>;
  /**
   * The key store loaded `generation`: copies of keys of older sets are dropped now (the pool's workers
   * hold some; inline mode holds none, it unwraps with the store's own key). Calls already running on an
   * older set still finish.
   */
  keySetChanged(generation: number): void;
  /** Lets the accepted jobs finish, then refuses new ones and releases the threads. */
  close(): Promise<void>;
}

/** CUSTODY_WORKERS: 0 = inline on the main thread (reencrypt-inline.ts), otherwise this pool's size. */
export function createReencryptor(options: {
  readonly workers: number;
  readonly maxQueue: number;
}): ReencryptRunner {
  return options.workers === 0 ? new InlineReencryptor(options) : new Reencryptor(options);
}

/**
 * Each worker holds a few tasks in its port's queue, so it starts the next one as soon as one ends
 * instead of idling until the main thread (busy with TLS and gRPC) hands it more work. The tasks are
 * CPU-bound and synchronous inside, so they still run one after another.
 */
const TASKS_PER_WORKER = 4;

type Pending = { readonly resolve: (result: ReencryptResult) => void };
/**
 * How the task carries its key, decided when a worker is chosen: whether a file-store key must travel
 * depends on what that worker already holds.
 */
type Carry = (slot: Slot) => WorkerTask["key"];
type Queued = { readonly task: Omit<WorkerTask, "key">; readonly carry: Carry; readonly pending: Pending };

interface Slot {
  readonly worker: Worker;
  readonly inFlight: Map<number, Pending>;
  /** key-stats requests awaiting the worker's answer; not tasks, so not counted as load. */
  readonly statsPending: Map<number, (stats: KeyCopyStats) => void>;
  /** Mirror of the worker's key copies (worker-keys.ts): which keys it holds, for its newest generation. */
  readonly held: Set<string>;
  newestGeneration: number;
  lastError?: string;
}

function workerEntry(): { filename: string; execArgv: string[] } {
  // Running from TypeScript sources (tsx, vitest): the worker is a .ts file and needs tsx's loader too.
  const fromSource = import.meta.url.endsWith(".ts");
  const url = new URL(`./worker/reencrypt-worker.${fromSource ? "ts" : "js"}`, import.meta.url);
  const execArgv = fromSource ? [...process.execArgv, "--import", "tsx"] : [...process.execArgv];
  return { filename: fileURLToPath(url), execArgv };
}

const UNWRAPPED = { kind: "unwrapped" } as const;

const overloaded = (): ReencryptResult => ({
  ok: false,
  failure: toGrpcFailure(new OverloadedError("custody is at capacity; retry with backoff")),
});

export class Reencryptor implements ReencryptRunner {
  readonly workers: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Queued[] = [];
  private readonly entry = workerEntry();
  private nextId = 1;
  /** The newest key-set generation announced by keySetChanged; a replacement worker starts from it. */
  private keyGeneration = 0;
  private closing = false;
  private drained: (() => void) | undefined;

  constructor(private readonly options: ReencryptorOptions) {
    this.workers = options.workers ?? availableParallelism();
    for (let i = 0; i < this.workers; i++) this.slots.push(this.spawn());
  }

  /** Jobs waiting for a worker (the metrics' queue depth); at maxQueue, new calls are OVERLOADED. */
  get queued(): number {
    return this.queue.length;
  }

  /** The live worker threads (tests end one mid-call to check recovery). */
  get threads(): readonly Worker[] {
    return this.slots.map((slot) => slot.worker);
  }

  /**
   * Loads the worker modules now, so the first real calls do not pay for it: tasks whose deadline has
   * already passed go through every worker's entry point and return before any key is touched.
   */
  async warmUp(): Promise<void> {
    const results = await Promise.all(
      this.slots.map((slot) => {
        const task = {
          id: this.nextId++,
          bytes: new ArrayBuffer(0),
          aadLength: 0,
          encryptedKeyLength: 0,
          ciphertextLength: 0,
          knotJwk: "",
          user: {} as KnotUser,
          now: 0,
          deadline: 0,
        };
        return new Promise<ReencryptResult>((resolve) => this.send(slot, task, { resolve }));
      }),
    );
    // A worker that cannot load its modules would be replaced forever: stop the start-up instead.
    const broken = results.find((r) => r.ok || r.failure.code !== "DEADLINE_EXCEEDED");
    if (broken)
      throw new Error(
        `a re-encryption worker failed to start (${broken.ok ? "answered" : (broken.internalKind ?? broken.failure.code)})`,
      );
  }

  /** Resolves with the result or a failure; rejects only on a bug. */
  async run(job: ReencryptJob, key: Key): Promise<ReencryptResult> {
    if (this.closing || !this.hasRoom()) return overloaded();
    if (key.inProcess) {
      const { fingerprint } = key.info;
      return this.submit(job, pack(job.jwe, undefined), (slot) => {
        const id = `${key.generation}:${fingerprint}`;
        if (key.generation > slot.newestGeneration) {
          slot.newestGeneration = key.generation;
          slot.held.clear();
        }
        if (slot.held.has(id)) return { kind: "in-process", fingerprint, generation: key.generation };
        if (key.generation === slot.newestGeneration) slot.held.add(id);
        return { kind: "in-process", fingerprint, generation: key.generation, privateKey: key.inProcess };
      });
    }
    let cek: Buffer;
    try {
      cek = await key.unwrap(job.jwe.encryptedKey);
    } catch (err) {
      return { ok: false, failure: toGrpcFailure(err) };
    }
    let packed: Packed;
    try {
      // The length is the store's public output; a store that breaks the contract gets the one
      // decrypt failure (as in decryptJwe), not a misaligned task.
      packed = pack(job.jwe, cek.length === CONTENT_KEY_BYTES ? cek : randomBytes(CONTENT_KEY_BYTES));
    } finally {
      cek.fill(0);
    }
    return this.submit(job, packed, () => UNWRAPPED);
  }

  keySetChanged(generation: number): void {
    if (generation <= this.keyGeneration) return;
    this.keyGeneration = generation;
    for (const slot of this.slots) this.dropOlder(slot);
  }

  /**
   * Which key copies each worker holds, by name only: for tests and diagnostics, never key material.
   * Sent on the task port, so it answers after every message posted before it.
   */
  keyCopies(): Promise<KeyCopyStats[]> {
    return Promise.all(
      this.slots.map(
        (slot) =>
          new Promise<KeyCopyStats>((resolve) => {
            const id = this.nextId++;
            slot.statsPending.set(id, resolve);
            slot.worker.postMessage({ control: "key-stats", id } satisfies WorkerControl);
          }),
      ),
    );
  }

  /** Waits for the tasks already accepted, then stops the workers. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.pendingCount() > 0) await new Promise<void>((resolve) => (this.drained = resolve));
    await Promise.all(this.slots.map((slot) => slot.worker.terminate()));
  }

  private hasRoom(): boolean {
    return this.queue.length < this.options.maxQueue || this.leastBusy() !== undefined;
  }

  private pendingCount(): number {
    return this.queue.length + this.slots.reduce((n, slot) => n + slot.inFlight.size, 0);
  }

  private leastBusy(): Slot | undefined {
    let best: Slot | undefined;
    for (const slot of this.slots) {
      if (slot.inFlight.size < TASKS_PER_WORKER && (!best || slot.inFlight.size < best.inFlight.size))
        best = slot;
    }
    return best;
  }

  private submit(job: ReencryptJob, packed: Packed, carry: Carry): Promise<ReencryptResult> {
    return new Promise((resolve) => {
      const task = {
        id: this.nextId++,
        ...packed,
        knotJwk: job.knotJwk,
        user: job.user,
        now: job.now,
        deadline: job.deadline,
      };
      const slot = this.leastBusy();
      if (slot) return this.send(slot, { ...task, key: carry(slot) }, { resolve });
      if (this.queue.length >= this.options.maxQueue) {
        new Uint8Array(packed.bytes).fill(0);
        return resolve(overloaded());
      }
      this.queue.push({ task, carry, pending: { resolve } });
    });
  }

  /**
   * Tasks already posted to the worker keep their order before this message, so those that rely on a
   * copy still find it; a later task of an older generation carries its key again, since the mirror is
   * cleared here.
   */
  private dropOlder(slot: Slot): void {
    if (this.keyGeneration <= slot.newestGeneration) return;
    slot.newestGeneration = this.keyGeneration;
    slot.held.clear();
    slot.worker.postMessage({
      control: "drop-older",
      generation: this.keyGeneration,
    } satisfies WorkerControl);
  }

  private send(slot: Slot, task: WorkerTask, pending: Pending): void {
    slot.inFlight.set(task.id, pending);
    slot.worker.postMessage(task, [task.bytes]);
  }

  private pump(): void {
    let slot = this.leastBusy();
    while (slot && this.queue.length > 0) {
      const { task, carry, pending } = this.queue.shift()!;
      this.send(slot, { ...task, key: carry(slot) }, pending);
      slot = this.leastBusy();
    }
    if (this.drained && this.pendingCount() === 0) this.drained();
  }

  private spawn(): Slot {
    const worker = new Worker(this.entry.filename, { execArgv: this.entry.execArgv });
    const slot: Slot = {
      worker,
      inFlight: new Map(),
      statsPending: new Map(),
      held: new Set(),
      newestGeneration: 0,
    };
    // A replacement must not cache a key of a set older than the last reload for a call still queued.
    this.dropOlder(slot);
    worker.on("message", (reply: WorkerReply | WorkerStatsReply) => {
      const pending = slot.inFlight.get(reply.id);
      if (!pending) {
        if ("stats" in reply) {
          slot.statsPending.get(reply.id)?.(reply.stats);
          slot.statsPending.delete(reply.id);
        }
        return;
      }
      slot.inFlight.delete(reply.id);
      pending.resolve(reply as WorkerReply);
      this.pump();
    });
    // An uncaught error ends the worker; 'exit' follows and fails its calls.
    worker.on("error", (err) => {
      slot.lastError = err instanceof Error ? err.name : typeof err;
    });
    worker.on("exit", () => {
      if (this.closing && this.pendingCount() === 0) return;
      const failure = toGrpcFailure(new InternalError());
      const internalKind = `WorkerExited(${slot.lastError ?? "terminated"})`;
      const lost = [...slot.inFlight.values()];
      slot.inFlight.clear();
      // A dead worker holds no copies.
      for (const resolve of slot.statsPending.values()) resolve({ newestGeneration: 0, held: [] });
      slot.statsPending.clear();
      this.slots[this.slots.indexOf(slot)] = this.spawn();
      for (const pending of lost) pending.resolve({ ok: false, failure, internalKind });
      this.pump();
    });
    return slot;
  }
}

interface Packed {
  readonly bytes: ArrayBuffer;
  readonly aadLength: number;
  readonly encryptedKeyLength: number;
  readonly ciphertextLength: number;
}

/**
 * The JWE's parts (and the content key, when it was unwrapped here) copied into one fresh ArrayBuffer
 * that is transferred, not cloned. The parts themselves may sit in Node's shared Buffer pool, which
 * cannot be transferred.
 */
function pack(jwe: ParsedJwe, cek: Buffer | undefined): Packed {
  const parts = cek
    ? [cek, jwe.aad, jwe.iv, jwe.ciphertext, jwe.tag]
    : [jwe.aad, jwe.encryptedKey, jwe.iv, jwe.ciphertext, jwe.tag];
  let length = 0;
  for (const part of parts) length += part.length;
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    bytes.set(part, at);
    at += part.length;
  }
  return {
    bytes: bytes.buffer,
    aadLength: jwe.aad.length,
    encryptedKeyLength: cek ? 0 : jwe.encryptedKey.length,
    ciphertextLength: jwe.ciphertext.length,
  };
}
