/**
 * Summarises `node --cpu-prof` output (one .cpuprofile per thread: CPU.<date>.<time>.<pid>.<thread>.<seq>)
 * into the functions with the most self time, per thread and for all threads of a process together.
 *
 *   tsx src/tools/bench/profile-top.ts DIR [--top 15]
 *
 * Self time is the sum of the sampling intervals in which the function was on top of the stack; the
 * percentages are of the thread's (or process's) sampled time, idle excluded.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: "string", default: "15" } },
});
const dir = positionals[0];
if (!dir) throw new Error("usage: tsx src/tools/bench/profile-top.ts DIR [--top N]");
const TOP = Number(values.top);

const label = (frame: ProfileNode["callFrame"]) => {
  const file = frame.url.replace(/^file:\/\//, "").replace(/^.*\/node_modules\//, "~/");
  const short = file.replace(/^.*\/(src|bench)\//, "$1/");
  const where = short ? ` ${short}:${frame.lineNumber + 1}` : "";
  return `${frame.functionName || "(anonymous)"}${where}`;
};

function selfTimes(profile: Profile): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const times = new Map<string, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!)!;
    const name = label(node.callFrame);
    times.set(name, (times.get(name) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  return times;
}

/**
 * V8 samples by wall clock: besides (idle), a worker blocked in piscina's Atomics.wait loop shows as JS
 * time though it uses no CPU, so it is left out like idle.
 */
const BLOCKED = /^(\(idle\)|atomicsWaitLoop)( |$)/;

function print(title: string, all: Map<string, number>) {
  const times = new Map([...all].filter(([name]) => !BLOCKED.test(name)));
  const total = [...times.values()].reduce((a, b) => a + b, 0);
  console.log(`\n## ${title}: ${(total / 1000).toFixed(0)} ms sampled (idle and Atomics.wait excluded)`);
  for (const [name, us] of [...times.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
    console.log(
      `${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${name}`,
    );
  }
}

const files = readdirSync(dir)
  .filter((f) => f.endsWith(".cpuprofile"))
  .sort();
const all = new Map<string, number>();
const workers = new Map<string, number>();
for (const file of files) {
  const times = selfTimes(JSON.parse(readFileSync(join(dir, file), "utf8")) as Profile);
  const thread = file.split(".")[4];
  print(`${file} (thread ${thread === "0" ? "0, main" : `${thread}, worker`})`, new Map(times));
  for (const [name, us] of times) {
    all.set(name, (all.get(name) ?? 0) + us);
    if (thread !== "0") workers.set(name, (workers.get(name) ?? 0) + us);
  }
}
if (workers.size > 0) print("all worker threads", workers);
print("all threads", all);
