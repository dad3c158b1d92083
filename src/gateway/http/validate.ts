/** Turns a zod failure into InvalidBodyError naming the first bad field, never its value. */
import type { z } from "zod";
import { InvalidBodyError } from "../errors.js";
import { INVALID_JSON } from "./raw-json.js";

/** The first problem of a failed parse as `<field path> <reason>`, without the value. */
export function describeIssue(error: z.ZodError, prefix = ""): string {
  const issue = error.issues[0]!;
  const path = [prefix, ...issue.path.map(String)].filter((p) => p).join(".") || "body";
  const reason =
    issue.code === "invalid_type"
      ? "is missing or has the wrong type"
      : issue.code === "unrecognized_keys"
        ? "has members that are not allowed"
        : issue.message;
  return `${path} ${reason}`;
}

export function parseBody<T extends z.ZodType>(schema: T, input: unknown, prefix = ""): z.infer<T> {
  if (input === INVALID_JSON) throw new InvalidBodyError("body is not valid JSON");
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw new InvalidBodyError(describeIssue(result.error, prefix));
}
