/**
 * The custody process as an operator runs it (`node --import tsx src/custody/main.ts`): --help,
 * configuration errors that name the variable, SIGHUP key reload, and SIGTERM draining in-flight calls.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { status } from "@grpc/grpc-js";
import { afterAll, describe, expect, it } from "vitest";
import { baseEnv, custodyClient, dotvaJwe, reencrypt, testPki } from "../tools/testing/custody-harness.js";
import { USER } from "../tools/testing/profile.js";
import { CONFIG_VARIABLES, loadConfig } from "./config.js";
import { generateKeyFile } from "./keytool/key-files.js";

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));
const NODE_ARGS = ["--import", "tsx", MAIN];
const run = promisify(execFile);

function envWith(extra: Record<string, string>) {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", ...extra };
}

async function failingStart(env: Record<string, string>) {
  try {
    await run(process.execPath, NODE_ARGS, { env: envWith(env), timeout: 30_000 });
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
  throw new Error("custody started with a bad configuration");
}

class CustodyProcess {
  readonly lines: Record<string, unknown>[] = [];
  private readonly child: ChildProcess;
  private buffer = "";
  readonly exited: Promise<number | null>;

  constructor(env: Record<string, string>) {
    this.child = spawn(process.execPath, NODE_ARGS, {
      env: envWith(env),
      stdio: ["ignore", "pipe", "inherit"],
    });
    this.child.stdout!.on("data", (chunk: Buffer) => {
      this.buffer += chunk.toString("utf8");
      const parts = this.buffer.split("\n");
      this.buffer = parts.pop()!;
      for (const line of parts) if (line.trim()) this.lines.push(JSON.parse(line));
    });
    this.exited = new Promise((resolve) => this.child.on("exit", (code) => resolve(code)));
  }

  async waitFor(msg: string, timeoutMs = 20_000): Promise<Record<string, unknown>> {
    const start = Date.now();
    for (;;) {
      const line = this.lines.find((l) => l.msg === msg);
      if (line) return line;
      if (Date.now() - start > timeoutMs)
        throw new Error(`no "${msg}" in the log: ${JSON.stringify(this.lines)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  signal(sig: NodeJS.Signals) {
    this.child.kill(sig);
  }
}

describe("the custody process", () => {
  const pki = testPki();
  const processes: CustodyProcess[] = [];
  afterAll(() => {
    for (const p of processes) p.signal("SIGKILL");
  });

  it("--help lists every configuration variable", async () => {
    const { stdout } = await run(process.execPath, [...NODE_ARGS, "--help"], {
      env: envWith({}),
      timeout: 30_000,
    });
    for (const v of CONFIG_VARIABLES) expect(stdout).toContain(v.name);
  });

  it.each([
    [
      "a malformed identity",
      { CUSTODY_ALLOW_REENCRYPT: "gateway" },
      'CUSTODY_ALLOW_REENCRYPT: "gateway" is not cn:<name> or uri:<uri>',
    ],
    [
      "a wildcard caller allowlist",
      { CUSTODY_ALLOW_REENCRYPT: "*" },
      "CUSTODY_ALLOW_REENCRYPT: name the callers",
    ],
    ["a non-numeric limit", { CUSTODY_RATE_PER_SECOND: "fast" }, "CUSTODY_RATE_PER_SECOND:"],
    [
      "an unreadable TLS file",
      { CUSTODY_TLS_KEY: "/nonexistent/key.pem" },
      "CUSTODY_TLS_KEY: cannot read /nonexistent/key.pem",
    ],
    ["a bad pin", { CUSTODY_RECIPIENT_PINS: "not-a-thumbprint" }, "CUSTODY_RECIPIENT_PINS:"],
    [
      "no recipient policy at all",
      { CUSTODY_RECIPIENT_PINS: "" },
      "CUSTODY_RECIPIENT_PINS: no recipient can be allowed",
    ],
    ["a bad listen address", { CUSTODY_LISTEN: "localhost" }, "CUSTODY_LISTEN: must be host:port"],
    ["an unknown key store", { CUSTODY_KEYSTORE: "floppy" }, "CUSTODY_KEYSTORE:"],
    [
      "dev plaintext outside development mode",
      { CUSTODY_DEV_PLAINTEXT: "1" },
      "CUSTODY_DEV_PLAINTEXT: only allowed with CUSTODY_ENV=development",
    ],
    [
      "allow-any-recipient outside development mode",
      { CUSTODY_DEV_ALLOW_ANY_RECIPIENT: "1" },
      "CUSTODY_DEV_ALLOW_ANY_RECIPIENT: only allowed with CUSTODY_ENV=development",
    ],
    [
      "development mode on a non-loopback address",
      { CUSTODY_ENV: "development", CUSTODY_LISTEN: "0.0.0.0:7443" },
      "CUSTODY_LISTEN: CUSTODY_ENV=development listens on loopback only",
    ],
    [
      "development mode under NODE_ENV=production",
      { CUSTODY_ENV: "development", NODE_ENV: "production" },
      "CUSTODY_ENV: development is refused when NODE_ENV=production",
    ],
    ["an unknown mode", { CUSTODY_ENV: "staging" }, "CUSTODY_ENV:"],
    [
      "a cn: caller in production",
      { CUSTODY_ALLOW_REENCRYPT: "cn:card-gateway" },
      'CUSTODY_ALLOW_REENCRYPT: "cn:card-gateway": cn: entries are refused outside CUSTODY_ENV=development',
    ],
    [
      "a non-SPIFFE uri: caller in production",
      { CUSTODY_ALLOW_HEALTH: "uri:https://gateway.internal/" },
      'CUSTODY_ALLOW_HEALTH: "uri:https://gateway.internal/" is not a SPIFFE ID',
    ],
    [
      "the retired roots-only recipient policy",
      { CUSTODY_RECIPIENT_ROOTS: "/etc/knot-roots.pem" },
      "CUSTODY_RECIPIENT_ROOTS: no longer accepted",
    ],
    [
      "an unreadable client CRL",
      { CUSTODY_TLS_CLIENT_CRL: "/nonexistent/ca.crl" },
      "CUSTODY_TLS_CLIENT_CRL: cannot read /nonexistent/ca.crl",
    ],
    [
      "a non-numeric connection age",
      { CUSTODY_MAX_CONNECTION_AGE_MS: "forever" },
      "CUSTODY_MAX_CONNECTION_AGE_MS:",
    ],
  ])("rejects %s, naming the variable", (_what, override, message) => {
    expect(() => loadConfig({ ...baseEnv(pki), ...override })).toThrow(message);
  });

  it("loads an x5c policy only when every entry binds its root to a leaf name", () => {
    const dir = mkdtempSync(join(tmpdir(), "custody-x5c-policy-"));
    copyFileSync(pki.caCert, join(dir, "root.pem"));
    const load = (policy: string) => {
      writeFileSync(join(dir, "policy.json"), policy);
      return loadConfig({
        ...baseEnv(pki),
        CUSTODY_RECIPIENT_PINS: "",
        CUSTODY_RECIPIENT_X5C_POLICY: join(dir, "policy.json"),
      });
    };
    const entries = (...list: object[]) => JSON.stringify({ entries: list });
    const ok = load(
      entries({ root: "root.pem", leaf_dns: "JWE.Knot.Test", leaf_subject: "CN=knot,  O=Knot" }),
    );
    expect(ok.recipients.x5c.map((e) => [e.label, e.leafDns, e.leafSubject])).toEqual([
      ["root.pem", "jwe.knot.test", "CN=knot, O=Knot"],
    ]);
    expect(() => load(entries({ root: "root.pem" }))).toThrow(
      "CUSTODY_RECIPIENT_X5C_POLICY: entries.0 each entry needs leaf_dns and/or leaf_subject",
    );
    expect(() => load(entries({ root: "root.pem", leaf_subject: "CN = knot, O=Knot" }))).toThrow(
      "CUSTODY_RECIPIENT_X5C_POLICY: entries.0.leaf_subject: not a distinguished name",
    );
    expect(() => load(entries({ root: pki.server.cert, leaf_dns: "jwe.knot.test" }))).toThrow(
      "is not a CA certificate",
    );
    expect(() => load("{")).toThrow("CUSTODY_RECIPIENT_X5C_POLICY: not valid JSON");
  });

  it("without TLS files refuses to start unless the dev plaintext flag is set, and then says so", () => {
    const { CUSTODY_TLS_CERT: _c, CUSTODY_TLS_KEY: _k, CUSTODY_TLS_CLIENT_CA: _a, ...noTls } = baseEnv(pki);
    expect(() => loadConfig(noTls)).toThrow("CUSTODY_TLS_CERT: is required");
    const dev = loadConfig({ ...noTls, CUSTODY_ENV: "development", CUSTODY_DEV_PLAINTEXT: "1" });
    expect([dev.env, dev.devPlaintext, dev.tls]).toEqual(["development", true, undefined]);
  });

  it("refuses to start with the review's attack settings (production, 0.0.0.0, dev plaintext), naming the variable", async () => {
    const { CUSTODY_TLS_CERT: _c, CUSTODY_TLS_KEY: _k, CUSTODY_TLS_CLIENT_CA: _a, ...noTls } = baseEnv(pki);
    const attack = {
      ...noTls,
      NODE_ENV: "production",
      CUSTODY_LISTEN: "0.0.0.0:0",
      CUSTODY_DEV_PLAINTEXT: "1",
    };
    const [plain, declaredDev, anyRecipient] = await Promise.all([
      failingStart(attack),
      failingStart({ ...attack, CUSTODY_ENV: "development" }),
      failingStart({ ...baseEnv(pki), CUSTODY_LISTEN: "0.0.0.0:0", CUSTODY_DEV_ALLOW_ANY_RECIPIENT: "1" }),
    ]);
    expect(plain).toMatchObject({ code: 2 });
    expect(plain.stderr).toContain("CUSTODY_DEV_PLAINTEXT: only allowed with CUSTODY_ENV=development");
    expect(declaredDev).toMatchObject({ code: 2 });
    expect(declaredDev.stderr).toContain("CUSTODY_ENV: development is refused when NODE_ENV=production");
    expect(anyRecipient).toMatchObject({ code: 2 });
    expect(anyRecipient.stderr).toContain("CUSTODY_DEV_ALLOW_ANY_RECIPIENT: only allowed");
  });

  it("exits with code 2 and the variable's name on a configuration error", async () => {
    const { code, stderr } = await failingStart({ ...baseEnv(pki), CUSTODY_ALLOW_REENCRYPT: "" });
    expect(code).toBe(2);
    expect(stderr).toContain("CUSTODY_ALLOW_REENCRYPT: must not be empty");
  });

  it("reloads keys on SIGHUP and drains in-flight calls on SIGTERM", async () => {
    const custody = new CustodyProcess({ ...baseEnv(pki), CUSTODY_LOG_LEVEL: "info" });
    processes.push(custody);
    const { port } = (await custody.waitFor("custody listening")) as { port: number };
    const client = custodyClient(port, pki);
    const knotJwk = readFileSync(pki.knotJwk, "utf8");

    const added = generateKeyFile({
      dir: pki.dotvaKeyDir,
      name: `added-${Date.now()}`,
      bits: 2048,
      state: "active",
    });
    custody.signal("SIGHUP");
    expect(await custody.waitFor("key set reloaded")).toMatchObject({ generation: 2, keys: 2 });
    const newPublic = createPublicKey(createPrivateKey(readFileSync(added.file)));
    const request = async (i: number) => ({
      secrets_jwe: await dotvaJwe(newPublic),
      key_fingerprint: added.fingerprint,
      knot_jwk: knotJwk,
      user: USER,
      request_id: `proc-${i}`,
    });
    const first = await reencrypt(client, await request(0));
    expect(first.ok).toBe(true);

    const requests = await Promise.all(Array.from({ length: 40 }, (_, i) => request(i + 1)));
    const calls = requests.map((r) => reencrypt(client, r));
    await Promise.race(calls); // work is flowing; most calls are still queued
    custody.signal("SIGTERM");
    const outcomes = await Promise.all(calls);
    expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    expect(await custody.exited).toBe(0);
    const late = await reencrypt(client, await request(99), 2000);
    expect(late.ok ? "ok" : late.code).toBe(status.UNAVAILABLE);
    client.close();
    const msgs = custody.lines.map((l) => l.msg);
    expect(msgs).toContain("draining in-flight calls");
    expect(msgs.at(-1)).toBe("custody stopped");
    expect(custody.lines.filter((l) => l.audit === "ReencryptForKnot" && l.outcome === "OK")).toHaveLength(
      41,
    );
  });
});
