/**
 * Reading a chain file line by line without holding it in memory: audit files grow by a few hundred
 * bytes per call, so a year of them does not fit a string. Each line comes with whether a "\n" ended it
 * (a line without one is torn: the write that made it did not finish).
 */
import { closeSync, openSync, readSync } from "node:fs";

export interface RawLine {
  /** 1-based. */
  readonly number: number;
  readonly text: string;
  readonly terminated: boolean;
}

const CHUNK = 1024 * 1024;

export function* readLines(file: string): Generator<RawLine> {
  const fd = openSync(file, "r");
  try {
    const chunk = Buffer.allocUnsafe(CHUNK);
    let carry: Buffer[] = [];
    let number = 0;
    for (;;) {
      const n = readSync(fd, chunk, 0, CHUNK, null);
      if (n === 0) break;
      let start = 0;
      for (let nl = chunk.indexOf(0x0a, 0); nl !== -1 && nl < n; nl = chunk.indexOf(0x0a, start)) {
        const piece = chunk.subarray(start, nl);
        const text =
          carry.length > 0 ? Buffer.concat([...carry, piece]).toString("utf8") : piece.toString("utf8");
        carry = [];
        yield { number: ++number, text, terminated: true };
        start = nl + 1;
      }
      if (start < n) carry.push(Buffer.from(chunk.subarray(start, n)));
    }
    if (carry.length > 0)
      yield { number: ++number, text: Buffer.concat(carry).toString("utf8"), terminated: false };
  } finally {
    closeSync(fd);
  }
}
