/**
 * Walks a chain file from its first line and stops at the first line that is not what the writer wrote:
 * torn (no final newline), not JSON, not a chain line, its hash does not match its text, its `seq` is not
 * the previous one plus one, or its `prev` is not the previous line's hash. `custody-keys audit verify`
 * prints the result.
 *
 * What it proves: no line before the head was edited, removed, inserted or reordered, unless whoever did
 * it also rewrote every later line. A plain hash chain cannot tell a rewritten tail (or a cut-off tail)
 * from the original; comparing the head hash with one kept elsewhere can, which is why custody writes
 * the head to the operator log at start, periodically and at shutdown (docs/custody.md "Audit chain").
 */
import { type ChainWriter, checkLine, GENESIS } from "./chain.js";
import { type RawLine, readLines } from "./lines.js";

export type ChainProblem =
  | "torn line"
  | "not JSON"
  | "not a chain line"
  | "hash mismatch"
  | "seq gap"
  | "broken link";

export type ChainVerdict =
  | {
      readonly ok: true;
      readonly lines: number;
      readonly firstSeq?: number;
      readonly lastSeq?: number;
      /** The last line's hash: compare it with the head custody logged. GENESIS for an empty file. */
      readonly head: string;
      readonly writer?: ChainWriter;
    }
  | {
      readonly ok: false;
      /** 1-based line number of the first bad line. */
      readonly line: number;
      readonly problem: ChainProblem;
      readonly detail: string;
    };

/** How far past a bad line to look for the chain_break a writer recorded about it. */
const BREAK_LOOKAHEAD = 100;

/** When a writer found the bad line at start-up, its chain_break follows: say so. */
function breakAfter(rest: Iterator<RawLine>): string {
  for (let i = 0; i < BREAK_LOOKAHEAD; i++) {
    const next = rest.next();
    if (next.done) return "";
    const check = checkLine(next.value.text);
    if (check.ok && check.record.event === "chain_break") {
      return ` (custody recorded a chain_break at line ${next.value.number}: ${String(check.record.reason)})`;
    }
  }
  return "";
}

export function verifyChainFile(file: string): ChainVerdict {
  let prevHash = GENESIS;
  let prevSeq = -1;
  let firstSeq: number | undefined;
  let writer: ChainWriter | undefined;
  let lines = 0;
  const reader = readLines(file);
  for (const line of reader) {
    const bad = (problem: ChainProblem, detail: string): ChainVerdict => ({
      ok: false,
      line: line.number,
      problem,
      detail: `${detail}${breakAfter(reader)}`,
    });
    if (!line.terminated)
      return bad("torn line", `${Buffer.byteLength(line.text)} bytes with no final newline`);
    const check = checkLine(line.text);
    if (!check.ok) {
      const detail = {
        "not JSON": "the line does not parse as JSON",
        "not a chain line": "no seq, prev or hash member where the writer puts them",
        "hash mismatch":
          "the line's text does not hash to its hash member: it was changed after it was written",
      }[check.why];
      return bad(check.why, detail);
    }
    if (check.seq !== prevSeq + 1) return bad("seq gap", `seq ${check.seq} follows seq ${prevSeq}`);
    if (check.prev !== prevHash) {
      return bad("broken link", `prev is not the hash of line ${line.number - 1 || "(none: first line)"}`);
    }
    if (lines === 0) {
      firstSeq = check.seq;
      const stated = check.record.writer;
      if (check.record.event === "chain_start" && (stated === "custody" || stated === "custody-keys")) {
        writer = stated;
      }
    }
    prevSeq = check.seq;
    prevHash = check.hash;
    lines++;
  }
  return {
    ok: true,
    lines,
    ...(firstSeq !== undefined ? { firstSeq, lastSeq: prevSeq } : {}),
    head: prevHash,
    ...(writer !== undefined ? { writer } : {}),
  };
}
