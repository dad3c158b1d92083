/**
 * JSON as the partners write and read it. Both write ids as JSON numbers (Knot's `task_id`, Dotva's
 * `workspace_id` and `card_id`), and nothing in their documents bounds them to 2^53, so the simulators
 * can send a `bigint` id as an exact JSON number and read a number back as the text it was written as.
 */

interface JsonWithRaw {
  rawJSON(text: string): unknown;
}

/** JSON.stringify, with `bigint` values written as exact JSON numbers. */
export function partnerJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === "bigint" ? (JSON as unknown as JsonWithRaw).rawJSON(v.toString()) : v,
  );
}

/** A JSON number kept as the text it was written with (`9007199254740993` stays exact). */
export class JsonNumberText {
  constructor(readonly text: string) {}
}

/** JSON.parse, with every number under one of `names` (at any depth) returned as JsonNumberText. */
export function parseKeepingNumbers(text: string, names: ReadonlySet<string>): unknown {
  return JSON.parse(text, (key, value: unknown, context?: { source?: string }) =>
    typeof value === "number" && names.has(key) && context?.source !== undefined
      ? new JsonNumberText(context.source)
      : value,
  );
}
