/** Jazzer.js entry point: the target named by FUZZ_TARGET (src/tools/fuzz/run.ts bundles this file per run). */
import { TARGETS, type TargetName } from "./targets.js";

const name = process.env.FUZZ_TARGET as TargetName;
const target = TARGETS[name];
if (target === undefined) throw new Error(`FUZZ_TARGET must be one of ${Object.keys(TARGETS).join(", ")}`);

export function fuzz(data: Buffer): void {
  target(data);
}
