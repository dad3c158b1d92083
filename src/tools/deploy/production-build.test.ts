/**
 * What the images would run, without a Docker engine (none runs on these machines). The build stage of
 * the Dockerfile is replayed from the Dockerfile itself: its context files are copied into an empty
 * directory and its RUN commands executed there (npm ci, the build, npm prune --omit=dev); the runtime
 * stage's COPY lines then assemble the image's /app. Both services are started from that tree with the
 * image's entry points, as an unprivileged user (`nobody`), on code owned by root that no one can
 * write, with their secrets in directories only that user can read, and a card goes through them.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../processes.js";
import { baseEnv, healthCheck, healthClient, tempDir, testPki } from "../testing/custody-harness.js";
import { gatewayEnvFor, type Parties, sendOneCard, startParties } from "./card-flow.js";
import { execForm, REPO, readDockerfile, stage } from "./dockerfile.js";

const AS_NOBODY = ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"];
const dockerfile = readDockerfile();
const pki = testPki();

let app = "";
let build = "";
let gatewayData = "";
let gatewaySecrets = "";
let custodyPort = 0;
let gatewayPort = 0;
let parties: Parties | undefined;
const skippedRuns: string[] = [];
const procs: { name: string; child: ChildProcess; output: string }[] = [];

/** COPY [--from=stage] <src...> <dest>, dest relative to WORKDIR /app. */
function copyArgs(args: string): { from?: string; sources: string[]; dest: string } {
  const words = args.split(" ");
  const from = words[0]!.startsWith("--from=") ? words.shift()!.slice("--from=".length) : undefined;
  const dest = words.pop()!;
  return { ...(from ? { from } : {}), sources: words, dest };
}

