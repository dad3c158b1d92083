/**
 * A saturated PKCS#11 store is overloaded, not broken. With one session and token operations that are
 * slow but well within their deadline, calls that wait the whole timeout for the session are refused
 * with OVERLOADED (gRPC RESOURCE_EXHAUSTED), while the store stays up: the health signal never drops,
 * the library is never re-initialised (which would drop the operations in flight), and calls succeed
 * again once the burst is over. It used to count such a wait as a token failure.
 */

import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { CanonicalFingerprint } from "../../../core/crypto/fingerprint.js";
import { createTestToken, openStoreOnNewKey } from "../../../tools/testing/softhsm.js";
import { toGrpcFailure } from "../../errors.js";
import { KeyStoreOverloadedError, KeyStoreUnavailableError } from "../errors.js";
import type { Pkcs11KeyStore } from "./pkcs11-key-store.js";
import { SessionPool } from "./session-pool.js";

// SoftHSM2 answers in about a millisecond; a token working at capacity is played by delaying the
// store's one native decrypt call before it runs the real one on the real token.
const slow = vi.hoisted(() => ({ ms: 0 }));
vi.mock("./mechanism.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("./mechanism.js")>();
  return {
    ...real,
    tokenDecrypt: async (...args: Parameters<typeof real.tokenDecrypt>) => {
      if (slow.ms > 0) await new Promise((resolve) => setTimeout(resolve, slow.ms));
      return real.tokenDecrypt(...args);
    },
  };
});

// Each operation takes OPERATION_MS, far inside the deadline, so none of them is a token failure; the
// one session serves at most TIMEOUT_MS / OPERATION_MS of them before a waiting call's timeout.
const OPERATION_MS = 800;
const TIMEOUT_MS = 2_000;
const token = createTestToken("custody-overload");
let store: Pkcs11KeyStore;
let fingerprint: CanonicalFingerprint;
let ciphertext: Buffer;
const CEK = Buffer.alloc(32, 0x3c);
let health: boolean[];

beforeAll(async () => {
  ({ store, fingerprint, ciphertext, health } = await openStoreOnNewKey(
    token,
    { label: "dotva-overload", idHex: "0b" },
    { sessions: 1, operationTimeoutMs: TIMEOUT_MS, healthCheckIntervalMs: 100 },
    CEK,
  ));
});

afterAll(async () => {
  slow.ms = 0;
  await store?.close();
  token.remove();
});

async function call(): Promise<string> {
  try {
    return (await store.get(fingerprint)!.unwrap(ciphertext)).equals(CEK) ? "ok" : "wrong key";
  } catch (err) {
    if (err instanceof KeyStoreOverloadedError) return "overloaded";
    if (err instanceof KeyStoreUnavailableError) return "unavailable";
    return String(err);
  }
}

describe("PKCS#11 session wait", () => {
  it("refuses calls that wait out the timeout as OVERLOADED and stays up, without re-initialising", {
    timeout: 20_000,
  }, async () => {
    expect(await call()).toBe("ok");
    const before = store.counters();
    slow.ms = OPERATION_MS;
    const outcomes = await Promise.all(Array.from({ length: 6 }, () => call()));
    slow.ms = 0;

    // At most TIMEOUT_MS / OPERATION_MS + 1 calls get the session in time; the rest are refused as load.
    const served = outcomes.filter((o) => o === "ok").length;
    const refused = outcomes.filter((o) => o === "overloaded").length;
    expect(served + refused, outcomes.join()).toBe(6);
    expect(served).toBeGreaterThanOrEqual(1);
    expect(served).toBeLessThanOrEqual(Math.floor(TIMEOUT_MS / OPERATION_MS) + 1);
    expect(refused).toBeGreaterThanOrEqual(3);

    // The store never went down (the background check ran every 100 ms through the burst) and the
    // library was not re-initialised.
    expect(health).toEqual([]);
    expect(store.health.healthy()).toBe(true);
    expect(store.counters()).toEqual({
      reinitialisations: before.reinitialisations,
      sessionWaitsTimedOut: before.sessionWaitsTimedOut + refused,
    });
    expect(await call()).toBe("ok");
  });

  it("is RESOURCE_EXHAUSTED with reason OVERLOADED at the service's edge, telling the caller to back off", () => {
    const failure = toGrpcFailure(
      new KeyStoreOverloadedError(
        "every PKCS#11 session stayed busy for the whole wait; retry with backoff (or raise CUSTODY_PKCS11_SESSIONS if the token has the capacity)",
      ),
    );
    expect(failure.grpcStatus).toBe(status.RESOURCE_EXHAUSTED);
    expect(failure.code).toBe("OVERLOADED");
    expect(failure.message).toMatch(/retry with backoff/);
  });
});

describe("SessionPool", () => {
  const gone = new Error("gone");
  const busy = new Error("busy");

  it("tells a wait that timed out (busy) from sessions replaced under the waiter (gone)", async () => {
    const pool = new SessionPool(
      () => gone,
      () => busy,
    );
    pool.reset([Buffer.from([1])]);
    const held = await pool.acquire(50);
    await expect(pool.acquire(20)).rejects.toBe(busy);
    const waiting = pool.acquire(5_000);
    pool.invalidate();
    await expect(waiting).rejects.toBe(gone);
    // A session of the old generation is dropped on return, not handed out again.
    pool.release(held);
    await expect(pool.acquire(20)).rejects.toBe(busy);
  });
});
