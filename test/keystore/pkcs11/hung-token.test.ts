/**
 * A token that stops answering (a wedged HSM, a network HSM behind a dead link) rather than failing:
 * a C_Decrypt that does not return. SoftHSM2 cannot be made to hang, so the store's one native decrypt
 * call is held back by the test until it says so; everything else is the real token.
 *
 * What must hold: a caller gets UNAVAILABLE within the configured deadline (plus the bounded wait for
 * re-initialisation), never waits for the token; the health signal goes down; once the stuck
 * operation ends, the store recovers by itself and decrypts again.
 */
import { constants, createPublicKey, publicEncrypt } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { CanonicalFingerprint } from "../../../src/crypto/fingerprint.js";
import { KeyStoreUnavailableError } from "../../../src/custody/errors.js";
import { parsePkcs11Config } from "../../../src/keystore/pkcs11/config.js";
import { Pkcs11KeyStore } from "../../../src/keystore/pkcs11/pkcs11-key-store.js";
import { createTestToken } from "./softhsm.js";

const stuck = vi.hoisted(() => ({ holding: false, released: [] as Array<() => void>, held: 0 }));

vi.mock("../../../src/keystore/pkcs11/mechanism.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../../src/keystore/pkcs11/mechanism.js")>();
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

const DEADLINE_MS = 500;
const token = createTestToken("custody-hung");
let store: Pkcs11KeyStore;
let fingerprint: CanonicalFingerprint;
let ciphertext: Buffer;
const CEK = Buffer.alloc(32, 0x3c);
const health: boolean[] = [];

beforeAll(async () => {
  token.generateWithPkcs11Tool("dotva-hung", "0b");
  store = await Pkcs11KeyStore.open(
    parsePkcs11Config(
      token.config({ sessions: 2, operationTimeoutMs: DEADLINE_MS, healthCheckIntervalMs: 100 }),
    ),
  );
  store.onHealthChange((up) => health.push(up));
  const key = store.list()[0]!;
  fingerprint = key.fingerprint;
  ciphertext = publicEncrypt(
    {
      key: createPublicKey({ key: key.spki, format: "der", type: "spki" }),
      padding: constants.RSA_PKCS1_OAEP_PADDING,
      oaepHash: "sha256",
    },
    CEK,
  );
});

afterAll(async () => {
  stuck.holding = false;
  for (const release of stuck.released.splice(0)) release();
  await store?.close();
  token.remove();
});

async function waitFor(condition: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > until) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("PKCS#11 store with a token that stops answering", () => {
  // A store that waits for the token would block here until the test's own timeout.
  it("fails calls with UNAVAILABLE within the deadline and recovers once the token answers", {
    timeout: 10_000,
  }, async () => {
    expect((await store.unwrap(fingerprint, ciphertext)).equals(CEK)).toBe(true);

    stuck.holding = true;
    const started = Date.now();
    const outcomes = await Promise.all(
      [0, 1].map(() =>
        store.unwrap(fingerprint, ciphertext).then(
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
    expect(store.healthy()).toBe(false);
    expect(health).toEqual([false]);

    // While the operation is still stuck, new calls are refused at once rather than queued behind it.
    const refusedAt = Date.now();
    await expect(store.unwrap(fingerprint, ciphertext)).rejects.toBeInstanceOf(KeyStoreUnavailableError);
    expect(Date.now() - refusedAt).toBeLessThan(DEADLINE_MS);

    // The token answers again: the stuck operations finish, re-initialisation is no longer held
    // back, and the background recovery brings the store up by itself.
    stuck.holding = false;
    for (const release of stuck.released.splice(0)) release();
    await waitFor(() => store.healthy(), 5_000);
    expect(health).toEqual([false, true]);
    expect((await store.unwrap(fingerprint, ciphertext)).equals(CEK)).toBe(true);
  });
});
