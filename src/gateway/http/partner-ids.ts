/**
 * Ids partners send as JSON numbers, kept as exact decimal strings (raw-json.ts hands integers beyond
 * 2^53 over as BigInt). Tolerant reader: an id sent as a string is accepted too, because a partner
 * switching the JSON type of an id must not stop card delivery.
 */
import { z } from "zod";

const exactInteger = z.union([
  z.number().int().nonnegative().refine(Number.isSafeInteger, "must be an integer written exactly"),
  z.bigint().nonnegative(),
]);

/** A partner id: a non-negative integer (kept to the digit) or an identifier string. */
export const partnerId = z.union([
  exactInteger.transform((v) => v.toString()),
  z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, "must be an integer or 1-128 letters, digits or _.:-"),
]);

/**
 * Knot's task_id: we write it back as a JSON number, so only decimal integers are accepted; the
 * string form is normalised (no leading zeros) so it can be written as a JSON number literal.
 */
export const decimalTaskId = z.union([
  exactInteger.transform((v) => v.toString()),
  z
    .string()
    .regex(/^\d{1,40}$/, "must be a decimal integer")
    .transform((s) => BigInt(s).toString()),
]);
