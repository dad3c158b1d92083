/**
 * custody's audit chain (docs/custody.md "Audit chain"): written by the real service before each answer,
 * verified by `custody-keys audit verify`, which finds an edited, removed, reordered, inserted or torn
 * line at its line number; continued across restarts and across a torn end; failed handshakes, reloads
 * and key CLI actions recorded; a line never lost when custody is SIGKILLed right after answering; no
 * card data or JWE in any line.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createPrivateKey, createPublicKey, hash } from "node:crypto";
import {
  appendFileSync,
  chmodSync,
  existsSync,
  readFileSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { connect as netConnect } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fingerprintForms, rsaJwkThumbprint } from "../../core/crypto/fingerprint.js";
import { GATEWAY_SPIFFE } from "../../tools/dev-pki.js";
import {
  baseEnv,
  custodyClient,
  dotvaJwe,
  LogCapture,
  reencrypt,
  standalone,
  startTestCustody,
  TEST_SECRETS,
  tempDir,
  testPki,
} from "../../tools/testing/custody-harness.js";
import { USER } from "../../tools/testing/profile.js";
import { createLogger } from "../audit.js";
import { loadConfig } from "../config.js";
import { generateKeyFile } from "../keytool/key-files.js";
import { runKeyTool } from "../keytool/run.js";
import { type RunningCustody, startCustody } from "../server.js";
import { GENESIS } from "./chain.js";
import { AuditSink } from "./sink.js";
import { verifyChainFile } from "./verify.js";

type Line = Record<string, unknown> & { seq: number; event: string; prev: string; hash: string };

const lines = (file: string): Line[] =>
  readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Line);

async function keytool(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runKeyTool(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A key directory of its own (the tests add keys and change states), with one active key. */
function keyDir() {
  const dir = tempDir("audit-keys");
  const key = generateKeyFile({ dir, name: "dotva-a", bits: 2048, state: "active" });
  const publicKey = createPublicKey(createPrivateKey(readFileSync(key.file)));
  return { dir, fingerprint: key.fingerprint, publicKey };
}

