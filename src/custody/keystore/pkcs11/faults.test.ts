/**
 * Token faults under the PKCS#11 store, on a real SoftHSM2 token: sessions closed under a running
 * load, the token directory moved away and back, and a token that stops answering. Calls fail only
 * with KeyStoreUnavailableError (gRPC UNAVAILABLE), never hang, the health signal follows the token,
 * and the store recovers by itself.
 */

import { execFileSync } from "node:child_process";
import pkcs11js from "pkcs11js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { CanonicalFingerprint } from "../../../core/crypto/fingerprint.js";
import { createTestToken, openStoreOnNewKey, SOFTHSM_MODULE } from "../../../tools/testing/softhsm.js";
import { KeyStoreUnavailableError } from "../errors.js";
import type { Pkcs11KeyStore } from "./pkcs11-key-store.js";

// A wedged token (an HSM that stops answering, a network HSM behind a dead link) cannot be made with
// SoftHSM2, so the store's one native decrypt call can be held back until the test lets it go; while
// nothing is held it is the real call on the real token.
const stuck = vi.hoisted(() => ({ holding: false, released: [] as Array<() => void>, held: 0 }));
vi.mock("./mechanism.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("./mechanism.js")>();
  return {
    ...real,
    tokenDecrypt: async (...args: Parameters<typeof real.tokenDecrypt>) => {
      if (stuck.holding) {
        stuck.held++;
        await new Promise<void>((resolve) => stuck.released.push(resolve));
      }
      return real.tokenDecrypt(...args);
    },
  };
});

const DEADLINE_MS = 2_000;
const token = createTestToken("custody-faults");
let store: Pkcs11KeyStore;
let fingerprint: CanonicalFingerprint;
let ciphertext: Buffer;
const CEK = Buffer.alloc(32, 0x5a);
let health: boolean[];

beforeAll(async () => {
  ({ store, fingerprint, ciphertext, health } = await openStoreOnNewKey(
    token,
    { label: "dotva-faults", idHex: "0a" },
    { sessions: 2, operationTimeoutMs: DEADLINE_MS, healthCheckIntervalMs: 100 },
    CEK,
  ));
});

afterAll(async () => {
  stuck.holding = false;
  for (const release of stuck.released.splice(0)) release();
  await store?.close();
  token.remove();
});

type Outcome = "ok" | "unavailable" | "other";
async function call(): Promise<Outcome> {
  try {
    return (await store.get(fingerprint)!.unwrap(ciphertext)).equals(CEK) ? "ok" : "other";
  } catch (err) {
    return err instanceof KeyStoreUnavailableError ? "unavailable" : "other";
  }
}

