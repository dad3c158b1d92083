/**
 * What the Docker image would run, without Docker (no engine on these machines): the compiled `dist/`
 * (not the TypeScript sources), started as an unprivileged user (`nobody`), from a tree that user
 * cannot write to, with its secrets in a directory only it can read. The service must come up, report
 * SERVING, and re-encrypt a card.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { chmodSync, copyFileSync, cpSync, readdirSync, readFileSync, symlinkSync } from "node:fs";
import { join, resolve } from "node:path";
import { compactDecrypt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fingerprintForms } from "../../src/crypto/fingerprint.js";
import { freePort } from "../../src/simulators/processes.js";
import { USER } from "../support/profile.js";
import {
  baseEnv,
  custodyClient,
  dotvaJwe,
  healthCheck,
  healthClient,
  reencrypt,
  tempDir,
  testPki,
} from "./harness.js";

const REPO = resolve(import.meta.dirname, "../..");

const AS_NOBODY = ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"];

let child: ChildProcess | undefined;
let output = "";
let port = 0;
let app = "";
const pki = testPki();

beforeAll(async () => {
  // The image's /app: compiled code, protos, package.json (ESM), dependencies; owned by root, read-only.
  app = tempDir("prod-app");
  execFileSync("npx", ["tsc", "-p", "tsconfig.build.json", "--outDir", join(app, "dist")], {
    cwd: REPO,
    stdio: "pipe",
  });
  cpSync(join(REPO, "proto"), join(app, "proto"), { recursive: true });
  copyFileSync(join(REPO, "package.json"), join(app, "package.json"));
  symlinkSync(join(REPO, "node_modules"), join(app, "node_modules"));
  execFileSync("chmod", ["-R", "a-w,a+rX", app]);

  // The mounted secrets: readable by the service user only, as the key store demands.
  const secrets = tempDir("prod-secrets");
  for (const [name, from] of [
    ["server.crt", pki.server.cert],
    ["server.key", pki.server.key],
    ["ca.crt", pki.caCert],
  ] as const) {
    copyFileSync(from, join(secrets, name));
  }
  cpSync(pki.dotvaKeyDir, join(secrets, "dotva"), { recursive: true });
  execFileSync("chown", ["-R", "nobody", secrets]);
  chmodSync(secrets, 0o700);
  for (const file of readdirSync(join(secrets, "dotva"))) chmodSync(join(secrets, "dotva", file), 0o600);

  port = await freePort();
  const env = baseEnv(pki, {
    CUSTODY_LISTEN: `127.0.0.1:${port}`,
    CUSTODY_TLS_CERT: join(secrets, "server.crt"),
    CUSTODY_TLS_KEY: join(secrets, "server.key"),
    CUSTODY_TLS_CLIENT_CA: join(secrets, "ca.crt"),
    CUSTODY_KEY_DIR: join(secrets, "dotva"),
    CUSTODY_LOG_LEVEL: "info",
  });
  // setpriv execs node itself (runuser would fork), so the pid and the SIGTERM below are node's.
  child = spawn("setpriv", [...AS_NOBODY, process.execPath, join(app, "dist/custody/main.js")], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", NODE_ENV: "production", ...env },
    cwd: app,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr!.on("data", (d: Buffer) => {
    output += d.toString();
  });

  const health = healthClient(port, pki);
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    if ((await healthCheck(health)).status === "SERVING") break;
    if (child.exitCode !== null) throw new Error(`custody exited early:\n${output}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  health.close();
}, 120_000);

afterAll(async () => {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child!.once("exit", r));
  child.kill("SIGTERM");
  await exited;
});

describe("the production build, as an unprivileged user on a read-only tree", () => {
  it("runs as nobody from dist/", () => {
    const pid = child!.pid!;
    const uid = readFileSync(`/proc/${pid}/status`, "utf8").match(/^Uid:\s+(\d+)/m)![1];
    expect(uid).toBe(execFileSync("id", ["-u", "nobody"], { encoding: "utf8" }).trim());
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8")).toContain("dist/custody/main.js");
  });

  it("reports SERVING and re-encrypts a card over mTLS", async () => {
    const health = healthClient(port, pki);
    expect(await healthCheck(health)).toEqual({ status: "SERVING" });
    health.close();

    const dotvaPem = readdirSync(pki.dotvaKeyDir).find((f) => f.endsWith(".pem"))!;
    const dotvaPublic = createPublicKey(createPrivateKey(readFileSync(join(pki.dotvaKeyDir, dotvaPem))));
    const client = custodyClient(port, pki);
    const out = await reencrypt(client, {
      secrets_jwe: await dotvaJwe(dotvaPublic),
      key_fingerprint: fingerprintForms(dotvaPublic).canonical,
      knot_jwk: readFileSync(pki.knotJwk, "utf8").trim(),
      user: USER,
      request_id: "prod-build-1",
    });
    client.close();
    if (!out.ok) throw new Error(`call failed: ${out.code} ${out.reason} ${out.details}\n${output}`);
    const { plaintext } = await compactDecrypt(
      out.value.jwe,
      createPrivateKey(readFileSync(pki.knotPrivateKey)),
    );
    expect(JSON.parse(new TextDecoder().decode(plaintext)).card.number).toBe("4242424242424242");
  });

  it("cannot write to its own code", () => {
    for (const target of [join(app, "probe"), join(app, "dist/custody/main.js")]) {
      expect(() =>
        execFileSync("setpriv", [...AS_NOBODY, "sh", "-c", `echo > ${target}`], { stdio: "pipe" }),
      ).toThrow();
    }
  });
});
