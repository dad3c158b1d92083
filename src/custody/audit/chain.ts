/**
 * The audit chain's line format, shared by the writer (sink.ts) and the verifier (verify.ts).
 *
 * One line is one JSON object, written in this member order and ended by "\n":
 *
 *   {"seq":N,"ts":"<ISO time>","event":"<name>",<event fields>,"prev":"<hex>","hash":"<hex>"}
 *
 * `hash` is SHA-256 (hex) over the line's own bytes up to `"prev":"<hex>"` followed by `}`, i.e. the
 * line as written with the `,"hash":"..."` member cut out. The hashed form is the written text itself,
 * not a re-serialisation, so writer and verifier cannot disagree about key order, number formatting or
 * escaping: the verifier hashes exactly what is on disk. `prev` is the previous line's `hash` (64 zeros
 * on the first line of a file), and `seq` counts up by one from 0, so a line edited, removed, inserted or
 * moved breaks the hash, the link or the count at that line.
 */
import { hash } from "node:crypto";

export const GENESIS = "0".repeat(64);

/** Who writes a chain file: the service or the key CLI. Each file has exactly one (first line). */
export type ChainWriter = "custody" | "custody-keys";

const HASH_SUFFIX = /,"hash":"([0-9a-f]{64})"\}$/;
const HEX64 = /^[0-9a-f]{64}$/;

export interface ChainLine {
  /** The line including its final "\n". */
  readonly text: string;
  readonly hash: string;
}

/**
 * Builds one line. `fields` is the event's members as JSON object text (`JSON.stringify` of a flat
 * object whose names are none of seq, ts, event, prev, hash); "{}" for none.
 */
export function chainLine(seq: number, ts: string, event: string, fields: string, prev: string): ChainLine {
  const members = fields.length > 2 ? `,${fields.slice(1, -1)}` : "";
  const body = `{"seq":${seq},"ts":"${ts}","event":"${event}"${members},"prev":"${prev}"}`;
  const digest = hash("sha256", body);
  return { text: `${body.slice(0, -1)},"hash":"${digest}"}\n`, hash: digest };
}

export type LineCheck =
  | {
      readonly ok: true;
      readonly seq: number;
      readonly prev: string;
      readonly hash: string;
      readonly record: Record<string, unknown>;
    }
  | { readonly ok: false; readonly why: "not JSON" | "not a chain line" | "hash mismatch" };

/** Checks one line (without its "\n") on its own: JSON, the chain members, and its own hash. */
export function checkLine(text: string): LineCheck {
  let record: unknown;
  try {
    record = JSON.parse(text);
  } catch {
    return { ok: false, why: "not JSON" };
  }
  const suffix = HASH_SUFFIX.exec(text);
  if (
    suffix === null ||
    typeof record !== "object" ||
    record === null ||
    Array.isArray(record) ||
    !text.startsWith('{"seq":')
  ) {
    return { ok: false, why: "not a chain line" };
  }
  const { seq, prev } = record as { seq?: unknown; prev?: unknown };
  if (!Number.isSafeInteger(seq) || (seq as number) < 0 || typeof prev !== "string" || !HEX64.test(prev)) {
    return { ok: false, why: "not a chain line" };
  }
  const stated = suffix[1]!;
  if (hash("sha256", `${text.slice(0, suffix.index)}}`) !== stated)
    return { ok: false, why: "hash mismatch" };
  return { ok: true, seq: seq as number, prev, hash: stated, record: record as Record<string, unknown> };
}