describe("custody's audit chain", () => {
  const pki = testPki();
  const knotJwk = readFileSync(pki.knotJwk, "utf8").trim();
  const keys = keyDir();
  const policyDir = tempDir("audit-policy");
  const policyFile = join(policyDir, "callers.json");
  const policy = (labels: string[]) =>
    JSON.stringify({
      callers: [
        {
          caller: `uri:${GATEWAY_SPIFFE}`,
          source_keys: { labels },
          recipients: { pins: [readFileSync(pki.knotThumbprint, "utf8").trim()] },
        },
      ],
    });
  writeFileSync(policyFile, policy(["dotva-a.pem"]));
  const env = baseEnv(pki, {
    CUSTODY_KEY_DIR: keys.dir,
    CUSTODY_ALLOW_REENCRYPT: "",
    CUSTODY_RECIPIENT_PINS: "",
    CUSTODY_CALLER_POLICY_FILE: policyFile,
  });
  const file = env.CUSTODY_AUDIT_FILE!;
  let custody: RunningCustody;
  let log: LogCapture;
  const jwes: string[] = [];
  const closers: { close(): void }[] = [];

  const request = async (requestId: string) => {
    const jwe = await dotvaJwe(keys.publicKey);
    jwes.push(jwe);
    return {
      secrets_jwe: jwe,
      key_fingerprint: keys.fingerprint,
      knot_jwk: knotJwk,
      user: USER,
      request_id: requestId,
    };
  };

  beforeAll(async () => {
    ({ custody, log } = await startTestCustody(env));
    const gateway = custodyClient(custody.port, pki);
    closers.push(gateway);
    expect((await reencrypt(gateway, await request("audit-ok-1"))).ok).toBe(true);
    const refused = await reencrypt(gateway, { ...(await request("audit-bad-fp")), key_fingerprint: "nope" });
    expect(refused.ok).toBe(false);
    expect((await reencrypt(gateway, await request("audit-ok-2"))).ok).toBe(true);
  });

  afterAll(async () => {
    for (const c of closers) c.close();
    await custody?.shutdown(1000);
  });

  it("holds one verifiable line per call, in a file of mode 600, with the chain head in the operator log", () => {
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const all = lines(file);
    expect(all[0]).toMatchObject({ seq: 0, event: "chain_start", writer: "custody", prev: GENESIS });
    expect(all[1]).toMatchObject({ event: "start", policy_version: expect.stringMatching(/^file:/) });
    const calls = all.filter((l) => l.event === "reencrypt");
    expect(calls.map((l) => [l.request_id, l.outcome])).toEqual([
      ["audit-ok-1", "OK"],
      ["audit-bad-fp", "KEY_FINGERPRINT_INVALID"],
      ["audit-ok-2", "OK"],
    ]);
    expect(calls[0]).toMatchObject({
      caller: GATEWAY_SPIFFE,
      key_fingerprint: keys.fingerprint,
      card_last4: TEST_SECRETS.pan.slice(-4),
      source_key_basis: "label",
    });
    // The operator log line of each call names its chain line.
    const opLog = log.audits().map((l) => l.audit_seq);
    expect(opLog).toEqual(calls.map((l) => l.seq));
    const verdict = verifyChainFile(file);
    expect(verdict).toMatchObject({ ok: true, lines: all.length, firstSeq: 0, lastSeq: all.length - 1 });
    const opened = log.lines().find((l) => l.msg === "audit chain opened");
    expect(opened).toMatchObject({ audit_head_seq: 0, audit_head_hash: all[0]!.hash });
  });

  it("never holds the card or a JWE", () => {
    const text = readFileSync(file, "utf8");
    expect(jwes.length).toBeGreaterThan(0);
    for (const jwe of jwes) {
      expect(text).not.toContain(jwe);
      for (const part of jwe.split(".").filter((p) => p.length > 16)) expect(text).not.toContain(part);
    }
    expect(text).not.toContain(TEST_SECRETS.pan);
    // Four digits standing alone: they occur by chance inside a fingerprint's hex.
    expect(text).not.toMatch(standalone(TEST_SECRETS.cvv));
    // No member or value names the CVV anywhere, except by chance inside the per-run Knot thumbprint.
    const knot = JSON.parse(knotJwk);
    expect(text.replaceAll(rsaJwkThumbprint(knot), "")).not.toContain("cvv");
    expect(text).not.toContain(knot.n);
  });

  describe("custody-keys audit verify", () => {
    // Tampered copies of the file the service wrote; line numbers are 1-based.
    const copy = (edit: (rows: string[]) => string[]) => {
      const rows = readFileSync(file, "utf8").split("\n").slice(0, -1);
      const target = join(tempDir("audit-tamper"), "audit.jsonl");
      writeFileSync(
        target,
        edit(rows)
          .map((r) => `${r}\n`)
          .join(""),
      );
      return target;
    };
    const callLine = () => lines(file).findIndex((l) => l.request_id === "audit-ok-1") + 1;

    it("passes the untouched file and prints its head", async () => {
      const run = await keytool("audit", "verify", file);
      const all = lines(file);
      expect(run.code).toBe(0);
      expect(run.out).toBe(
        `ok  ${file}: ${all.length} lines, seq 0..${all.length - 1}, head ${all.at(-1)!.hash}, writer custody`,
      );
    });

    it("finds an edited field at its line (hash mismatch)", async () => {
      const n = callLine();
      const tampered = copy((rows) =>
        rows.map((r, i) => (i === n - 1 ? r.replace('"card_last4":"4242"', '"card_last4":"1111"') : r)),
      );
      expect(readFileSync(tampered, "utf8")).toContain('"card_last4":"1111"');
      const run = await keytool("audit", "verify", tampered);
      expect(run.code).toBe(1);
      expect(run.err).toContain(`line ${n}: hash mismatch`);
    });

    it("finds an edited line whose hash was recomputed, at the next line (broken link)", async () => {
      const n = callLine();
      const tampered = copy((rows) =>
        rows.map((r, i) => {
          if (i !== n - 1) return r;
          const edited = r.replace('"outcome":"OK"', '"outcome":"KEY_DISABLED"');
          const body = `${edited.replace(/,"hash":"[0-9a-f]{64}"\}$/, "")}}`;
          return `${body.slice(0, -1)},"hash":"${hash("sha256", body)}"}`;
        }),
      );
      expect(verifyChainFile(tampered)).toMatchObject({ ok: false, line: n + 1, problem: "broken link" });
    });

    it("finds a removed line (seq gap)", async () => {
      const n = callLine();
      const tampered = copy((rows) => rows.filter((_, i) => i !== n - 1));
      expect(verifyChainFile(tampered)).toMatchObject({ ok: false, line: n, problem: "seq gap" });
      expect((await keytool("audit", "verify", tampered)).err).toContain(`line ${n}: seq gap`);
    });

    it("finds two swapped lines (seq gap at the first)", async () => {
      const n = callLine();
      const tampered = copy((rows) => {
        const out = [...rows];
        [out[n - 1], out[n]] = [out[n]!, out[n - 1]!];
        return out;
      });
      expect(verifyChainFile(tampered)).toMatchObject({ ok: false, line: n, problem: "seq gap" });
    });

    it("finds an inserted line, even one with a valid own hash and the next seq (broken link after it)", async () => {
      const n = callLine();
      const tampered = copy((rows) => {
        const before = JSON.parse(rows[n - 1]!) as Line;
        const body = `{"seq":${before.seq + 1},"ts":"${before.ts}","event":"reencrypt","outcome":"OK","prev":"${before.hash}"}`;
        const forged = `${body.slice(0, -1)},"hash":"${hash("sha256", body)}"}`;
        return [...rows.slice(0, n), forged, ...rows.slice(n)];
      });
      expect(verifyChainFile(tampered)).toMatchObject({ ok: false, line: n + 2, problem: "seq gap" });
    });

    it("finds a line cut off mid-way (torn line) and a line that is not JSON", async () => {
      const torn = copy((rows) => rows);
      const size = statSync(torn).size;
      truncateSync(torn, size - 20);
      const count = lines(file).length;
      const run = await keytool("audit", "verify", torn);
      expect(run.code).toBe(1);
      expect(run.err).toContain(`line ${count}: torn line`);

      const garbage = copy((rows) => rows.map((r, i) => (i === 2 ? r.slice(0, -1) : r)));
      expect(verifyChainFile(garbage)).toMatchObject({ ok: false, line: 3, problem: "not JSON" });
    });
  });

  it("records a caller-policy reload and a refused one, with the versions", () => {
    writeFileSync(policyFile, policy(["dotva-a.pem", "dotva-b.pem"]));
    expect(custody.reloadCallerPolicy()).toBe(true);
    writeFileSync(policyFile, "{ not json");
    expect(custody.reloadCallerPolicy()).toBe(false);
    const reloads = lines(file).filter((l) => l.event === "caller_policy_reload");
    expect(reloads).toHaveLength(2);
    expect(reloads[0]).toMatchObject({ accepted: true, version_before: expect.stringMatching(/^file:/) });
    expect(reloads[0]!.version).not.toBe(reloads[0]!.version_before);
    expect(reloads[1]).toMatchObject({
      accepted: false,
      version_in_force: reloads[0]!.version,
      reason: "CUSTODY_CALLER_POLICY_FILE: not valid JSON",
    });
    writeFileSync(policyFile, policy(["dotva-a.pem"]));
  });

  it("records a key reload with the fingerprints added and the states changed", async () => {
    const added = generateKeyFile({ dir: keys.dir, name: "dotva-b", bits: 2048, state: "active" });
    expect(
      (await keytool("set-state", "--dir", keys.dir, "--key", "dotva-a", "--state", "decrypt-only")).code,
    ).toBe(0);
    await custody.reload();
    const reload = lines(file).findLast((l) => l.event === "key_reload");
    expect(reload).toMatchObject({
      accepted: true,
      keys: 2,
      added: [added.fingerprint],
      removed: [],
      state_changed: [`${keys.fingerprint} active->decrypt-only`],
    });
    writeFileSync(join(keys.dir, "manifest.json"), "{");
    await expect(custody.reload()).rejects.toThrow();
    expect(lines(file).findLast((l) => l.event === "key_reload")).toMatchObject({ accepted: false });
    expect(verifyChainFile(file).ok).toBe(true);
  });

  it("records a TLS reload with the serial in force", () => {
    expect(custody.reloadTls()).toBe(true);
    const reload = lines(file).findLast((l) => l.event === "tls_reload");
    expect(reload).toMatchObject({ accepted: true, client_crls: 0 });
    expect(reload!.serial).toBe(reload!.serial_before);
  });

  it("records a client certificate from another CA and one with no certificate, not a bare TCP probe", async () => {
    // A probe that connects and closes without a TLS record first: a port check, no handshake.
    await new Promise<void>((resolve, reject) => {
      const probe = netConnect(custody.port, "127.0.0.1", () => probe.end());
      probe.on("close", () => resolve());
      probe.on("error", reject);
    });
    for (const who of ["wrongCa", "none"] as const) {
      const client = custodyClient(custody.port, pki, who);
      const out = await reencrypt(client, await request(`audit-${who}`), 5000);
      client.close();
      expect(out.ok ? "ok" : out.code).toBe(status.UNAVAILABLE);
    }
    const failed = await until("two handshake lines", () => {
      const found = lines(file).filter((l) => l.event === "tls_handshake_failed");
      return found.length >= 2 ? found : undefined;
    });
    expect(failed[0]).toMatchObject({ remote_address: "127.0.0.1", verify_error: "CERT_SIGNATURE_FAILURE" });
    expect(failed[1]).toMatchObject({
      remote_address: "127.0.0.1",
      code: "ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE",
    });
    expect(lines(file).filter((l) => l.event === "tls_handshake_failed")).toHaveLength(2);
    expect(lines(file).some((l) => l.request_id === "audit-wrongCa")).toBe(false);
  });

  it("answers AUDIT_UNAVAILABLE, not the card, when the line cannot be written", async () => {
    const sink = custody.audit!;
    const gateway = custodyClient(custody.port, pki);
    closers.push(gateway);
    sink.close();
    const out = await reencrypt(gateway, await request("audit-unwritable"));
    expect(out.ok).toBe(false);
    if (!out.ok) expect([out.code, out.reason]).toEqual([status.UNAVAILABLE, "AUDIT_UNAVAILABLE"]);
    expect(log.audits().at(-1)).toMatchObject({
      request_id: "audit-unwritable",
      outcome: "AUDIT_UNAVAILABLE",
    });
  });
});