function startAsNobody(name: string, entry: string, env: Record<string, string>) {
  // setpriv execs node itself (runuser would fork), so the pid and the SIGTERM below are node's. The
  // entry point is the image's: ENTRYPOINT node, CMD dist/<service>/main.js, WORKDIR /app.
  const child = spawn("setpriv", [...AS_NOBODY, process.execPath, entry], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", NODE_ENV: "production", ...env },
    cwd: app,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const proc = { name, child, output: "" };
  child.stdout!.on("data", (d: Buffer) => {
    proc.output += d.toString();
  });
  child.stderr!.on("data", (d: Buffer) => {
    proc.output += d.toString();
  });
  procs.push(proc);
  return proc;
}

async function waitFor(
  what: string,
  proc: { child: ChildProcess; output: string },
  ok: () => Promise<boolean>,
) {
  const until = Date.now() + 30_000;
  while (!(await ok().catch(() => false))) {
    if (proc.child.exitCode !== null) throw new Error(`${what} exited early:\n${proc.output}`);
    if (Date.now() > until) throw new Error(`${what} not up within 30 s:\n${proc.output}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A directory of copies readable by `nobody` only, as a mounted secret volume would be. */
function secretDir(prefix: string, files: Record<string, string>): string {
  const dir = tempDir(prefix);
  for (const [name, from] of Object.entries(files)) copyFileSync(from, join(dir, name));
  execFileSync("chown", ["-R", "nobody", dir]);
  chmodSync(dir, 0o700);
  for (const name of Object.keys(files)) chmodSync(join(dir, name), 0o600);
  return dir;
}

beforeAll(async () => {
  // The build stage, in an empty directory holding only what its COPY lines bring in.
  build = tempDir("image-build");
  const buildStage = stage(dockerfile, "build");
  for (const i of buildStage.instructions) {
    if (i.keyword === "COPY") {
      const { sources, dest } = copyArgs(i.args);
      for (const s of sources) {
        // As Docker does: a file copied into a directory keeps its base name; a directory's contents go there.
        const target =
          dest.endsWith("/") && !statSync(join(REPO, s)).isDirectory()
            ? join(build, dest, basename(s))
            : join(build, dest);
        cpSync(join(REPO, s), target, { recursive: true });
      }
    } else if (i.keyword === "RUN") {
      // The compiler toolchain this installs in the image is already on the machine.
      if (i.args.startsWith("apt-get ")) {
        skippedRuns.push(i.args);
        continue;
      }
      execFileSync("bash", ["-c", i.args], { cwd: build, stdio: "pipe", timeout: 150_000 });
    }
  }

  // The runtime stage's /app.
  app = tempDir("image-app");
  for (const i of stage(dockerfile, "runtime").instructions.filter((x) => x.keyword === "COPY")) {
    const { from, sources, dest } = copyArgs(i.args);
    for (const s of sources) {
      const source = from === "build" ? join(build, s.replace(/^\/app\//, "")) : join(REPO, s);
      const target = dest.endsWith("/") ? join(app, dest, basename(s)) : join(app, dest);
      mkdirSync(dirname(target), { recursive: true });
      cpSync(source, target, { recursive: true });
    }
  }
  execFileSync("chown", ["-R", "root:root", app]);
  execFileSync("chmod", ["-R", "a-w,a+rX", app]);

  const custodySecrets = secretDir("image-custody-secrets", {
    "tls.crt": pki.server.cert,
    "tls.key": pki.server.key,
    "client-ca.crt": pki.caCert,
  });
  cpSync(pki.dotvaKeyDir, join(custodySecrets, "keys"), { recursive: true });
  execFileSync("chown", ["-R", "nobody", join(custodySecrets, "keys")]);
  for (const f of readdirSync(join(custodySecrets, "keys")))
    chmodSync(join(custodySecrets, "keys", f), 0o600);
  gatewaySecrets = secretDir("image-gateway-secrets", {
    "custody-ca.crt": pki.caCert,
    "tls.crt": pki.gateway.cert,
    "tls.key": pki.gateway.key,
  });
  // The image's /var/lib/custody-audit volume: owned by the service user, as the Dockerfile installs it.
  const custodyAudit = tempDir("image-custody-audit");
  execFileSync("chown", ["nobody", custodyAudit]);
  chmodSync(custodyAudit, 0o700);
  gatewayData = tempDir("image-gateway-data");
  execFileSync("chown", ["nobody", gatewayData]);
  chmodSync(gatewayData, 0o700);

  custodyPort = await freePort();
  const custody = startAsNobody(
    "custody",
    execForm(stage(dockerfile, "custody").instructions.find((i) => i.keyword === "CMD")!.args)[0]!,
    baseEnv(pki, {
      CUSTODY_LISTEN: `127.0.0.1:${custodyPort}`,
      CUSTODY_TLS_CERT: join(custodySecrets, "tls.crt"),
      CUSTODY_TLS_KEY: join(custodySecrets, "tls.key"),
      CUSTODY_TLS_CLIENT_CA: join(custodySecrets, "client-ca.crt"),
      CUSTODY_KEY_DIR: join(custodySecrets, "keys"),
      CUSTODY_AUDIT_FILE: join(custodyAudit, "audit.jsonl"),
      CUSTODY_LOG_LEVEL: "info",
    }),
  );
  await waitFor("custody", custody, async () => {
    const health = healthClient(custodyPort, pki);
    const status = (await healthCheck(health)).status;
    health.close();
    return status === "SERVING";
  });

  parties = await startParties(pki);
  gatewayPort = await freePort();
  const gateway = startAsNobody(
    "gateway",
    execForm(stage(dockerfile, "gateway").instructions.find((i) => i.keyword === "CMD")!.args)[0]!,
    {
      ...gatewayEnvFor(parties, gatewayData, `127.0.0.1:${custodyPort}`),
      GATEWAY_PORT: String(gatewayPort),
      GATEWAY_CUSTODY_CA_FILE: join(gatewaySecrets, "custody-ca.crt"),
      GATEWAY_CUSTODY_CERT_FILE: join(gatewaySecrets, "tls.crt"),
      GATEWAY_CUSTODY_KEY_FILE: join(gatewaySecrets, "tls.key"),
    },
  );
  await waitFor("gateway", gateway, async () => (await fetch(`http://127.0.0.1:${gatewayPort}/healthz`)).ok);
}, 240_000);

afterAll(async () => {
  for (const { child } of procs) {
    if (child.exitCode !== null) continue;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  }
  await parties?.knot.close();
  // Two copies of node_modules: not left behind in /tmp by every run.
  for (const dir of [build, app]) if (dir) rmSync(dir, { recursive: true, force: true });
}, 30_000);

/** The image's HEALTHCHECK command, run as the service user from /app; returns its exit status. */
function healthcheck(service: string, env: Record<string, string>): number {
  const r = spawnSync("setpriv", [...AS_NOBODY, process.execPath, join(app, "healthcheck.mjs"), service], {
    cwd: app,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
    timeout: 15_000,
  });
  return r.status ?? -1;
}

describe("the production bundle, built as the Dockerfile builds it, run as nobody on a read-only tree", () => {
  it("replays every build step but the toolchain install, and ships no dev dependency or source", () => {
    expect(skippedRuns).toEqual([
      expect.stringMatching(/^apt-get update && apt-get install .*python3 make g\+\+/),
    ]);
    // What the lock file marks dev-only is gone (a devDependency that a runtime package also needs,
    // such as @types/node for protobufjs, is not marked so and stays); every runtime dependency is there.
    const lock = JSON.parse(readFileSync(join(REPO, "package-lock.json"), "utf8")) as {
      packages: Record<string, { dev?: boolean }>;
    };
    const devOnly = Object.entries(lock.packages)
      .filter(([path, entry]) => path.startsWith("node_modules/") && entry.dev === true)
      .map(([path]) => path);
    expect(devOnly).toEqual(
      expect.arrayContaining(["node_modules/vitest", "node_modules/typescript", "node_modules/tsx"]),
    );
    for (const path of devOnly) expect(existsSync(join(app, path)), path).toBe(false);
    const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    for (const dep of Object.keys(pkg.dependencies)) {
      expect(existsSync(join(app, "node_modules", dep)), dep).toBe(true);
    }
    expect(readdirSync(app).sort()).toEqual([
      "dist",
      "healthcheck.mjs",
      "node_modules",
      "package.json",
      "proto",
    ]);
  });

  it("runs both services as nobody from dist/", () => {
    const nobody = execFileSync("id", ["-u", "nobody"], { encoding: "utf8" }).trim();
    for (const { name, child } of procs) {
      const uid = readFileSync(`/proc/${child.pid}/status`, "utf8").match(/^Uid:\s+(\d+)/m)![1];
      expect(uid, name).toBe(nobody);
      expect(readFileSync(`/proc/${child.pid}/cmdline`, "utf8")).toContain(`dist/${name}/main.js`);
    }
  });

  it("passes a card from Dotva through the gateway and custody (mTLS) to Knot", async () => {
    const result = await sendOneCard(parties!, `http://127.0.0.1:${gatewayPort}`, 41_001);
    expect(result.readyz).toEqual({ status: "ready", checks: { storage: true, custody: true } });
    expect(result.dotva).toEqual([200]);
    expect(result.job).toBe("sent");
    expect(result.knotReceivedIntact).toBe(true);
    // The gateway's only writes went to its data volume.
    expect(readdirSync(gatewayData)).toContain("gateway.sqlite");
  });

  it("answers the images' health checks, and fails them when the service is not there", async () => {
    expect(healthcheck("gateway", { GATEWAY_PORT: String(gatewayPort) })).toBe(0);
    const probe = {
      HEALTHCHECK_TLS_CERT: join(gatewaySecrets, "tls.crt"),
      HEALTHCHECK_TLS_KEY: join(gatewaySecrets, "tls.key"),
      HEALTHCHECK_TLS_CA: join(gatewaySecrets, "custody-ca.crt"),
      HEALTHCHECK_TLS_SERVER_NAME: "localhost",
    };
    expect(healthcheck("custody", { CUSTODY_LISTEN: `0.0.0.0:${custodyPort}`, ...probe })).toBe(0);
    expect(healthcheck("custody", { CUSTODY_LISTEN: `0.0.0.0:${custodyPort}` })).toBe(0);
    const nothing = await freePort();
    expect(healthcheck("gateway", { GATEWAY_PORT: String(nothing) })).toBe(1);
    expect(healthcheck("custody", { CUSTODY_LISTEN: `0.0.0.0:${nothing}`, ...probe })).toBe(1);
    expect(healthcheck("custody", { CUSTODY_LISTEN: `0.0.0.0:${nothing}` })).toBe(1);
    // mTLS is checked: the custody server's own certificate is no client certificate.
    const serverCert = secretDir("image-server-as-client", {
      "tls.crt": pki.server.cert,
      "tls.key": pki.server.key,
    });
    const serverAsClient = {
      ...probe,
      HEALTHCHECK_TLS_CERT: join(serverCert, "tls.crt"),
      HEALTHCHECK_TLS_KEY: join(serverCert, "tls.key"),
    };
    expect(healthcheck("custody", { CUSTODY_LISTEN: `0.0.0.0:${custodyPort}`, ...serverAsClient })).toBe(1);
  });

  it("cannot write to its own code", () => {
    for (const target of [
      join(app, "probe"),
      join(app, "dist/custody/main.js"),
      join(app, "node_modules/x"),
    ]) {
      const r = spawnSync("setpriv", [...AS_NOBODY, "sh", "-c", `echo > ${target}`], { stdio: "pipe" });
      expect(r.status, target).not.toBe(0);
      expect(existsSync(target) && target.endsWith("probe")).toBe(false);
    }
  });
});
