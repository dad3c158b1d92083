/**
 * Custody's memory bounds in deploy/kubernetes/custody.yaml (NODE_OPTIONS, MALLOC_ARENA_MAX), checked
 * with the Node that runs the service: the options are accepted where they are set, every isolate (the
 * main thread and each re-encryption worker) takes them, and the heaps they allow, together, still leave
 * room under the container's memory limit for what lives outside V8. A heap that reaches its bound then
 * fails inside V8 ("heap out of memory", logged) before the kernel kills the container without a word.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { MEMORY_ENV, manifestMemoryEnv, manifestMemoryLimitBytes } from "../load/manifest-limits.js";
import { MIB } from "../load/verdicts.js";
import { REPO } from "./dockerfile.js";

/**
 * What custody needs outside the V8 heaps: Node itself, code, OpenSSL and TLS sessions, gRPC's buffers,
 * the threads' stacks and malloc arenas. Measured RSS minus committed heaps under the load test is about
 * 100 MiB (BENCHMARKS.md, load).
 */
const NATIVE_ALLOWANCE_BYTES = 128 * MIB;

/** heap_size_limit of the main isolate and of one worker started as the pool starts them. */
function heapLimits(env: Record<string, string>): { main: number; worker: number } {
  const script = `
    const { Worker } = require("node:worker_threads");
    const { getHeapStatistics } = require("node:v8");
    const w = new Worker(
      "require('node:worker_threads').parentPort.postMessage(require('node:v8').getHeapStatistics().heap_size_limit)",
      { eval: true, execArgv: process.execArgv },
    );
    w.once("message", (worker) => {
      console.log(JSON.stringify({ main: getHeapStatistics().heap_size_limit, worker }));
      w.terminate();
    });`;
  const out = execFileSync(process.execPath, ["-e", script], {
    env: { PATH: process.env.PATH ?? "", ...env },
    encoding: "utf8",
    timeout: 20_000,
  });
  return JSON.parse(out) as { main: number; worker: number };
}

describe("custody's memory bounds (deploy/kubernetes/custody.yaml)", () => {
  const env = manifestMemoryEnv("custody");
  const limit = manifestMemoryLimitBytes("custody");
  const container = parseAllDocuments(readFileSync(join(REPO, "deploy/kubernetes/custody.yaml"), "utf8"))
    .map((d) => d.toJS())
    .find((d) => d?.kind === "Deployment")
    .spec.template.spec.containers.find((c: { name: string }) => c.name === "custody");
  const workers = Number(
    container.env.find((e: { name: string }) => e.name === "CUSTODY_WORKERS")?.value ?? Number.NaN,
  );

  it("sets both heap bounds and the arena count", () => {
    expect(env.NODE_OPTIONS).toMatch(/(^| )--max-old-space-size=\d+( |$)/);
    expect(env.NODE_OPTIONS).toMatch(/(^| )--max-semi-space-size=\d+( |$)/);
    expect(env.MALLOC_ARENA_MAX).toMatch(/^[1-9]\d*$/);
    // A pool sized to the node's cores would multiply the heaps by a number the manifest does not know.
    expect(Number.isInteger(workers) && workers > 0).toBe(true);
  });

  it("applies to the main isolate and to every worker, and the heaps fit the limit with native room", () => {
    const { main, worker } = heapLimits(env);
    // Without the bounds, V8 sizes from this machine; with them, both isolates take the same smaller limit.
    const unbounded = heapLimits({});
    expect(main).toBe(worker);
    expect(main).toBeLessThan(unbounded.main);
    expect((1 + workers) * main + NATIVE_ALLOWANCE_BYTES).toBeLessThanOrEqual(limit);
  });

  it("compose runs custody with the same bounds", () => {
    const compose = parse(readFileSync(join(REPO, "deploy/compose.yaml"), "utf8"), { merge: true });
    for (const [name, service] of Object.entries<{ environment?: Record<string, string> }>(
      compose.services,
    )) {
      if (!name.startsWith("custody-")) continue;
      for (const variable of MEMORY_ENV) expect(service.environment?.[variable], name).toBe(env[variable]);
    }
  });
});
