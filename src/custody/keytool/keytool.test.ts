/**
 * custody-keys, the key CLI: each command through runKeyTool, and the npm bin once as a process.
 */
import { execFile } from "node:child_process";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { fingerprintForms, rsaJwkThumbprint } from "../../core/crypto/fingerprint.js";
import { FileKeyStore } from "../keystore/file/file-key-store.js";
import { runKeyTool } from "./run.js";

async function tool(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runKeyTool(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

const tmp = (p: string) => mkdtempSync(join(tmpdir(), p));

describe("custody-keys", () => {
  it("generate, list, public (PEM and JWK), set-state and verify work on one directory", async () => {
    const dir = tmp("keytool-");
    const before = Date.now();
    const gen = await tool("generate", "--dir", dir, "--name", "dotva-2026");
    const after = Date.now();
    expect(gen.code).toBe(0);
    const fingerprint = gen.out.split(/\s+/)[0]!;
    expect(statSync(join(dir, "dotva-2026.pem")).mode & 0o777).toBe(0o600);

    const list = await tool("list", "--dir", dir, "--json");
    const [entry] = JSON.parse(list.out);
    expect(entry).toMatchObject({ fingerprint, state: "active", bits: 2048, file: "dotva-2026.pem" });
    expect(entry.aliases).toHaveLength(4);
    expect(Date.parse(entry.created)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(entry.created)).toBeLessThanOrEqual(after);

    const pem = await tool("public", "--dir", dir, "--key", "dotva-2026");
    expect(fingerprintForms(createPublicKey(pem.out)).canonical).toBe(fingerprint);
    const jwk = JSON.parse((await tool("public", "--dir", dir, "--key", fingerprint, "--format", "jwk")).out);
    expect(jwk).toMatchObject({ kty: "RSA", e: "AQAB", use: "enc", alg: "RSA-OAEP-256", kid: fingerprint });
    expect(jwk.d).toBeUndefined();
    // Any alias form names the key, e.g. the RFC 7638 thumbprint. It is base64url, so about one key in 64
    // has a thumbprint starting with "-": it goes in as --key=VALUE, as the CLI's own error says.
    const byThumbprint = await tool(
      "set-state",
      "--dir",
      dir,
      `--key=${rsaJwkThumbprint(jwk)}`,
      "--state",
      "decrypt-only",
    );
    expect(byThumbprint.out).toBe(`${fingerprint}  active -> decrypt-only`);
    expect(FileKeyStore.open({ dir }).get(fingerprint)?.info.state).toBe("decrypt-only");

    const verify = await tool("verify", "--dir", dir);
    expect(verify).toMatchObject({ code: 0, out: `ok    ${fingerprint}  decrypt-only  dotva-2026.pem` });
  });

  it("imports a PKCS#1 key encrypted with one passphrase and stores it as PKCS#8 under another", async () => {
    const dir = tmp("keytool-import-");
    const secrets = tmp("keytool-secrets-");
    const key = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const source = join(secrets, "legacy.pem");
    writeFileSync(
      source,
      key.privateKey.export({ type: "pkcs1", format: "pem", cipher: "aes-256-cbc", passphrase: "old" }),
    );
    writeFileSync(join(secrets, "old"), "old\n", { mode: 0o600 });
    writeFileSync(join(secrets, "new"), "new passphrase\n", { mode: 0o600 });
    const imported = await tool(
      "import",
      "--dir",
      dir,
      "--name",
      "legacy",
      "--from",
      source,
      "--from-passphrase-file",
      join(secrets, "old"),
      "--passphrase-file",
      join(secrets, "new"),
    );
    expect(imported.code).toBe(0);
    expect(readFileSync(join(dir, "legacy.pem"), "ascii")).toContain("BEGIN ENCRYPTED PRIVATE KEY");
    const verify = await tool("verify", "--dir", dir, "--passphrase-file", join(secrets, "new"));
    expect(verify.out).toBe(`ok    ${fingerprintForms(key.publicKey).canonical}  active  legacy.pem`);
    const again = await tool(
      "import",
      "--dir",
      dir,
      "--name",
      "legacy2",
      "--from",
      source,
      "--from-passphrase-file",
      join(secrets, "old"),
    );
    expect(again).toMatchObject({ code: 1, err: expect.stringContaining("already names this key") });
  });

  it("rejects bad usage with a message and a non-zero code", async () => {
    const dir = tmp("keytool-bad-");
    expect(await tool("generate", "--dir", dir, "--name", "../escape")).toMatchObject({ code: 1 });
    expect(await tool("generate", "--dir", dir, "--name", "k", "--bits", "1024")).toMatchObject({
      code: 1,
      err: expect.stringContaining("bits must be 2048, 3072 or 4096"),
    });
    expect(await tool("set-state", "--dir", dir, "--key", "nope", "--state", "active")).toMatchObject({
      code: 1,
    });
    expect(await tool("set-state", "--dir", dir, "--key", "-dashFirst", "--state", "active")).toMatchObject({
      code: 1,
      err: expect.stringContaining("--key=-XYZ"),
    });
    expect(await tool("set-state", "--dir", dir, "--key=-dashFirst", "--state", "active")).toMatchObject({
      code: 1,
      err: expect.stringContaining("no key"),
    });
    expect((await tool("frobnicate")).code).toBe(2);
    expect((await tool("--help")).out).toContain("set-state --dir DIR --key NAME|FINGERPRINT --state STATE");
  });

  it("runs as the npm bin", async () => {
    const dir = tmp("keytool-bin-");
    const bin = fileURLToPath(new URL("../../../bin/custody-keys.js", import.meta.url));
    const run = promisify(execFile);
    await run(process.execPath, [bin, "generate", "--dir", dir, "--name", "k1"], { timeout: 30_000 });
    const { stdout } = await run(process.execPath, [bin, "verify", "--dir", dir], { timeout: 30_000 });
    expect(stdout).toMatch(/^ok {4}sha256:[0-9a-f]{64} {2}active {2}k1\.pem\n$/);
  });
});
