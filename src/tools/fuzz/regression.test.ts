/**
 * Regression mode of the fuzz targets (src/tools/fuzz/targets.ts): every saved corpus file (seeds, plus
 * inputs Jazzer.js kept for new coverage and any crash turned into a case) must satisfy its target's
 * property, then a short burst of random mutations of the corpus, bounded in time per target.
 */
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { TARGETS, type TargetName } from "./targets.js";

const CORPUS = new URL("../../../fuzz/corpus/", import.meta.url).pathname;
const MUTATION_MS = 300;

function corpus(target: string): Buffer[] {
  const dir = join(CORPUS, target);
  return readdirSync(dir).map((f) => readFileSync(join(dir, f)));
}

function mutate(seed: Buffer): Buffer {
  const out = Buffer.from(seed);
  const [op = 0, at = 0, value = 0] = randomBytes(3);
  const position = out.length === 0 ? 0 : (at * out.length) >> 8;
  if (op % 3 === 0 && out.length > 0) out[position] = value;
  if (op % 3 === 1)
    return Buffer.concat([out.subarray(0, position), Buffer.from([value]), out.subarray(position)]);
  if (op % 3 === 2) return Buffer.concat([out.subarray(0, position), out.subarray(position + 1)]);
  return out;
}

describe("fuzz targets over the saved corpus", () => {
  for (const [name, check] of Object.entries(TARGETS) as [TargetName, (data: Buffer) => void][]) {
    it(`${name}: every corpus input holds the property, then ${MUTATION_MS} ms of mutations`, () => {
      const inputs = corpus(name);
      expect(inputs.length).toBeGreaterThan(0);
      for (const input of inputs) check(input);
      const until = Date.now() + MUTATION_MS;
      let runs = 0;
      while (Date.now() < until) {
        let input = inputs[runs % inputs.length]!;
        for (let i = 0; i < 1 + (runs % 4); i++) input = mutate(input);
        check(input);
        runs++;
      }
      expect(runs).toBeGreaterThan(0);
    });
  }
});
