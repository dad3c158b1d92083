/**
 * The re-encryption core end to end, without servers: Dotva JWE + Knot JWK + profile in, Knot JWE out,
 * and the plaintext buffers overwritten on success and on failure.
 */
import { generateKeyPairSync } from "node:crypto";
import { CompactEncrypt, compactDecrypt } from "jose";
import { describe, expect, it, vi } from "vitest";
import { privateKeyUnwrap } from "../custody/keystore/private-key-unwrap.js";
import { USER } from "../tools/testing/profile.js";
import { parseKnotUser } from "./card/knot-user.js";
import * as decryptModule from "./crypto/jwe-decrypt.js";
import { encryptForRecipient } from "./crypto/jwe-encrypt.js";
import { parseKnotJwk } from "./crypto/knot-jwk.js";
import { reencryptForKnot } from "./reencrypt.js";

// Pass-through spies: the test needs the buffers the core hands around, to check they end up zeroed.
vi.mock("./crypto/jwe-decrypt.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("./crypto/jwe-decrypt.js")>();
  return { ...real, decryptJwe: vi.fn(real.decryptJwe) };
});
vi.mock("./crypto/jwe-encrypt.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("./crypto/jwe-encrypt.js")>();
  return { ...real, encryptForRecipient: vi.fn(real.encryptForRecipient) };
});

const dotva = generateKeyPairSync("rsa", { modulusLength: 2048 });
const knot = generateKeyPairSync("rsa", { modulusLength: 2048 });
const recipient = parseKnotJwk(
  JSON.stringify({ ...knot.publicKey.export({ format: "jwk" }), kid: "knot-k1" }),
);
const user = parseKnotUser(USER);

async function dotvaJwe(secrets: object) {
  return new CompactEncrypt(new TextEncoder().encode(JSON.stringify(secrets)))
    .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM" })
    .encrypt(dotva.publicKey);
}

async function run(secrets: object, now = new Date("2026-11-23T00:00:00Z")) {
  return reencryptForKnot({
    jwe: decryptModule.parseCompactJwe(await dotvaJwe(secrets)),
    unwrap: privateKeyUnwrap(dotva.privateKey),
    recipient,
    user,
    now,
  });
}

async function plaintextBuffers() {
  const decrypted = await vi.mocked(decryptModule.decryptJwe).mock.results.at(-1)!.value;
  const payload = vi.mocked(encryptForRecipient).mock.calls.at(-1)?.[0];
  return { decrypted: decrypted as Buffer, payload: payload as Uint8Array | undefined };
}

const SECRETS = { pan: "4242424242424242", cvv: "9731", expiry_month: "3", expiry_year: "28" };

describe("reencryptForKnot", () => {
  it("turns Dotva's JWE into Knot's, decryptable by Knot's key with jose, kid carried over", async () => {
    const out = await run(SECRETS);
    expect(out.cardLast4).toBe("4242");
    const { plaintext, protectedHeader } = await compactDecrypt(out.jwe, knot.privateKey);
    expect(protectedHeader).toEqual({ alg: "RSA-OAEP-256", enc: "A256GCM", kid: "knot-k1" });
    expect(JSON.parse(new TextDecoder().decode(plaintext))).toStrictEqual({
      user: USER,
      card: { number: "4242424242424242", expiration: "03/2028", cvv: "9731" },
    });
  });

  it("overwrites the decrypted Dotva plaintext and the Knot payload once the JWE exists", async () => {
    vi.mocked(encryptForRecipient).mockClear();
    await run(SECRETS);
    const { decrypted, payload } = await plaintextBuffers();
    expect(decrypted.length).toBeGreaterThan(50);
    expect(decrypted.every((b) => b === 0)).toBe(true);
    expect(payload!.length).toBeGreaterThan(100);
    expect(payload!.every((b) => b === 0)).toBe(true);
  });

  it("overwrites the plaintext when the card turns out to be expired", async () => {
    vi.mocked(encryptForRecipient).mockClear();
    await expect(run({ ...SECRETS, expiry_year: "2020" })).rejects.toMatchObject({ code: "CARD_EXPIRED" });
    const { decrypted, payload } = await plaintextBuffers();
    expect(decrypted.every((b) => b === 0)).toBe(true);
    expect(payload).toBeUndefined();
  });

  it("overwrites both buffers when encryption to Knot fails", async () => {
    vi.mocked(encryptForRecipient).mockClear();
    vi.mocked(encryptForRecipient).mockImplementationOnce(() => {
      throw new Error("boom");
    });
    await expect(run(SECRETS)).rejects.toThrow("boom");
    const { decrypted, payload } = await plaintextBuffers();
    expect(decrypted.every((b) => b === 0)).toBe(true);
    expect(payload!.every((b) => b === 0)).toBe(true);
  });

  it("reports an invalid PAN by code without the value", async () => {
    const err = await run({ ...SECRETS, pan: "4242424242424241" }).catch((e: Error) => e);
    expect(err).toMatchObject({ code: "PAN_INVALID" });
    expect((err as Error).message).not.toMatch(/4242/);
  });
});

describe("the core's sources", () => {
  it("never log: no console, pino or process output in src/core/crypto and the card mapping", async () => {
    const { readdirSync, readFileSync } = await import("node:fs");
    const roots = ["src/core/crypto", "src/core/card"];
    const files = roots.flatMap((root) =>
      readdirSync(root, { recursive: true, encoding: "utf8" })
        .filter((f) => f.endsWith(".ts"))
        .map((f) => `${root}/${f}`),
    );
    expect(files.length).toBeGreaterThan(8);
    expect(
      files
        .concat("src/core/reencrypt.ts")
        .filter((f) => /console\.|from "pino"|process\.std/.test(readFileSync(f, "utf8"))),
    ).toEqual([]);
  });
});
