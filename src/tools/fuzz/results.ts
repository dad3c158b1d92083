/**
 * fuzz/results.json: what the last `npm run fuzz` (src/tools/fuzz/run.ts) did per target, committed so
 * docs/assurance.md (src/tools/docs/gen-assurance.ts) can report it without fuzzing in the test command.
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const FUZZ_RESULTS = fileURLToPath(new URL("../../../fuzz/results.json", import.meta.url));

/** Executions per target that `npm run fuzz` aims for (libFuzzer's -runs). */
export const FUZZ_RUNS_GOAL = 1_000_000;

/** "below goal": no crash, but fewer executions than the goal (FUZZ_MAX_SECONDS reached first, or a smaller FUZZ_RUNS). */
export type FuzzVerdict = "goal met" | "below goal" | "failed";

export interface FuzzTargetResult {
  executions: number;
  /** Seconds libFuzzer reports it ran (the run's wall time when that closing line was lost). */
  seconds: number;
  verdict: FuzzVerdict;
  /** UTC day of the run, YYYY-MM-DD. */
  date: string;
  /** HEAD when the run started. */
  commit: string;
}

export interface FuzzResults {
  goal: number;
  targets: Record<string, FuzzTargetResult>;
}

export function fuzzVerdict(finished: boolean, executions: number): FuzzVerdict {
  if (!finished) return "failed";
  return executions >= FUZZ_RUNS_GOAL ? "goal met" : "below goal";
}

/**
 * Writes a committed JSON file as the lint (biome, in `npm test`) formats it, so regenerating it never
 * fails the lint.
 */
export function writeCommittedJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
  const biome = fileURLToPath(new URL("../../../node_modules/.bin/biome", import.meta.url));
  const r = spawnSync(biome, ["format", "--write", path], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`biome format ${path} failed: ${r.stderr}`);
}
