/** Comparisons of secrets that take the same time whatever the inputs share. */
import { createHash, timingSafeEqual } from "node:crypto";

/** Equal strings; hashing first makes the compared lengths equal so length leaks nothing either. */
export function secretEquals(presented: string, expected: string): boolean {
  const a = createHash("sha256").update(presented, "utf8").digest();
  const b = createHash("sha256").update(expected, "utf8").digest();
  return timingSafeEqual(a, b);
}

export function bytesEqual(presented: Buffer, expected: Buffer): boolean {
  if (presented.length !== expected.length) return false;
  return timingSafeEqual(presented, expected);
}
