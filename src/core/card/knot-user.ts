/**
 * The cardholder profile that goes into Knot's payload as `user`. It carries no card data; it is
 * validated here, at custody's boundary, so the payload builder can trust it.
 */
import { z } from "zod";
import { UserProfileError } from "./errors.js";
import { ISO_3166_ALPHA2 } from "./iso3166.js";

// Printable text without control characters: these values end up on merchants' forms.
const text = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[^\p{Cc}]*$/u, "must not contain control characters");
const required = (max: number) => text(max).refine((v) => v.trim().length > 0, "is required");

export const knotUserSchema = z.object({
  name: z.object({
    first_name: required(100),
    last_name: required(100),
  }),
  address: z.object({
    street: required(200),
    street2: text(200).optional(),
    city: required(100),
    region: required(100),
    postal_code: required(20),
    country: z
      .string()
      .refine((c) => ISO_3166_ALPHA2.has(c), "must be an ISO 3166-1 alpha-2 code such as US"),
  }),
  phone_number: z.string().regex(/^\+[1-9][0-9]{6,14}$/, "must be in E.164 form, e.g. +14155550123"),
});

export type KnotUser = z.infer<typeof knotUserSchema>;

/** Throws UserProfileError naming the first offending field (never its value). */
export function parseKnotUser(input: unknown): KnotUser {
  const result = knotUserSchema.safeParse(input);
  if (result.success) {
    const user = result.data;
    // proto3 sends "" for an absent optional string; Knot expects the member left out instead.
    if (user.address.street2 === "") delete user.address.street2;
    return user;
  }
  const issue = result.error.issues[0]!;
  const path = issue.path.length > 0 ? `user.${issue.path.join(".")}` : "user";
  const message = issue.code === "invalid_type" ? "is missing or has the wrong type" : issue.message;
  throw new UserProfileError(`${path} ${message}`);
}