describe("the chain across restarts", () => {
  it("continues after a clean stop, and records a torn end instead of building on it", async () => {
    const pki = testPki();
    const env = baseEnv(pki);
    const file = env.CUSTODY_AUDIT_FILE!;
    const first = await startTestCustody(env);
    await first.custody.shutdown(1000);
    const afterFirst = lines(file);
    expect(afterFirst.map((l) => l.event)).toEqual(["chain_start", "start", "stop"]);
    const shutdownHead = first.log.lines().find((l) => l.msg === "audit chain head at shutdown");
    expect(shutdownHead).toMatchObject({ audit_head_seq: 2, audit_head_hash: afterFirst[2]!.hash });

    const second = await startTestCustody(env);
    await second.custody.shutdown(1000);
    expect(lines(file).map((l) => l.event)).toEqual(["chain_start", "start", "stop", "start", "stop"]);
    expect(verifyChainFile(file)).toMatchObject({ ok: true, lines: 5, lastSeq: 4 });

    // A crash (or power loss) in the middle of a write: a line with no end.
    const lastGood = lines(file).at(-1)!;
    const fragment = '{"seq":5,"ts":"2026-01-01T00:00:00.000Z","event":"reenc';
    appendFileSync(file, fragment);
    const third = await startTestCustody(env);
    await third.custody.shutdown(1000);
    expect(third.log.lines().find((l) => String(l.msg).startsWith("audit chain: the end"))).toMatchObject({
      reason: "torn last line (a write that did not finish)",
    });
    const text = readFileSync(file, "utf8").split("\n");
    expect(text[5]).toBe(fragment);
    const brk = JSON.parse(text[6]!) as Line;
    expect(brk).toMatchObject({
      seq: 5,
      event: "chain_break",
      prev: lastGood.hash,
      skipped_bytes: fragment.length,
      skipped_sha256: hash("sha256", fragment),
    });
    expect(text.slice(7, 9).map((l) => (JSON.parse(l) as Line).event)).toEqual(["start", "stop"]);
    // The verifier still names the torn line, and the break custody recorded: an operator looks at both.
    const verdict = verifyChainFile(file);
    expect(verdict).toMatchObject({ ok: false, line: 6, problem: "not JSON" });
    if (!verdict.ok)
      expect(verdict.detail).toContain("custody recorded a chain_break at line 7: torn last line");
  });

  it("writes the head to the operator log when the chain moved, not when it did not", async () => {
    const pki = testPki();
    const log = new LogCapture();
    const config = loadConfig(baseEnv(pki));
    const custody = await startCustody(config, {
      logger: createLogger("info", log),
      auditAnchorIntervalMs: 50,
    });
    try {
      const start = lines(config.audit.file!).find((l) => l.event === "start")!;
      const anchors = () => log.lines().filter((l) => l.msg === "audit chain head");
      // The start line moved the chain past the head logged at open: one periodic anchor names it.
      const first = await until("a periodic anchor", () => anchors()[0]);
      expect(first).toMatchObject({ audit_head_seq: start.seq, audit_head_hash: start.hash });
      custody.reloadTls();
      const reload = lines(config.audit.file!).find((l) => l.event === "tls_reload")!;
      await until("the anchor after the reload", () =>
        anchors().find((l) => l.audit_head_seq === reload.seq),
      );
      expect(anchors().filter((l) => l.audit_head_seq === start.seq)).toHaveLength(1);
    } finally {
      await custody.shutdown(1000);
    }
  });

  it("is required in production and optional in development", () => {
    const pki = testPki();
    const { CUSTODY_AUDIT_FILE: _f, ...noAudit } = baseEnv(pki);
    expect(() => loadConfig(noAudit)).toThrow("CUSTODY_AUDIT_FILE: is required in production");
    expect(loadConfig({ ...noAudit, CUSTODY_ENV: "development" }).audit).toEqual({ fsync: false });
    expect(loadConfig({ ...noAudit, CUSTODY_AUDIT_FILE: "/x/a", CUSTODY_AUDIT_FSYNC: "1" }).audit).toEqual({
      file: "/x/a",
      fsync: true,
    });
  });

  it("refuses another writer's chain and an unwritable path, naming the variable", async () => {
    const pki = testPki();
    const cliChain = join(tempDir("audit-cli"), "keytool.jsonl");
    expect((await keytool("list", "--dir", pki.dotvaKeyDir, "--audit-file", cliChain)).code).toBe(0);
    await expect(startTestCustody(baseEnv(pki, { CUSTODY_AUDIT_FILE: cliChain }))).rejects.toThrow(
      `CUSTODY_AUDIT_FILE: ${cliChain} is the custody-keys chain`,
    );
    await expect(
      startTestCustody(baseEnv(pki, { CUSTODY_AUDIT_FILE: "/nonexistent/dir/a.jsonl" })),
    ).rejects.toThrow("CUSTODY_AUDIT_FILE: cannot open /nonexistent/dir/a.jsonl for appending (ENOENT)");
  });

  it("tightens a file left readable by group or others to 600", () => {
    const file = join(tempDir("audit-mode"), "a.jsonl");
    writeFileSync(file, "");
    chmodSync(file, 0o664);
    const sink = AuditSink.open(file, { writer: "custody" });
    sink.close();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(sink.warnings).toEqual([`${file} had mode 664; set to 600`]);
  });
});

