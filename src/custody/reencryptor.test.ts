/**
 * The re-encryption runners on their own, both modes (CUSTODY_WORKERS > 0: the worker pool; 0: inline
 * on the main thread): a full queue answers OVERLOADED (RESOURCE_EXHAUSTED), close() lets accepted calls
 * finish, a key the main thread unwraps (a token's) gives a content key that decrypts and is overwritten
 * afterwards. Pool only: a worker that dies mid-call fails its calls cleanly and is replaced. Inline
 * only: other callbacks on the main thread run between batches.
 */
import { createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { compactDecrypt } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { parseKnotUser } from "../core/card/knot-user.js";
import { fingerprintForms } from "../core/crypto/fingerprint.js";
import { parseCompactJwe } from "../core/crypto/jwe-decrypt.js";
import { dotvaJwe } from "../tools/testing/custody-harness.js";
import { USER } from "../tools/testing/profile.js";
import type { Key } from "./keystore/key-store.js";
import { privateKeyUnwrap } from "./keystore/private-key-unwrap.js";
import { createReencryptor, Reencryptor, type ReencryptResult, type ReencryptRunner } from "./reencryptor.js";

const dotva = generateKeyPairSync("rsa", { modulusLength: 2048 });
const knot = generateKeyPairSync("rsa", { modulusLength: 2048 });
const knotJwk = JSON.stringify(knot.publicKey.export({ format: "jwk" }));
const user = parseKnotUser(USER);
const secrets = () => ({
  pan: "4242424242424242",
  cvv: "123",
  expiry_month: "12",
  expiry_year: String(new Date().getFullYear() + 2),
});

function keyOf(privateKey: KeyObject, where: "in-process" | "main-thread"): Key {
  const forms = fingerprintForms(createPublicKey(privateKey));
  const info = {
    fingerprint: forms.canonical,
    aliases: forms.aliases,
    state: "active" as const,
    modulusBits: 2048,
    spki: createPublicKey(privateKey).export({ type: "spki", format: "der" }),
    label: "test",
    source: "test",
  };
  const unwrap = privateKeyUnwrap(privateKey);
  return where === "in-process"
    ? { info, generation: 1, unwrap, inProcess: privateKey }
    : { info, generation: 1, unwrap };
}

let pool: ReencryptRunner | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

async function job() {
  const now = Date.now();
  return {
    jwe: parseCompactJwe(await dotvaJwe(dotva.publicKey, secrets())),
    knotJwk,
    user,
    now,
    deadline: now + 30_000,
  };
}

function outcome(result: ReencryptResult): string {
  return result.ok ? "ok" : `${result.failure.grpcStatus}:${result.failure.code}`;
}

describe("Reencryptor (worker pool)", () => {
  it("fails the calls of a worker that dies mid-call with INTERNAL, runs the queued ones on its replacement, and recovers", async () => {
    const workers = new Reencryptor({ workers: 1, maxQueue: 8 });
    pool = workers;
    await workers.warmUp();
    const key = keyOf(dotva.privateKey, "in-process");
    const jobs = await Promise.all(Array.from({ length: 6 }, job));
    const dying = workers.threads[0]!;
    // Four go to the worker at once, two wait in the queue; the worker is ended before it can answer.
    const calls = jobs.map((j) => pool!.run(j, key));
    await dying.terminate();
    const results = await Promise.all(calls);
    expect(results.map(outcome)).toEqual([...Array(4).fill(`${status.INTERNAL}:INTERNAL`), "ok", "ok"]);
    expect(results[0]).toMatchObject({ internalKind: "WorkerExited(terminated)" });
    expect(results[0]!.ok ? "" : results[0]!.failure.message).toBe(
      "internal error; the custody operator has the details",
    );
    expect(workers.threads[0]).not.toBe(dying);
    const next = await pool.run(await job(), key);
    expect(outcome(next)).toBe("ok");
    const { plaintext } = await compactDecrypt(next.ok ? next.jwe : "", knot.privateKey);
    expect(JSON.parse(new TextDecoder().decode(plaintext)).card.number).toBe("4242424242424242");
  });

  it("a key-set reload makes every worker drop its copies of the older set at once, with no further call", async () => {
    const workers = new Reencryptor({ workers: 2, maxQueue: 8 });
    pool = workers;
    await workers.warmUp();
    const keyA = keyOf(dotva.privateKey, "in-process");
    const copyOfA = `1:${keyA.info.fingerprint}`;
    // Four concurrent calls: the least busy worker takes each, so both workers get a copy of A.
    const results = await Promise.all(
      (await Promise.all(Array.from({ length: 4 }, job))).map((j) => workers.run(j, keyA)),
    );
    expect(results.map(outcome)).toEqual(Array(4).fill("ok"));
    expect(await workers.keyCopies()).toEqual([
      { newestGeneration: 1, held: [copyOfA] },
      { newestGeneration: 1, held: [copyOfA] },
    ]);

    // Generation 2 no longer has A, and no call comes after the reload.
    workers.keySetChanged(2);
    expect(await workers.keyCopies()).toEqual([
      { newestGeneration: 2, held: [] },
      { newestGeneration: 2, held: [] },
    ]);
  });

  it("calls in flight across a reload finish on the older set, and leave no copy of it behind", async () => {
    const workers = new Reencryptor({ workers: 1, maxQueue: 8 });
    pool = workers;
    await workers.warmUp();
    const keyA = keyOf(dotva.privateKey, "in-process");
    const jobs = await Promise.all(Array.from({ length: 6 }, job));
    // Four reach the worker (three relying on the copy the first one brings), two wait in the pool's
    // queue and are dispatched after the reload, when the worker has dropped the copy.
    const calls = jobs.map((j) => workers.run(j, keyA));
    workers.keySetChanged(2);
    const results = await Promise.all(calls);
    expect(results.map(outcome)).toEqual(Array(6).fill("ok"));
    const last = results[5]!;
    const { plaintext } = await compactDecrypt(last.ok ? last.jwe : "", knot.privateKey);
    expect(JSON.parse(new TextDecoder().decode(plaintext)).card.number).toBe("4242424242424242");
    expect(await workers.keyCopies()).toEqual([{ newestGeneration: 2, held: [] }]);
  });

  it("a worker that replaces a dead one after a reload does not keep a copy for a call of the older set", async () => {
    const workers = new Reencryptor({ workers: 1, maxQueue: 8 });
    pool = workers;
    await workers.warmUp();
    const keyA = keyOf(dotva.privateKey, "in-process");
    workers.keySetChanged(2);
    await workers.threads[0]!.terminate();
    const result = await workers.run(await job(), keyA);
    expect(outcome(result)).toBe("ok");
    expect(await workers.keyCopies()).toEqual([{ newestGeneration: 2, held: [] }]);
  });
});

/** Calls a runner holds besides its queue: the pool's tasks already in its workers' ports. */
const MODES = [
  { name: "worker pool, 1 thread", workers: 1, beyondQueue: 4 },
  { name: "inline", workers: 0, beyondQueue: 0 },
] as const;

describe.each(MODES)("re-encryption runner ($name)", ({ workers, beyondQueue }) => {
  it("answers OVERLOADED (RESOURCE_EXHAUSTED) when every worker is busy and the queue is full, and runs what it accepted", async () => {
    pool = createReencryptor({ workers, maxQueue: 2 });
    await pool.warmUp();
    const key = keyOf(dotva.privateKey, "in-process");
    const accepted = beyondQueue + 2;
    const jobs = await Promise.all(Array.from({ length: accepted + 1 }, job));
    const results = await Promise.all(jobs.map((j) => pool!.run(j, key)));
    expect(results.map(outcome)).toEqual([
      ...Array(accepted).fill("ok"),
      `${status.RESOURCE_EXHAUSTED}:OVERLOADED`,
    ]);
  });

  it("close() lets the calls it accepted finish, then refuses new ones", async () => {
    pool = createReencryptor({ workers, maxQueue: 6 });
    await pool.warmUp();
    const key = keyOf(dotva.privateKey, "in-process");
    const jobs = await Promise.all(Array.from({ length: 6 }, job));
    const calls = jobs.map((j) => pool!.run(j, key));
    const closed = pool.close();
    const late = await pool.run(await job(), key);
    await closed;
    expect((await Promise.all(calls)).map(outcome)).toEqual(Array(6).fill("ok"));
    expect(outcome(late)).toBe(`${status.RESOURCE_EXHAUSTED}:OVERLOADED`);
    pool = undefined;
  });

  it("a key unwrapped on the main thread (a token's) gives the worker the content key; a tampered encrypted key fails like any decrypt failure", async () => {
    pool = createReencryptor({ workers: workers && 2, maxQueue: 4 });
    await pool.warmUp();
    const key = keyOf(dotva.privateKey, "main-thread");
    expect(outcome(await pool.run(await job(), key))).toBe("ok");
    const tampered = await job();
    tampered.jwe.encryptedKey[10]! ^= 1;
    expect(outcome(await pool.run(tampered, key))).toBe(`${status.INVALID_ARGUMENT}:JWE_DECRYPT_FAILED`);
  });
  it("overwrites the content key a token unwrapped, also for a job whose deadline passed before it ran", async () => {
    pool = createReencryptor({ workers, maxQueue: 4 });
    await pool.warmUp();
    const token = keyOf(dotva.privateKey, "main-thread");
    const handedOut: Buffer[] = [];
    const key: Key = {
      ...token,
      unwrap: async (encryptedKey) => {
        const cek = await token.unwrap(encryptedKey);
        handedOut.push(cek);
        return cek;
      },
    };
    const ok = await pool.run(await job(), key);
    const expired = await pool.run({ ...(await job()), deadline: Date.now() - 1 }, key);
    expect([outcome(ok), outcome(expired)]).toEqual(["ok", `${status.DEADLINE_EXCEEDED}:DEADLINE_EXCEEDED`]);
    expect(handedOut).toHaveLength(2);
    for (const cek of handedOut) expect(cek.equals(Buffer.alloc(cek.length))).toBe(true);
  });
});

describe("re-encryption runner (inline only)", () => {
  it("runs other main-thread callbacks between batches of jobs, and restores the stack-trace limit", async () => {
    pool = createReencryptor({ workers: 0, maxQueue: 64 });
    const limitBefore = Error.stackTraceLimit;
    const key = keyOf(dotva.privateKey, "in-process");
    const jobs = await Promise.all(Array.from({ length: 40 }, job));
    let done = 0;
    const calls = jobs.map((j) =>
      pool!.run(j, key).then((result) => {
        done++;
        return result;
      }),
    );
    // A timer due in 1 ms fires after at most one batch (16 RSA private operations take longer than
    // that), not after all 40 jobs.
    const doneWhenTimerRan = await new Promise<number>((resolve) => setTimeout(() => resolve(done), 0));
    expect(doneWhenTimerRan).toBeLessThanOrEqual(16);
    expect((await Promise.all(calls)).map(outcome)).toEqual(Array(40).fill("ok"));
    expect(Error.stackTraceLimit).toBe(limitBefore);
  });
});
