/** Turns a zod failure into InvalidBodyError naming the first bad field, never its value. */
import type { z } from "zod";
import { InvalidBodyError } from "../errors.js";

export function parseBody<T extends z.ZodType>(schema: T, input: unknown, prefix = ""): z.infer<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = [prefix, ...issue.path.map(String)].filter((p) => p).join(".") || "body";
  const reason =
    issue.code === "invalid_type"
      ? "is missing or has the wrong type"
      : issue.code === "unrecognized_keys"
        ? "has members that are not allowed"
        : issue.message;
  throw new InvalidBodyError(`${path} ${reason}`);
}