describe("custody-keys actions", () => {
  it("each action is one line in the CLI's own chain, failures too, never a passphrase", async () => {
    const dir = tempDir("audit-cli-keys");
    const chain = join(tempDir("audit-cli-chain"), "keytool.jsonl");
    const passFile = join(dir, "..", `pass-${Date.now()}`);
    writeFileSync(passFile, "correct horse battery staple\n", { mode: 0o600 });
    const gen = await keytool(
      "generate",
      "--dir",
      dir,
      "--name",
      "k1",
      "--passphrase-file",
      passFile,
      "--audit-file",
      chain,
    );
    expect(gen.code).toBe(0);
    const fingerprint = gen.out.split(/\s+/)[0]!;
    // Two CLIs at once take turns on the chain (lock file): both lines, one valid chain.
    const [a, b] = await Promise.all([
      keytool("list", "--dir", dir, "--passphrase-file", passFile, "--audit-file", chain),
      keytool(
        "set-state",
        "--dir",
        dir,
        "--passphrase-file",
        passFile,
        "--key",
        "k1",
        "--state",
        "disabled",
        "--audit-file",
        chain,
      ),
    ]);
    expect([a.code, b.code]).toEqual([0, 0]);
    const bad = await keytool(
      "generate",
      "--dir",
      dir,
      "--name",
      "k1",
      "--passphrase-file",
      passFile,
      "--audit-file",
      chain,
    );
    expect(bad.code).toBe(1);

    const all = lines(chain);
    expect(all[0]).toMatchObject({ event: "chain_start", writer: "custody-keys" });
    const actions = all.filter((l) => l.event === "keytool");
    expect(actions.map((l) => [l.command, l.outcome])).toEqual(
      expect.arrayContaining([
        ["generate", "ok"],
        ["list", "ok"],
        ["set-state", "ok"],
        ["generate", "error"],
      ]),
    );
    expect(actions[0]).toMatchObject({
      command: "generate",
      fingerprint,
      file: join(dir, "k1.pem"),
      options: { dir, name: "k1", "passphrase-file": passFile },
      pid: process.pid,
    });
    expect(actions.find((l) => l.command === "set-state")).toMatchObject({
      fingerprint,
      state_before: "active",
      state_after: "disabled",
    });
    expect(actions.at(-1)).toMatchObject({ error: expect.stringContaining("exists; choose another name") });
    expect(verifyChainFile(chain)).toMatchObject({ ok: true, lines: 5, writer: "custody-keys" });
    const text = readFileSync(chain, "utf8");
    expect(text).not.toContain("correct horse");
    expect(text).not.toContain("PRIVATE KEY");
    expect(
      fingerprintForms(
        createPublicKey(
          createPrivateKey({
            key: readFileSync(join(dir, "k1.pem")),
            passphrase: "correct horse battery staple",
          }),
        ),
      ).canonical,
    ).toBe(fingerprint);
  });

  it("refuses to act when the named chain cannot be written, and warns when none is named", async () => {
    const dir = tempDir("audit-cli-refuse");
    const run = await keytool(
      "generate",
      "--dir",
      dir,
      "--name",
      "k1",
      "--audit-file",
      "/nonexistent/x.jsonl",
    );
    expect(run.code).toBe(1);
    expect(run.err).toContain("audit file: cannot create /nonexistent/x.jsonl.lock (ENOENT)");
    expect(existsSync(join(dir, "k1.pem"))).toBe(false);
    const unaudited = await keytool("list", "--dir", dir);
    expect(unaudited.err).toContain("no audit file");
  });
});

