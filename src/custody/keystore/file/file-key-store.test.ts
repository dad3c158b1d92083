/**
 * The PEM directory key store: what it loads, what it refuses (and that a refusal names the file and
 * the rule), passphrase handling, manifest states, reload semantics and the uniform unwrap failure.
 */

import { execFileSync } from "node:child_process";
import { constants, createPublicKey, generateKeyPairSync, publicEncrypt, randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { fingerprintForms } from "../../../core/crypto/fingerprint.js";
import { KeyStoreError } from "../errors.js";
import { FileKeyStore } from "./file-key-store.js";
import { writeManifest } from "./manifest.js";

const keyA = generateKeyPairSync("rsa", { modulusLength: 2048 });
const keyB = generateKeyPairSync("rsa", { modulusLength: 2048 });
const fpA = fingerprintForms(keyA.publicKey);
const fpB = fingerprintForms(keyB.publicKey);

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), "filestore-"));
  chmodSync(d, 0o700);
  return d;
}

function put(d: string, name: string, pem: string | Buffer, mode = 0o600): string {
  const path = join(d, name);
  writeFileSync(path, pem, { mode });
  chmodSync(path, mode);
  return path;
}

const pkcs8 = (k: typeof keyA) => k.privateKey.export({ type: "pkcs8", format: "pem" });

