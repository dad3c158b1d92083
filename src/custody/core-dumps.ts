/**
 * A core file of custody would hold card data and private keys. Node cannot lower RLIMIT_CORE or mark
 * itself non-dumpable (no setrlimit, no prctl), so custody checks the limit it was started with: in
 * production it refuses to start unless the soft limit is 0 (a process may raise its soft limit only up
 * to the hard one, but that takes code running inside custody, which has then lost anyway); in
 * development it warns.
 */
import { readFileSync } from "node:fs";

/** The soft "Max core file size" of /proc/<pid>/limits: bytes, or Infinity for unlimited. */
export function softCoreLimit(limits: string): number {
  const m = /^Max core file size\s+(\S+)\s+\S+/m.exec(limits);
  if (!m) throw new Error("no 'Max core file size' line");
  if (m[1] === "unlimited") return Number.POSITIVE_INFINITY;
  const bytes = Number(m[1]);
  if (!Number.isInteger(bytes) || bytes < 0) throw new Error("unreadable 'Max core file size' value");
  return bytes;
}

const HOW =
  "start it with core dumps off: docker run --ulimit core=0 (compose: ulimits core 0), LimitCORE=0 in a systemd unit, or ulimit -c 0 in the shell that starts it";

/** Undefined when core dumps are off; otherwise what is wrong and what to do. */
export function coreDumpProblem(
  readLimits: () => string = () => readFileSync("/proc/self/limits", "utf8"),
): string | undefined {
  let soft: number;
  try {
    soft = softCoreLimit(readLimits());
  } catch {
    return `cannot read RLIMIT_CORE from /proc/self/limits, so cannot tell whether a crash would write card data to a core file; ${HOW}`;
  }
  if (soft === 0) return undefined;
  const shown = soft === Number.POSITIVE_INFINITY ? "unlimited" : `${soft} bytes`;
  return `core dumps are enabled (RLIMIT_CORE soft limit ${shown}): a core file would hold card data and private keys; ${HOW}`;
}
