/**
 * Runs a documentation's shell block as a reader would paste it: bash with -e and pipefail, stdout and
 * stderr together, killed after a minute. Asynchronous, so servers in the test process keep running.
 */
import { spawn } from "node:child_process";

export function runShellBlock(
  script: string,
  opts: { readonly env: NodeJS.ProcessEnv; readonly cwd?: string },
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn("bash", ["-eo", "pipefail", "-c", script], { cwd: opts.cwd, env: opts.env });
    let out = "";
    child.stdout.on("data", (d) => {
      out += String(d);
    });
    child.stderr.on("data", (d) => {
      out += String(d);
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}