describe("SIGKILL right after the answer", () => {
  const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
  let child: ChildProcess | undefined;
  afterAll(() => child?.kill("SIGKILL"));

  it("leaves the answered call's line in the file, and the chain valid", async () => {
    const pki = testPki();
    const keys = keyDir();
    const env = baseEnv(pki, { CUSTODY_KEY_DIR: keys.dir, CUSTODY_LOG_LEVEL: "info" });
    const file = env.CUSTODY_AUDIT_FILE!;
    child = spawn(process.execPath, ["--import", "tsx", MAIN], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let stdout = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
    });
    let gone = false;
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child!.on("exit", (_code, signal) => {
        gone = true;
        resolve(signal);
      }),
    );
    const listening = await until(
      "custody listening",
      () => {
        if (gone) throw new Error(`custody exited before listening: ${stdout}`);
        return stdout.split("\n").find((l) => l.includes('"msg":"custody listening"'));
      },
      45_000,
    );
    const port = (JSON.parse(listening) as { port: number }).port;
    const client = custodyClient(port, pki);
    const jwe = await dotvaJwe(keys.publicKey);
    const answered = await new Promise<boolean>((resolve) => {
      client.ReencryptForKnot(
        {
          secrets_jwe: jwe,
          key_fingerprint: keys.fingerprint,
          knot_jwk: readFileSync(pki.knotJwk, "utf8"),
          user: USER,
          request_id: "killed-right-after",
        },
        { deadline: Date.now() + 10_000 },
        (err) => {
          // No await between the answer and the kill: the process gets no time to flush anything.
          child!.kill("SIGKILL");
          resolve(err === null);
        },
      );
    });
    client.close();
    expect(answered).toBe(true);
    expect(await exited).toBe("SIGKILL");
    const line = lines(file).find((l) => l.request_id === "killed-right-after");
    expect(line).toMatchObject({ event: "reencrypt", outcome: "OK", card_last4: TEST_SECRETS.pan.slice(-4) });
    expect(verifyChainFile(file)).toMatchObject({ ok: true });
    expect(readFileSync(file, "utf8")).not.toContain(jwe.split(".")[1]!);
  }, 60_000);
});
