/**
 * `npm run fuzz`: each target of src/tools/fuzz/targets.ts under Jazzer.js (libFuzzer with JS coverage
 * feedback) for FUZZ_SECONDS (default 60) on its corpus in fuzz/corpus/<target>/, then one line per
 * target with the executions libFuzzer reports. FUZZ_TARGETS=a,b runs a subset. New coverage-increasing
 * inputs go to a scratch directory (not the committed corpus); a crashing input is written to
 * fuzz/crashes/ and the run fails: copy it into fuzz/corpus/<target>/ to make it a regression case.
 *
 * On glibc older than 2.38 (Debian 12) the prebuilt libFuzzer addon does not load; a patched copy and a
 * three-function shim are built in a scratch directory (fuzz/glibc236-patch.py explains).
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { build } from "esbuild";
import { TARGETS, type TargetName } from "./targets.js";

const ROOT = new URL("../../../", import.meta.url).pathname;
const require = createRequire(import.meta.url);
const seconds = Number(process.env.FUZZ_SECONDS ?? "60");
if (!Number.isInteger(seconds) || seconds < 1) throw new Error("FUZZ_SECONDS must be a positive integer");
const names = (process.env.FUZZ_TARGETS?.split(",") ?? Object.keys(TARGETS)) as TargetName[];
for (const n of names) if (!(n in TARGETS)) throw new Error(`FUZZ_TARGETS: unknown target ${n}`);

const scratch = mkdtempSync(join(tmpdir(), "card-custody-fuzz-"));
const addon = join(
  dirname(require.resolve("@jazzer.js/fuzzer/package.json")),
  "prebuilds/fuzzer-linux-x64.node",
);
const loads = spawnSync(process.execPath, ["-e", `process.dlopen({exports:{}}, ${JSON.stringify(addon)})`]);
const env: NodeJS.ProcessEnv = { ...process.env };
const nodeArgs: string[] = [];
if (loads.status !== 0) {
  const patched = join(scratch, "fuzzer-linux-x64.node");
  const shim = join(scratch, "glibc236-shim.so");
  const run = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { stdio: "inherit" });
    if (r.status !== 0) throw new Error(`${cmd} failed`);
  };
  run("python3", [join(ROOT, "fuzz/glibc236-patch.py"), addon, patched]);
  run("g++", ["-shared", "-fPIC", "-O2", "-o", shim, join(ROOT, "fuzz/glibc236-shim.cpp")]);
  const redirect = join(scratch, "redirect.cjs");
  writeFileSync(
    redirect,
    `const dlopen = process.dlopen;
process.dlopen = (module, file, ...rest) =>
  dlopen(module, file === ${JSON.stringify(addon)} ? ${JSON.stringify(patched)} : file, ...rest);\n`,
  );
  env.LD_PRELOAD = shim;
  nodeArgs.push("--require", redirect);
  console.log("fuzz: stock libFuzzer addon does not load on this libc; using the patched copy");
}

const bundle = join(scratch, "entry.cjs");
await build({
  entryPoints: [join(ROOT, "src/tools/fuzz/jazzer-entry.ts")],
  bundle: true,
  platform: "node",
  format: "cjs",
  outfile: bundle,
  logLevel: "error",
  define: { "import.meta.url": JSON.stringify(new URL("targets.ts", import.meta.url).href) },
});

const cli = require.resolve("@jazzer.js/core/dist/cli.js");
const crashes = join(ROOT, "fuzz/crashes");
mkdirSync(crashes, { recursive: true });
const results: { name: string; executions: number; seconds: number; ok: boolean }[] = [];
for (const name of names) {
  const discovered = join(scratch, `corpus-${name}`);
  mkdirSync(discovered);
  const r = spawnSync(
    process.execPath,
    [
      ...nodeArgs,
      cli,
      bundle,
      discovered,
      join(ROOT, "fuzz/corpus", name),
      "--sync",
      "--",
      `-max_total_time=${seconds}`,
      `-artifact_prefix=${join(crashes, `${name}-`)}`,
      "-rss_limit_mb=1024",
    ],
    { env: { ...env, FUZZ_TARGET: name }, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
  const log = `${r.stdout}${r.stderr}`;
  const done = /Done (\d+) runs in (\d+) second/.exec(log);
  const ok = r.status === 0 && done !== null;
  if (!ok) console.error(log.split("\n").slice(-40).join("\n"));
  results.push({ name, executions: done ? Number(done[1]) : 0, seconds: done ? Number(done[2]) : 0, ok });
  console.log(
    `fuzz ${name}: ${done ? `${done[1]} executions in ${done[2]} s` : "no result"}${ok ? "" : " FAILED"}`,
  );
}
console.table(results);
if (results.some((r) => !r.ok)) process.exit(1);
