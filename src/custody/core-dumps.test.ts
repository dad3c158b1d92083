/**
 * Core dumps: custody in production refuses to start while RLIMIT_CORE allows a core file (which would
 * hold card data and private keys), naming how to switch them off; with the limit at 0 it starts;
 * development warns and starts. The limit is set around the real process with prlimit(1).
 */
import { execFile, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { baseEnv, testPki } from "../tools/testing/custody-harness.js";
import { softCoreLimit } from "./core-dumps.js";

const MAIN = fileURLToPath(new URL("./main.ts", import.meta.url));
const run = promisify(execFile);

/**
 * Starts custody under `prlimit --core=<limit>`; resolves with the exit code and output once it exits,
 * or once it logs that it listens (then it is stopped with SIGTERM).
 */
function startWithCoreLimit(limit: string, env: Record<string, string>) {
  return new Promise<{ listening: boolean; code: number | null; stdout: string; stderr: string }>(
    (resolve, reject) => {
      const child = spawn("prlimit", [`--core=${limit}`, "--", process.execPath, "--import", "tsx", MAIN], {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      let listening = false;
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`custody neither exited nor listened: ${stdout} ${stderr}`));
      }, 30_000);
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString("utf8");
        if (!listening && stdout.includes('"msg":"custody listening"')) {
          listening = true;
          child.kill("SIGTERM");
        }
      });
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString("utf8");
      });
      child.on("exit", (code) => {
        clearTimeout(timer);
        resolve({ listening, code, stdout, stderr });
      });
    },
  );
}

describe("core dumps", () => {
  const pki = testPki();
  const env = baseEnv(pki, { CUSTODY_LOG_LEVEL: "info" });

  it("reads the soft limit as the kernel prints it in /proc/<pid>/limits", async () => {
    for (const [limit, soft] of [
      ["12345:unlimited", 12345],
      ["0:unlimited", 0],
      ["unlimited:unlimited", Number.POSITIVE_INFINITY],
    ] as const) {
      const { stdout } = await run("prlimit", [`--core=${limit}`, "--", "cat", "/proc/self/limits"]);
      expect(softCoreLimit(stdout)).toBe(soft);
    }
    expect(() => softCoreLimit("Max open files 1024 1024 files")).toThrow();
  });

  it("refuses to start in production while core dumps are enabled, naming how to turn them off", async () => {
    const out = await startWithCoreLimit("unlimited:unlimited", env);
    expect(out.listening).toBe(false);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain(
      "custody: refusing to start: core dumps are enabled (RLIMIT_CORE soft limit unlimited)",
    );
    expect(out.stderr).toContain("--ulimit core=0");
    expect(out.stderr).toContain("ulimit -c 0");
  });

  it("starts in production with core dumps off", async () => {
    const out = await startWithCoreLimit("0:0", env);
    expect(out.listening).toBe(true);
    expect(out.code).toBe(0);
    expect(out.stderr).toBe("");
  });

  it("warns and starts in development", async () => {
    const out = await startWithCoreLimit("unlimited:unlimited", { ...env, CUSTODY_ENV: "development" });
    expect(out.listening).toBe(true);
    expect(out.stdout).toContain('"msg":"DEV MODE: core dumps are not off"');
  });
});
