/**
 * `custody-keys ... --pkcs11` on a real SoftHSM2 token: generate in the token, import a PEM for
 * migration, list, public, set-state; the store then sees exactly what the CLI reported.
 */
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CompactEncrypt } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import { fingerprintForms } from "../../core/crypto/fingerprint.js";
import { decryptJwe, parseCompactJwe } from "../../core/crypto/jwe-decrypt.js";
import { createTestToken, SOFTHSM_MODULE } from "../../tools/testing/softhsm.js";
import { parsePkcs11Config } from "../keystore/pkcs11/config.js";
import { Pkcs11KeyStore } from "../keystore/pkcs11/pkcs11-key-store.js";
import { listTokenKeys, privateKeyFlags, withTokenSession } from "../keystore/pkcs11/token-admin.js";
import { runKeyTool, usage } from "./run.js";

const token = createTestToken("custody-cli");
const stateDir = mkdtempSync(join(tmpdir(), "custody-cli-state-"));
const uri = `pkcs11:token=${token.label}?module-path=${SOFTHSM_MODULE}&pin-source=file:${token.pinFile}`;
const twin = generateKeyPairSync("rsa", { modulusLength: 2048 });
const pemFile = join(stateDir, "migrate.pem");
writeFileSync(pemFile, twin.privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });

afterAll(() => token.remove());

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runKeyTool(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

// Every token action recorded in the CLI's audit chain (src/custody/keytool/audit-trail.ts).
const auditFile = join(stateDir, "keytool-audit.jsonl");
const tokenArgs = ["--pkcs11", "--uri", uri, "--state-dir", stateDir, "--audit-file", auditFile];

describe("custody-keys --pkcs11", () => {
  let generated = "";

  it("generates a key inside the token, non-extractable, and records it as active", async () => {
    const r = await cli("generate", ...tokenArgs, "--label", "dotva-2026");
    expect(r).toMatchObject({ code: 0, err: "" });
    const [fingerprint, keyUri] = r.out.split(/\s+/);
    expect(fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(keyUri).toMatch(/^pkcs11:token=custody-cli;object=dotva-2026;id=(%[0-9A-F]{2}){8};type=private$/);
    generated = fingerprint!;
    const flags = await withTokenSession(parsePkcs11Config(token.config()), (admin) => {
      const key = listTokenKeys(admin).find((k) => k.forms.canonical === generated)!;
      return privateKeyFlags(admin, key);
    });
    expect(flags).toEqual({ sensitive: true, extractable: false });
  });

  it("imports a PEM under the fingerprint of its file twin, and refuses a label in use", async () => {
    const r = await cli(
      "import",
      ...tokenArgs,
      "--label",
      "migrated",
      "--from",
      pemFile,
      "--state",
      "decrypt-only",
    );
    expect(r.code).toBe(0);
    expect(r.out.split(/\s+/)[0]).toBe(fingerprintForms(twin.publicKey).canonical);
    const again = await cli("import", ...tokenArgs, "--label", "migrated", "--from", pemFile);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/already holds a key labelled migrated/);
  });

  it("lists token keys with state, bits and URI, and prints the public key the service decrypts for", async () => {
    const listed = JSON.parse((await cli("list", ...tokenArgs, "--json")).out) as {
      fingerprint: string;
      state: string;
      bits: number;
      label: string;
    }[];
    expect(listed.map((k) => [k.label, k.state, k.bits]).sort()).toEqual([
      ["dotva-2026", "active", 2048],
      ["migrated", "decrypt-only", 2048],
    ]);
    const jwk = JSON.parse((await cli("public", ...tokenArgs, "--key", "dotva-2026", "--format", "jwk")).out);
    expect(jwk).toMatchObject({ kty: "RSA", use: "enc", alg: "RSA-OAEP-256", kid: generated });
    const pem = (await cli("public", ...tokenArgs, "--key", generated)).out;
    expect(fingerprintForms(createPublicKey(pem)).canonical).toBe(generated);

    const store = await Pkcs11KeyStore.open(
      parsePkcs11Config(token.config({ manifestDir: stateDir, sessions: 1 })),
    );
    try {
      expect(store.get(generated)?.info.state).toBe("active");
      expect(store.get(fingerprintForms(twin.publicKey).canonical)?.info.state).toBe("decrypt-only");
      const jwe = await new CompactEncrypt(new TextEncoder().encode("to the token"))
        .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM" })
        .encrypt(createPublicKey({ key: jwk, format: "jwk" }));
      const plain = await decryptJwe(parseCompactJwe(jwe), store.get(generated)!.unwrap);
      expect(plain.toString()).toBe("to the token");

      expect((await cli("set-state", ...tokenArgs, "--key", generated, "--state", "disabled")).code).toBe(0);
      await store.reload();
      expect(store.get(generated)?.info.state).toBe("disabled");
    } finally {
      await store.close();
    }
  });

  it("refuses directory options with --pkcs11, a missing URI and an unknown key, and documents --pkcs11", async () => {
    expect((await cli("list", "--pkcs11", "--uri", uri, "--dir", stateDir)).err).toMatch(
      /--dir is for the key directory/,
    );
    const saved = process.env.CUSTODY_PKCS11_URI;
    delete process.env.CUSTODY_PKCS11_URI;
    expect((await cli("list", "--pkcs11")).err).toMatch(/--uri is required/);
    if (saved !== undefined) process.env.CUSTODY_PKCS11_URI = saved;
    const unknown = await cli("public", ...tokenArgs, "--key", "nope");
    expect(unknown).toMatchObject({ code: 1 });
    expect(unknown.err).toMatch(/no token key is named nope/);
    expect(usage()).toContain("generate --pkcs11");
    expect(usage()).toContain("import --pkcs11");
  });

  it("recorded every token action in the audit chain, with fingerprints and key URIs but never --uri", async () => {
    const verify = await cli("audit", "verify", auditFile);
    expect(verify.code).toBe(0);
    const lines = readFileSync(auditFile, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const actions = lines.filter((l) => l.event === "keytool");
    expect(actions.find((l) => l.command === "generate")).toMatchObject({
      outcome: "ok",
      fingerprint: generated,
      uri: expect.stringMatching(/^pkcs11:token=custody-cli;object=dotva-2026;/),
      options: { pkcs11: true, label: "dotva-2026", "state-dir": stateDir },
    });
    expect(actions.filter((l) => l.command === "set-state").map((l) => l.state_after)).toContain("disabled");
    expect(actions.find((l) => l.command === "public" && l.outcome === "error")).toBeDefined();
    const text = readFileSync(auditFile, "utf8");
    expect(text).not.toContain("pin-source");
    expect(text).not.toContain(token.pinFile);
  });
});
