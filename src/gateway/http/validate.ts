/** A zod failure as a message naming the first bad field, never its value. */
import type { z } from "zod";

/** The first problem of a failed parse as `<field path> <reason>`, without the value. */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0]!;
  const path = issue.path.map(String).join(".") || "body";
  const reason =
    issue.code === "invalid_type"
      ? "is missing or has the wrong type"
      : issue.code === "unrecognized_keys"
        ? "has members that are not allowed"
        : issue.message;
  return `${path} ${reason}`;
}
