/**
 * The token-side OAEP path (CKM_RSA_PKCS_OAEP with SHA-256) must make the same token calls when the
 * ciphertext does not decrypt as when it does. It used to check the token's health only after a
 * failure: two more token calls, and a failure slower than a success, which an attacker timing
 * custody, or anyone watching the HSM, could tell apart (docs/design.md invariant 2).
 *
 * SoftHSM2 2.6 has no OAEP with SHA-256, so the token's OAEP is played here: the real token does the
 * raw private operation (so its calls are real), and the OAEP verdict comes from node:crypto with the
 * same key, a failure reported the way a token does, as a Pkcs11Error CKR_ENCRYPTED_DATA_INVALID. Every
 * call the store makes into the PKCS#11 library is recorded.
 */
import { constants, generateKeyPairSync, privateDecrypt, publicEncrypt } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { JweDecryptError } from "../../../core/crypto/errors.js";
import { fingerprintForms } from "../../../core/crypto/fingerprint.js";
import { decryptJwe, parseCompactJwe } from "../../../core/crypto/jwe-decrypt.js";
import { dotvaJwe } from "../../../tools/testing/custody-harness.js";
import { createTestToken } from "../../../tools/testing/softhsm.js";
import type { Key } from "../key-store.js";
import { parsePkcs11Config } from "./config.js";
import { Pkcs11KeyStore } from "./pkcs11-key-store.js";
import { importIntoToken, withTokenSession } from "./token-admin.js";

const dotva = generateKeyPairSync("rsa", { modulusLength: 2048 });

const recorded = vi.hoisted(() => ({ calls: [] as string[] }));

vi.mock("./module.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("./module.js")>();
  const wrapped = new Map<object, object>();
  const record = <T extends object>(lib: T): T => {
    if (!wrapped.has(lib)) {
      wrapped.set(
        lib,
        new Proxy(lib, {
          get(target, name, receiver) {
            const value = Reflect.get(target, name, receiver);
            if (typeof value !== "function" || typeof name !== "string" || !name.startsWith("C_"))
              return value;
            return (...args: unknown[]) => {
              recorded.calls.push(name);
              return value.apply(target, args);
            };
          },
        }),
      );
    }
    return wrapped.get(lib) as T;
  };
  return { ...real, acquireModule: (path: string) => record(real.acquireModule(path)) };
});

vi.mock("./mechanism.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("./mechanism.js")>();
  return {
    ...real,
    probeMechanism: async (...args: Parameters<typeof real.probeMechanism>) =>
      args[3] === "rsa-pkcs-oaep" ? { mechanism: "rsa-pkcs-oaep" } : real.probeMechanism(...args),
    tokenDecrypt: async (...args: Parameters<typeof real.tokenDecrypt>) => {
      const [lib, session, key, mechanism, input] = args;
      if (mechanism !== "rsa-pkcs-oaep") return real.tokenDecrypt(...args);
      await real.tokenDecrypt(lib, session, key, "rsa-x509", input);
      try {
        return privateDecrypt(
          { key: dotva.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
          input,
        );
      } catch {
        throw Object.assign(new Error("CKR_ENCRYPTED_DATA_INVALID"), { name: "Pkcs11Error" });
      }
    },
  };
});

const token = createTestToken("custody-oaep-calls");
const fingerprint = fingerprintForms(dotva.publicKey).canonical;
const stores: Pkcs11KeyStore[] = [];

beforeAll(async () => {
  await withTokenSession(parsePkcs11Config(token.config()), (admin) =>
    importIntoToken(
      admin,
      "dotva",
      Buffer.from("0d", "hex"),
      dotva.privateKey.export({ type: "pkcs8", format: "pem" }),
    ),
  );
});

afterAll(async () => {
  for (const store of stores) await store.close();
  token.remove();
});

const wrapped = (cek: Buffer) =>
  publicEncrypt({ key: dotva.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, cek);

async function callsOf(key: Key, encryptedKey: Buffer): Promise<{ calls: string[]; cek: Buffer }> {
  recorded.calls.length = 0;
  const cek = await key.unwrap(encryptedKey);
  return { calls: [...recorded.calls], cek };
}

describe.each(["rsa-pkcs-oaep", "rsa-x509"] as const)("token calls per unwrap (%s)", (mechanism) => {
  let store: Pkcs11KeyStore;
  beforeAll(async () => {
    // No background check during the test: it would add calls of its own.
    store = await Pkcs11KeyStore.open(
      parsePkcs11Config(token.config({ mechanism, sessions: 1, healthCheckIntervalMs: 600_000 })),
    );
    stores.push(store);
  });

  it("makes the same calls for a bad ciphertext, a 128-bit key and a good one, and stays up", async () => {
    const health: boolean[] = [];
    store.health.onChange((up) => health.push(up));
    const key = store.get(fingerprint)!;
    expect(key.info).toMatchObject({ mechanism });
    const real = Buffer.alloc(32, 0x33);
    const good = wrapped(real);
    const corrupted = Buffer.from(good);
    corrupted[100]! ^= 0x01;

    const ok = await callsOf(key, good);
    expect(ok.cek).toEqual(real);
    expect(ok.calls).toEqual(["C_DecryptInit", "C_DecryptAsync"]);
    for (const [what, ciphertext] of [
      ["corrupted", corrupted],
      ["128-bit key", wrapped(real.subarray(0, 16))],
    ] as const) {
      const failed = await callsOf(key, ciphertext);
      expect(failed.calls, what).toEqual(ok.calls);
      expect(failed.cek, what).toHaveLength(32);
      expect(failed.cek.equals(real), what).toBe(false);
    }
    await expect(
      decryptJwe(parseCompactJwe(await dotvaJwe(dotva.publicKey)), key.unwrap),
    ).resolves.toBeDefined();
    const tampered = (await dotvaJwe(dotva.publicKey)).split(".");
    tampered[1] = Buffer.from(corrupted).toString("base64url");
    await expect(decryptJwe(parseCompactJwe(tampered.join(".")), key.unwrap)).rejects.toBeInstanceOf(
      JweDecryptError,
    );
    expect(store.health.healthy()).toBe(true);
    expect(health).toEqual([]);
  });
});