function oaep(k: typeof keyA, data: Buffer) {
  return publicEncrypt(
    { key: k.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
    data,
  );
}

describe("FileKeyStore", () => {
  it("indexes every key under its canonical fingerprint and every alias form, state from the manifest", async () => {
    const d = dir();
    put(d, "a.pem", pkcs8(keyA));
    put(d, "b.pem", pkcs8(keyB));
    put(d, "notes.txt", "ignored: only *.pem files are keys", 0o644);
    writeManifest(d, { version: 1, keys: { [fpB.canonical]: { state: "decrypt-only" } } });
    const store = FileKeyStore.open({ dir: d });
    expect(store.list().map((k) => [k.label, k.state, k.modulusBits])).toEqual([
      ["a.pem", "active", 2048],
      ["b.pem", "decrypt-only", 2048],
    ]);
    for (const form of [fpA.canonical, ...fpA.aliases])
      expect(store.get(form)?.info.fingerprint).toBe(fpA.canonical);
    const cek = randomBytes(32);
    expect(await store.get(fpA.canonical)!.unwrap(oaep(keyA, cek))).toEqual(cek);
    expect(store.get(fpA.canonical)!.inProcess?.asymmetricKeyType).toBe("rsa");
  });

  it("answers every ciphertext that is no OAEP-wrapped 256-bit key with a fresh random key, never an error", async () => {
    const d = dir();
    put(d, "a.pem", pkcs8(keyA));
    const store = FileKeyStore.open({ dir: d });
    const key = store.get(fpA.canonical)!;
    const real = randomBytes(32);
    const good = oaep(keyA, real);
    const corrupted = Buffer.from(good);
    corrupted[5]! ^= 1;
    const bad = {
      "for another key": oaep(keyB, real),
      corrupted: corrupted,
      "a 128-bit content key": oaep(keyA, real.subarray(0, 16)),
      "one byte short": good.subarray(1),
      "not below the modulus": Buffer.alloc(256, 0xff),
    };
    for (const [what, ciphertext] of Object.entries(bad)) {
      const first = await key.unwrap(ciphertext);
      const second = await key.unwrap(ciphertext);
      expect(first, what).toHaveLength(32);
      expect(first.equals(real), what).toBe(false);
      // Fresh each time: a fixed substitute would be a key an attacker could encrypt to.
      expect(first.equals(second), what).toBe(false);
    }
    expect(await key.unwrap(good)).toEqual(real);
    expect(store.get(fpB.canonical)).toBeUndefined();
  });

  it.each([
    [
      "a key file readable by group or others",
      (d: string) => put(d, "open.pem", pkcs8(keyA), 0o640),
      /open\.pem is accessible to group or others/,
    ],
    [
      "a PKCS#1 key",
      (d: string) => put(d, "p1.pem", keyA.privateKey.export({ type: "pkcs1", format: "pem" })),
      /p1\.pem is not a PKCS#8/,
    ],
    [
      "a 1024-bit key",
      (d: string) =>
        put(
          d,
          "small.pem",
          generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({
            type: "pkcs8",
            format: "pem",
          }),
        ),
      /1024-bit key/,
    ],
    [
      "an EC key",
      (d: string) =>
        put(
          d,
          "ec.pem",
          generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({
            type: "pkcs8",
            format: "pem",
          }),
        ),
      /ec\.pem is not an RSA key/,
    ],
    [
      "a malformed manifest",
      (d: string) => put(d, "manifest.json", '{"version":1,"keys":{"abc":{"state":"active"}}}'),
      /manifest\.json: keys\.abc: keys must be canonical sha256/,
    ],
    [
      "an unknown state",
      (d: string) =>
        put(
          d,
          "manifest.json",
          JSON.stringify({ version: 1, keys: { [fpA.canonical]: { state: "retired" } } }),
        ),
      /manifest\.json: keys\./,
    ],
  ])("refuses %s, naming it", (_what, plant, message) => {
    const d = dir();
    put(d, "a.pem", pkcs8(keyA));
    plant(d);
    expect(() => FileKeyStore.open({ dir: d })).toThrow(message);
  });

  it("reads passphrase-encrypted PKCS#8 with the passphrase file, and refuses without or with a wrong one", () => {
    const d = dir();
    const pass = "correct horse battery staple";
    put(
      d,
      "enc.pem",
      keyA.privateKey.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: pass }),
    );
    const passFile = put(dir(), "pass", `${pass}\n`);
    expect(FileKeyStore.open({ dir: d, passphraseFile: passFile }).get(fpA.canonical)).toBeDefined();
    expect(() => FileKeyStore.open({ dir: d })).toThrow(/encrypted and no passphrase file/);
    const wrong = put(dir(), "wrong", "nope\n");
    expect(() => FileKeyStore.open({ dir: d, passphraseFile: wrong })).toThrow(/wrong passphrase/);
    chmodSync(passFile, 0o644);
    expect(() => FileKeyStore.open({ dir: d, passphraseFile: passFile })).toThrow(
      /passphrase file .* group or others/,
    );
  });

  it("reload swaps in a new generation; a failed reload keeps the previous set; keys looked up before stay usable", async () => {
    const d = dir();
    put(d, "a.pem", pkcs8(keyA));
    const store = FileKeyStore.open({ dir: d });
    const first = store.get(fpA.canonical)!;
    expect(first.generation).toBe(1);
    put(d, "b.pem", pkcs8(keyB));
    unlinkSync(join(d, "a.pem"));
    expect((await store.reload()).generation).toBe(2);
    expect(store.get(fpA.canonical)).toBeUndefined();
    expect(store.get(fpB.canonical)?.generation).toBe(2);
    // The key a call looked up before the reload still unwraps.
    const cek = randomBytes(32);
    expect(await first.unwrap(oaep(keyA, cek))).toEqual(cek);

    const bad = put(d, "bad.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    await expect(store.reload()).rejects.toThrow(/bad\.pem cannot be read as a private key/);
    expect(store.get(fpB.canonical)?.generation).toBe(2);
    unlinkSync(bad);
    writeManifest(d, { version: 1, keys: { [fpA.canonical]: { state: "disabled" } } });
    expect((await store.reload()).warnings).toEqual([
      `manifest.json names ${fpA.canonical}, but no key file in the directory has it`,
    ]);
  });

  it("parses every PEM from the Buffer it was read into, never as a string, and zeroes that Buffer whether the key loaded or not", () => {
    const read: Buffer[] = [];
    // The bytes as read, with every way of turning them into a JS string booby-trapped: a string copy
    // of a private key cannot be wiped and stays in the heap until the collector reuses it.
    const readPem = (path: string): Buffer => {
      const bytes = readFileSync(path);
      for (const method of [
        "toString",
        "toJSON",
        "asciiSlice",
        "latin1Slice",
        "utf8Slice",
        "base64Slice",
        "hexSlice",
      ]) {
        Object.defineProperty(bytes, method, {
          value: () => {
            throw new Error(`private key file ${path} turned into a string by ${method}`);
          },
        });
      }
      read.push(bytes);
      return bytes;
    };
    const loaded = (files: Record<string, string | Buffer>, passphraseFile?: string) => {
      const d = dir();
      for (const [name, pem] of Object.entries(files)) put(d, name, pem);
      read.length = 0;
      let outcome: string;
      try {
        outcome = `${FileKeyStore.open({ dir: d, readPem, ...(passphraseFile ? { passphraseFile } : {}) }).list().length} keys`;
      } catch (err) {
        outcome = (err as Error).message;
      }
      expect(read.length, outcome).toBe(1);
      expect(read[0]!.length, outcome).toBeGreaterThan(100);
      expect(
        read[0]!.every((byte) => byte === 0),
        `${outcome}: bytes left in the Buffer`,
      ).toBe(true);
      return outcome;
    };
    const openssl = execFileSync("openssl", [
      "genpkey",
      "-algorithm",
      "RSA",
      "-pkeyopt",
      "rsa_keygen_bits:2048",
    ]);
    const pass = "correct horse battery staple";
    const encrypted = keyA.privateKey.export({
      type: "pkcs8",
      format: "pem",
      cipher: "aes-256-cbc",
      passphrase: pass,
    });
    const passFile = put(dir(), "pass", `${pass}\n`);
    const wrongPass = put(dir(), "wrong", "nope\n");

    expect(loaded({ "openssl.pem": openssl })).toBe("1 keys");
    expect(loaded({ "enc.pem": encrypted }, passFile)).toBe("1 keys");
    expect(loaded({ "enc.pem": encrypted }, wrongPass)).toMatch(
      /cannot be read as a private key \(wrong passphrase\?\)/,
    );
    expect(loaded({ "enc.pem": encrypted })).toMatch(/encrypted and no passphrase file/);
    expect(
      loaded({ "bad.pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".repeat(4) }),
    ).toMatch(/bad\.pem cannot be read as a private key/);
    expect(loaded({ "p1.pem": keyA.privateKey.export({ type: "pkcs1", format: "pem" }) })).toMatch(
      /not a PKCS#8/,
    );
    expect(
      loaded({
        "ec.pem": generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({
          type: "pkcs8",
          format: "pem",
        }),
      }),
    ).toMatch(/not an RSA key/);
  });

  it("refuses with transport-free errors that carry a stable code", () => {
    const d = dir();
    put(d, "open.pem", pkcs8(keyA), 0o644);
    const refusal = (() => {
      try {
        FileKeyStore.open({ dir: d });
      } catch (err) {
        return err;
      }
    })();
    expect(refusal).toBeInstanceOf(KeyStoreError);
    expect(refusal).toMatchObject({ code: "KEY_FILE_INVALID", name: "KeyFileError" });
  });

  it("computes the fingerprint openssl prints for the key's SPKI", async () => {
    const d = dir();
    const path = put(d, "a.pem", pkcs8(keyA));
    const der = execFileSync("openssl", ["pkey", "-in", path, "-pubout", "-outform", "DER"]);
    const digest = execFileSync("openssl", ["dgst", "-sha256", "-r"], { input: der })
      .toString()
      .split(" ")[0];
    expect(FileKeyStore.open({ dir: d }).list()[0]!.fingerprint).toBe(`sha256:${digest}`);
    expect(createPublicKey(pkcs8(keyA)).export({ type: "spki", format: "der" })).toEqual(der);
  });
});
