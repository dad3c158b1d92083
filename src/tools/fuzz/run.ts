/**
 * `npm run fuzz`: each target of src/tools/fuzz/targets.ts under Jazzer.js (libFuzzer with JS coverage
 * feedback) on its corpus in fuzz/corpus/<target>/, for FUZZ_RUNS executions (default 1 000 000, the
 * goal docs/assurance.md reports against) capped at FUZZ_MAX_SECONDS per target (default 900), so the
 * run is defined by work done rather than by a machine-dependent number of seconds. FUZZ_TARGETS=a,b
 * runs a subset. New coverage-increasing inputs go to a scratch directory (not the committed corpus);
 * a crashing input is written to fuzz/crashes/ and the run fails: copy it into fuzz/corpus/<target>/ to
 * make it a regression case (src/tools/fuzz/regression.test.ts runs the corpus in the test command).
 *
 * Each target's executions, seconds and verdict, with the date and commit, are merged as it ends into
 * fuzz/results.json (committed; src/tools/docs/gen-assurance.ts reads it): "goal met" at 1 000 000
 * executions or more, "below goal" when FUZZ_MAX_SECONDS stopped it first, "failed" on a crash or a run
 * that reported nothing. A run with FUZZ_RUNS below the goal (a quick try) does not write the file.
 *
 * libFuzzer's RSS limit is 2 GB rather than 1: the instrumented bundle alone starts near 500 MB and grows
 * by a few hundred MB over a million executions while V8 collects lazily.
 *
 * On glibc older than 2.38 (Debian 12) the prebuilt libFuzzer addon does not load; a patched copy and a
 * three-function shim are built in a scratch directory (fuzz/glibc236-patch.py explains).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { build } from "esbuild";
import {
  FUZZ_RESULTS,
  FUZZ_RUNS_GOAL,
  type FuzzResults,
  fuzzVerdict,
  writeCommittedJson,
} from "./results.js";
import { TARGETS, type TargetName } from "./targets.js";

const ROOT = new URL("../../../", import.meta.url).pathname;
const require = createRequire(import.meta.url);
function positiveInteger(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
}
const runs = positiveInteger("FUZZ_RUNS", FUZZ_RUNS_GOAL);
const maxSeconds = positiveInteger("FUZZ_MAX_SECONDS", 900);
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
const results: FuzzResults["targets"] = {};
const commit = spawnSync("git", ["rev-parse", "HEAD"], { cwd: ROOT, encoding: "utf8" }).stdout.trim();

/** Merges one target's result into fuzz/results.json as soon as it is known, so a long run keeps what it did. */
function save(name: string, result: FuzzResults["targets"][string]): void {
  const previous: FuzzResults = existsSync(FUZZ_RESULTS)
    ? (JSON.parse(readFileSync(FUZZ_RESULTS, "utf8")) as FuzzResults)
    : { goal: FUZZ_RUNS_GOAL, targets: {} };
  const targets = Object.fromEntries(
    Object.entries({ ...previous.targets, [name]: result }).sort(([a], [b]) => a.localeCompare(b)),
  );
  writeCommittedJson(FUZZ_RESULTS, { goal: FUZZ_RUNS_GOAL, targets });
}

for (const name of names) {
  const discovered = join(scratch, `corpus-${name}`);
  mkdirSync(discovered);
  const started = Date.now();
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
      `-runs=${runs}`,
      `-max_total_time=${maxSeconds}`,
      `-artifact_prefix=${join(crashes, `${name}-`)}`,
      "-rss_limit_mb=2048",
    ],
    { env: { ...env, FUZZ_TARGET: name }, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
  const log = `${r.stdout}${r.stderr}`;
  // libFuzzer's closing "Done N runs in S second(s)" can be lost when Jazzer.js exits while libFuzzer still
  // prints its recommended dictionary; the "#N DONE" line before it says the same run count.
  const done = /Done (\d+) runs in (\d+) second/.exec(log);
  const loopDone = /^#(\d+)\tDONE /m.exec(log);
  const executions = Number(done?.[1] ?? loopDone?.[1] ?? 0);
  const seconds = done ? Number(done[2]) : Math.round((Date.now() - started) / 1000);
  const verdict = fuzzVerdict(r.status === 0 && (done ?? loopDone) !== null, executions);
  if (verdict === "failed") {
    console.error(log.split("\n").slice(-40).join("\n"));
    console.error(
      `fuzz ${name}: exit status ${r.status}, signal ${r.signal}${r.error ? `, ${r.error.message}` : ""}`,
    );
  }
  results[name] = { executions, seconds, verdict, date: new Date().toISOString().slice(0, 10), commit };
  if (runs >= FUZZ_RUNS_GOAL) save(name, results[name]);
  console.log(`fuzz ${name}: ${executions} executions in ${seconds} s: ${verdict}`);
}
rmSync(scratch, { recursive: true, force: true });
console.table(results);
console.log(
  runs >= FUZZ_RUNS_GOAL
    ? `fuzz: results in ${FUZZ_RESULTS}; regenerate docs/assurance.md with npm run docs:assurance`
    : `fuzz: FUZZ_RUNS below the goal of ${FUZZ_RUNS_GOAL}; fuzz/results.json left as it was`,
);
if (Object.values(results).some((r) => r.verdict === "failed")) process.exit(1);
