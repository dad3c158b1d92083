/**
 * The audit sink: one chain file (chain.ts), opened append-only (O_APPEND, mode 0600), one line per
 * event written with a single synchronous write() before the caller is answered. A line handed to the
 * kernel survives the process being killed (SIGKILL, OOM killer, crash) the moment after: the page cache
 * belongs to the kernel. It does not survive a power loss or a kernel crash unless `fsync` is on, which
 * adds an fdatasync() — a disk flush, from tens of microseconds on NVMe to milliseconds on network or
 * spinning disks — to every line, on the thread that answers calls.
 *
 * One writer per file: the chain needs the previous line's hash, which only the writer holding the file
 * knows. The service owns its file for its lifetime; the key CLI writes its own file, one short-lived
 * process at a time under a lock file (lockChainFile). The first line names the writer, and each refuses
 * the other's file.
 *
 * At open, the end of an existing file is checked: a line that was torn by a crash or power loss, or
 * lines that no longer verify, are not silently built upon. The sink writes a `chain_break` line naming
 * what it found and links it to the last line that does verify; `custody-keys audit verify` still reports
 * the bad line, so an operator looks at it.
 */
import { hash } from "node:crypto";
import {
  closeSync,
  constants,
  fchmodSync,
  fdatasyncSync,
  fstatSync,
  openSync,
  readFileSync,
  readSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { type ChainWriter, chainLine, checkLine, GENESIS } from "./chain.js";

/** Every kind of line either writer produces. */
export type AuditEvent =
  | "chain_start"
  | "chain_break"
  | "start"
  | "stop"
  | "reencrypt"
  | "tls_handshake_failed"
  | "tls_handshake_failures_suppressed"
  | "key_reload"
  | "caller_policy_reload"
  | "tls_reload"
  | "keytool";

/** The file cannot be used as an audit chain (opening, reading its end, someone else's chain). */
export class AuditFileError extends Error {
  override readonly name = "AuditFileError";
}

/** A line could not be written (disk full, I/O error); the next successful write records the gap. */
export class AuditWriteError extends Error {
  override readonly name = "AuditWriteError";
}

export interface AuditSinkOptions {
  readonly writer: ChainWriter;
  /** fdatasync after every line: survives power loss, costs a disk flush per line. */
  readonly fsync?: boolean;
  readonly clock?: () => Date;
}

/** How far back from the end the start-up check looks for the last line that verifies. */
const TAIL_WINDOW = 64 * 1024;
const FIRST_LINE_MAX = 4096;

interface Recovery {
  readonly reason: string;
  /** Bytes after the last line that verifies: a torn line, or lines that do not verify. */
  readonly skippedBytes: number;
  readonly skippedSha256?: string;
  readonly needsNewline: boolean;
}

export class AuditSink {
  private seq: number;
  private last: string;
  private size: number;
  private pendingBreak: Recovery | undefined;
  private closed = false;
  private readonly clock: () => Date;
  private readonly fsync: boolean;

  /** Open-time findings for the operator log: a loosened file mode that was tightened. */
  readonly warnings: readonly string[];
  /** What the start-up check found at the end of the file, when it was not a clean line. */
  readonly recovered: string | undefined;

  private constructor(
    readonly file: string,
    private readonly fd: number,
    opts: AuditSinkOptions,
    state: { seq: number; last: string; size: number; warnings: string[] },
    recovery: Recovery | undefined,
  ) {
    this.seq = state.seq;
    this.last = state.last;
    this.size = state.size;
    this.warnings = state.warnings;
    this.clock = opts.clock ?? (() => new Date());
    this.fsync = opts.fsync ?? false;
    this.pendingBreak = recovery;
    this.recovered = recovery?.reason;
  }

  /**
   * Opens (creating it, mode 0600) and checks the chain file, writing `chain_start` to a new file and
   * `chain_break` when the end of an existing one does not verify. Throws AuditFileError.
   */
  static open(file: string, opts: AuditSinkOptions): AuditSink {
    let fd: number;
    try {
      fd = openSync(file, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT, 0o600);
    } catch (err) {
      throw new AuditFileError(`cannot open ${file} for appending (${(err as NodeJS.ErrnoException).code})`);
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new AuditFileError(`${file} is not a regular file`);
      const warnings: string[] = [];
      if ((st.mode & 0o077) !== 0) {
        // Volumes mounted with a group (Kubernetes fsGroup) can widen the mode of existing files.
        fchmodSync(fd, 0o600);
        warnings.push(`${file} had mode ${(st.mode & 0o777).toString(8)}; set to 600`);
      }
      const found = inspect(fd, st.size, file, opts.writer);
      const sink = new AuditSink(file, fd, opts, { ...found.state, warnings }, found.recovery);
      if (st.size === 0) sink.append("chain_start", { writer: opts.writer });
      else if (found.recovery) sink.writeLines([]);
      return sink;
    } catch (err) {
      closeSync(fd);
      if (err instanceof AuditFileError) throw err;
      if (err instanceof AuditWriteError) throw new AuditFileError(`${file}: ${err.message}`);
      throw new AuditFileError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
  }

  /** The last line written: its seq and hash (the chain head an operator compares). */
  get head(): { readonly seq: number; readonly hash: string } {
    return { seq: this.seq, hash: this.last };
  }

  /**
   * Writes one line for `event` with `fields` (a flat object of non-secret values, serialised once) and
   * returns its seq. Throws AuditWriteError when the line did not reach the file.
   */
  append(event: AuditEvent, fields: object): number {
    this.writeLines([[event, JSON.stringify(fields)]]);
    return this.seq;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }

  /** One write() for a pending chain_break (if any) and the given lines; state moves only on success. */
  private writeLines(events: readonly (readonly [AuditEvent, string])[]): void {
    if (this.closed) throw new AuditWriteError("the audit file is closed");
    const ts = this.clock().toISOString();
    let seq = this.seq;
    let last = this.last;
    let text = "";
    const pending = this.pendingBreak;
    if (pending) {
      const line = chainLine(
        ++seq,
        ts,
        "chain_break",
        JSON.stringify({
          reason: pending.reason,
          skipped_bytes: pending.skippedBytes,
          ...(pending.skippedSha256 ? { skipped_sha256: pending.skippedSha256 } : {}),
        }),
        last,
      );
      text = `${pending.needsNewline ? "\n" : ""}${line.text}`;
      last = line.hash;
    }
    for (const [event, fields] of events) {
      const line = chainLine(++seq, ts, event, fields, last);
      text += line.text;
      last = line.hash;
    }
    const bytes = Buffer.from(text, "utf8");
    let written: number;
    try {
      written = writeSync(this.fd, bytes);
    } catch (err) {
      this.failed((err as NodeJS.ErrnoException).code ?? "error");
      throw new AuditWriteError(`write failed (${(err as NodeJS.ErrnoException).code})`);
    }
    if (written !== bytes.length) {
      this.failed("short write");
      throw new AuditWriteError("short write");
    }
    this.size += written;
    this.seq = seq;
    this.last = last;
    this.pendingBreak = undefined;
    if (this.fsync) {
      // The line is in the file either way; what failed is only the guarantee against power loss.
      try {
        fdatasyncSync(this.fd);
      } catch (err) {
        throw new AuditWriteError(`fdatasync failed (${(err as NodeJS.ErrnoException).code})`);
      }
    }
  }

  /** After a failed write: whatever part of it reached the file is skipped by the next chain_break. */
  private failed(code: string): void {
    const actual = fstatSync(this.fd).size;
    const partial = actual - this.size;
    const before = this.pendingBreak;
    this.pendingBreak = {
      reason: `write failed (${code})`,
      skippedBytes: (before?.skippedBytes ?? 0) + Math.max(partial, 0),
      needsNewline: (before?.needsNewline ?? false) || partial > 0,
    };
    this.size = actual;
  }
}

/** Reads the first line's writer and the end of the file: where the chain continues, and what is wrong. */
function inspect(
  fd: number,
  size: number,
  file: string,
  writer: ChainWriter,
): { state: { seq: number; last: string; size: number }; recovery?: Recovery } {
  const empty = { state: { seq: -1, last: GENESIS, size } };
  if (size === 0) return empty;

  const head = Buffer.alloc(Math.min(size, FIRST_LINE_MAX));
  readSync(fd, head, 0, head.length, 0);
  const firstEnd = head.indexOf(0x0a);
  if (firstEnd !== -1) {
    const first = checkLine(head.subarray(0, firstEnd).toString("utf8"));
    const stated = first.ok ? first.record.writer : undefined;
    if (first.ok && first.record.event === "chain_start" && stated !== writer) {
      throw new AuditFileError(
        `${file} is the ${String(stated)} chain; give each writer its own file (one writer per chain)`,
      );
    }
  }

  const length = Math.min(size, TAIL_WINDOW);
  const start = size - length;
  const tail = Buffer.alloc(length);
  readSync(fd, tail, 0, length, start);
  // Complete lines in the window, as [start, end) offsets into `tail` without the "\n". A window that
  // does not begin the file may begin mid-line: that piece is dropped.
  const lines: [number, number][] = [];
  let from = start === 0 ? 0 : tail.indexOf(0x0a) + 1;
  if (start !== 0 && from === 0) from = length;
  for (let nl = tail.indexOf(0x0a, from); nl !== -1; nl = tail.indexOf(0x0a, from)) {
    lines.push([from, nl]);
    from = nl + 1;
  }
  const endsWithNewline = tail[length - 1] === 0x0a;
  for (let i = lines.length - 1; i >= 0; i--) {
    const [a, b] = lines[i]!;
    const check = checkLine(tail.subarray(a, b).toString("utf8"));
    if (!check.ok) continue;
    const skipped = length - (b + 1);
    const state = { seq: check.seq, last: check.hash, size };
    if (skipped === 0) return { state };
    const badLines = lines.length - 1 - i;
    return {
      state,
      recovery: {
        reason:
          badLines === 0
            ? "torn last line (a write that did not finish)"
            : `${badLines} line(s) at the end do not verify${endsWithNewline ? "" : ", the last one torn"}`,
        skippedBytes: skipped,
        skippedSha256: hash("sha256", tail.subarray(b + 1)),
        needsNewline: !endsWithNewline,
      },
    };
  }
  return {
    state: { seq: -1, last: GENESIS, size },
    recovery: {
      reason: `no line that verifies in the last ${length} bytes`,
      skippedBytes: length,
      skippedSha256: hash("sha256", tail),
      needsNewline: !endsWithNewline,
    },
  };
}

/**
 * An exclusive lock on a chain file for a short-lived writer (the key CLI): `<file>.lock`, created with
 * O_EXCL and holding the owner's pid. A lock whose pid no longer runs (a CLI killed mid-action) is taken
 * over. Waits up to `waitMs` for a live holder. Returns the release function.
 */
export async function lockChainFile(file: string, waitMs = 5000): Promise<() => void> {
  const lock = `${file}.lock`;
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const fd = openSync(lock, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => unlinkSync(lock);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new AuditFileError(`cannot create ${lock} (${(err as NodeJS.ErrnoException).code})`);
      }
    }
    const holder = lockHolder(lock);
    if (holder !== undefined && !running(holder)) {
      unlinkSync(lock);
      continue;
    }
    if (Date.now() > deadline) {
      throw new AuditFileError(
        `${lock} is held by process ${holder ?? "(unknown)"}; try again when it is done`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function lockHolder(lock: string): number | undefined {
  try {
    const pid = Number(readFileSync(lock, "utf8"));
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