describe("PKCS#11 store faults", () => {
  it("survives its sessions being closed by another handle in the middle of a load", async () => {
    health.length = 0;
    // A second handle on the same library, as another part of the process would have: closing all
    // sessions there closes the store's too (PKCS#11 state is per process, not per handle).
    const other = new pkcs11js.PKCS11();
    other.load(SOFTHSM_MODULE);
    expect(() => other.C_Initialize()).toThrow(/CKR_CRYPTOKI_ALREADY_INITIALIZED/);
    const slot = other.C_GetSlotList(true).find((s) => other.C_GetTokenInfo(s).label.trim() === token.label)!;

    const outcomes: Outcome[] = [];
    // The sessions are closed between two calls of every worker, never while a C_Decrypt runs on one:
    // SoftHSM2 frees a session closed during an operation on another thread (a use-after-free in the
    // library that no client can guard against), which would crash the test instead of testing us.
    let arrived = 0;
    let releaseBarrier!: () => void;
    const barrier = new Promise<void>((resolve) => {
      releaseBarrier = resolve;
    });
    const worker = async () => {
      for (let i = 0; i < 15; i++) {
        if (i === 5) {
          if (++arrived === 3) {
            other.C_CloseAllSessions(slot);
            releaseBarrier();
          }
          await barrier;
        }
        outcomes.push(await call());
      }
    };
    const started = Date.now();
    await Promise.all([worker(), worker(), worker()]);
    expect(Date.now() - started).toBeLessThan(10_000);

    expect(outcomes).toHaveLength(45);
    expect(outcomes.filter((o) => o === "other")).toEqual([]);
    // The failure was seen (health went down) and repaired (up again) without a caller noticing more
    // than UNAVAILABLE; with one retry after recovery, they normally notice nothing.
    expect(health).toEqual([false, true]);
    expect(outcomes.filter((o) => o === "ok").length).toBeGreaterThanOrEqual(40);
    expect(await call()).toBe("ok");
  });

  it("answers UNAVAILABLE while the token directory is gone and recovers once it is back", async () => {
    health.length = 0;
    token.hide();
    try {
      // The token really is unreachable: an independent tool in its own process cannot even
      // initialise the library (SoftHSM2 needs its token directory).
      expect(() =>
        execFileSync("pkcs11-tool", ["--module", SOFTHSM_MODULE, "--list-slots"], { stdio: "pipe" }),
      ).toThrow(/C_Initialize/);

      const started = Date.now();
      const whileGone = await Promise.all([call(), call(), call()]);
      expect(whileGone).toEqual(["unavailable", "unavailable", "unavailable"]);
      await vi.waitFor(() => expect(store.health.healthy()).toBe(false), { timeout: 2_000, interval: 20 });
      expect(await call()).toBe("unavailable");
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      token.restore();
    }
    await vi.waitFor(() => expect(store.health.healthy()).toBe(true), { timeout: 5_000, interval: 20 });
    expect(await call()).toBe("ok");
    expect(health[0]).toBe(false);
    expect(health.at(-1)).toBe(true);
  });

  it("reports unhealthy with no traffic at all, from its background check", async () => {
    health.length = 0;
    token.hide();
    try {
      await vi.waitFor(() => expect(store.health.healthy()).toBe(false), { timeout: 2_000, interval: 20 });
    } finally {
      token.restore();
    }
    await vi.waitFor(() => expect(store.health.healthy()).toBe(true), { timeout: 5_000, interval: 20 });
    expect(health).toEqual([false, true]);
    expect(await call()).toBe("ok");
  });

  // A store that waits for the token would block here until the test's own timeout.
  it("fails calls with UNAVAILABLE within the deadline and recovers once the token answers", {
    timeout: 20_000,
  }, async () => {
    health.length = 0;
    expect((await store.get(fingerprint)!.unwrap(ciphertext)).equals(CEK)).toBe(true);

    stuck.holding = true;
    const started = Date.now();
    const outcomes = await Promise.all(
      [0, 1].map(() =>
        store
          .get(fingerprint)!
          .unwrap(ciphertext)
          .then(
            () => "ok",
            (err) => (err instanceof KeyStoreUnavailableError ? "unavailable" : String(err)),
          ),
      ),
    );
    const took = Date.now() - started;
    expect(outcomes).toEqual(["unavailable", "unavailable"]);
    expect(stuck.held).toBeGreaterThanOrEqual(1);
    // One deadline for the operation, at most one more waiting for it before re-initialising.
    expect(took).toBeGreaterThanOrEqual(DEADLINE_MS - 50);
    expect(took).toBeLessThan(3 * DEADLINE_MS + 1_000);
    expect(store.health.healthy()).toBe(false);
    expect(health).toEqual([false]);

    // While the operation is still stuck, new calls are refused at once rather than queued behind it.
    const refusedAt = Date.now();
    await expect(store.get(fingerprint)!.unwrap(ciphertext)).rejects.toBeInstanceOf(KeyStoreUnavailableError);
    expect(Date.now() - refusedAt).toBeLessThan(DEADLINE_MS);

    // The token answers again: the stuck operations finish, re-initialisation is no longer held
    // back, and the background recovery brings the store up by itself.
    stuck.holding = false;
    for (const release of stuck.released.splice(0)) release();
    await vi.waitFor(() => expect(store.health.healthy()).toBe(true), { timeout: 5_000, interval: 20 });
    expect(health).toEqual([false, true]);
    expect((await store.get(fingerprint)!.unwrap(ciphertext)).equals(CEK)).toBe(true);
  });
});
