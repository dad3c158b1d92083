/**
 * CPU time of another process, all its threads included (Node's worker threads, libuv's pool, a
 * PKCS#11 library's threads): utime + stime from /proc/<pid>/stat, in microseconds. The benchmarks
 * read it before and after a measured window to get a server's CPU per call, separate from the load
 * generator's.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  ticksPerSecond ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
  if (!Number.isFinite(ticksPerSecond) || ticksPerSecond <= 0) throw new Error("getconf CLK_TCK failed");
  return ticksPerSecond;
}

export function processCpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Field 2 (comm) is in parentheses and may hold spaces: count fields from after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 (utime) and 15 (stime) of proc(5); fields[0] here is field 3 (state).
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / clockTicks();
}

/**
 * The same per thread, summed by thread name (comm: "node" for the main thread, "V8 DefaultWorke" for
 * V8's GC and compiler helpers, "libuv-worker" for the pool, and so on). Threads that exited during the
 * window are missing, so this is a breakdown, not a total.
 */
export function threadCpuMicros(pid: number): Map<string, number> {
  const byName = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    } catch {
      continue; // the thread ended while we listed them
    }
    const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const micros = ((Number(fields[11]) + Number(fields[12])) * 1e6) / clockTicks();
    byName.set(name, (byName.get(name) ?? 0) + micros);
  }
  return byName;
}
