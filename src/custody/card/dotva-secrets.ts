/**
 * Reads the plaintext Dotva put inside `secrets_jwe`: {"pan","cvv","expiry_month","expiry_year"}.
 *
 * Liberal in shape (strings or numbers, "8" / 8 / "08", 2025 / "25"), strict in value (Luhn-valid PAN of
 * 12-19 digits, CVV of 3-4 digits, month 1-12). PAN and CVV are returned as views into the plaintext
 * buffer, not copied into strings, so overwriting the plaintext erases them. Errors name the field,
 * never the value. Unknown members are ignored: issuers add fields over time.
 */
import { type JsonMember, JsonShapeError, scanObjectMembers } from "../../crypto/json-members.js";
import { CvvInvalidError, ExpiryInvalidError, PanInvalidError, SecretsMalformedError } from "../errors.js";

export interface DotvaSecrets {
  /** ASCII digits; a view into the plaintext buffer. */
  readonly pan: Buffer;
  /** ASCII digits; a view into the plaintext buffer. */
  readonly cvv: Buffer;
  readonly expiryMonth: number;
  /** Four-digit year. */
  readonly expiryYear: number;
}

export function parseDotvaSecrets(plaintext: Buffer): DotvaSecrets {
  let members: Map<string, JsonMember>;
  try {
    members = scanObjectMembers(plaintext);
  } catch (err) {
    if (err instanceof JsonShapeError)
      throw new SecretsMalformedError("the decrypted secrets are not a JSON object");
    throw err;
  }
  const digits = (name: string) => digitsOf(plaintext, members.get(name));

  const pan = digits("pan");
  if (pan === undefined || pan.length < 12 || pan.length > 19) {
    throw new PanInvalidError("pan must be a string or number of 12 to 19 digits");
  }
  if (!luhnValid(pan)) throw new PanInvalidError("pan fails the Luhn check");

  const cvv = digits("cvv");
  if (cvv === undefined || cvv.length < 3 || cvv.length > 4) {
    throw new CvvInvalidError("cvv must be a string or number of 3 or 4 digits");
  }

  const month = digits("expiry_month");
  const expiryMonth = month === undefined || month.length > 2 ? Number.NaN : toNumber(month);
  if (!(expiryMonth >= 1 && expiryMonth <= 12)) {
    throw new ExpiryInvalidError("expiry_month must be 1 to 12, as a number or a string of 1 or 2 digits");
  }

  const year = digits("expiry_year");
  if (year === undefined || (year.length !== 2 && year.length !== 4)) {
    throw new ExpiryInvalidError("expiry_year must be a 2- or 4-digit year, as a number or a string");
  }
  // Card expiries are never in the past century, so "25" can only mean 2025.
  const expiryYear = year.length === 2 ? 2000 + toNumber(year) : toNumber(year);
  if (expiryYear < 2000 || expiryYear > 2099) throw new ExpiryInvalidError("expiry_year is out of range");

  return { pan, cvv, expiryMonth, expiryYear };
}

/** The digits of a string or number member, or undefined if it is absent or holds anything but digits. */
function digitsOf(plaintext: Buffer, member: JsonMember | undefined): Buffer | undefined {
  if (member === undefined || member.kind === "other") return undefined;
  const bytes =
    member.kind === "string"
      ? plaintext.subarray(member.start + 1, member.end - 1)
      : plaintext.subarray(member.start, member.end);
  for (const b of bytes) if (b < 0x30 || b > 0x39) return undefined;
  return bytes.length > 0 ? bytes : undefined;
}

function toNumber(digits: Buffer): number {
  let n = 0;
  for (const b of digits) n = n * 10 + (b - 0x30);
  return n;
}

function luhnValid(digits: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits[digits.length - 1 - i]! - 0x30;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}
