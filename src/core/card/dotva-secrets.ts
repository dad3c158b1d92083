/**
 * Reads the plaintext Dotva put inside `secrets_jwe`.
 *
 * Dotva's document says only "PAN / CVV / expiry" (its jose example reads `pan`, `cvv`, `expiry_month`,
 * `expiry_year`), so the member names are not a contract and the first real card must not fail on a
 * naming guess. Tolerant in shape, at the top level or nested under `card`:
 * - PAN from `pan` | `number` | `card_number`;
 * - CVV from `cvv` | `cvc` | `cvv2` | `security_code`;
 * - expiry from `expiry` | `expiration` (`MM/YY`, `MM/YYYY`, `YYYY-MM`), or from a month
 *   (`expiry_month` | `exp_month`) and a year (`expiry_year` | `exp_year`);
 * - digits as strings or numbers ("8" / 8 / "08", 2030 / "30").
 * Strict in value: Luhn-valid PAN of 12-19 digits, CVV of 3-4 digits, month 1-12, year 2000-2099. Two
 * members naming the same field with different values are refused: guessing which one is the card would
 * send the wrong card. Unknown members are ignored.
 *
 * PAN and CVV are returned as views into the plaintext buffer, never copied into strings, so overwriting
 * the plaintext erases them. Errors name members (so an operator can map a new shape on day one), never
 * values.
 */
import { type JsonMember, JsonShapeError, scanObjectMembers } from "../crypto/json-members.js";
import { CvvInvalidError, ExpiryInvalidError, PanInvalidError, SecretsMalformedError } from "./errors.js";

export interface DotvaSecrets {
  /** ASCII digits; a view into the plaintext buffer. */
  readonly pan: Buffer;
  /** ASCII digits; a view into the plaintext buffer. */
  readonly cvv: Buffer;
  readonly expiryMonth: number;
  /** Four-digit year. */
  readonly expiryYear: number;
}

const PAN_NAMES = ["pan", "number", "card_number"];
const CVV_NAMES = ["cvv", "cvc", "cvv2", "security_code"];
const EXPIRY_NAMES = ["expiry", "expiration"];
const MONTH_NAMES = ["expiry_month", "exp_month"];
const YEAR_NAMES = ["expiry_year", "exp_year"];
const NESTED_UNDER = "card";

/** One object of the document: the top level, or the one under `card`. */
interface Level {
  /** "" or "card.": how member names are shown in messages. */
  readonly prefix: string;
  readonly bytes: Buffer;
  readonly members: Map<string, JsonMember>;
}

/** A member that names one of the fields, with the bytes of its value (a string's without quotes). */
interface Candidate {
  readonly path: string;
  readonly member: JsonMember;
  readonly value: Buffer;
}

export function parseDotvaSecrets(plaintext: Buffer): DotvaSecrets {
  const levels = readLevels(plaintext);

  const pan = single(candidates(levels, PAN_NAMES), "PANs");
  if (pan === undefined) throw new PanInvalidError(missing("a PAN", PAN_NAMES, levels));
  const panDigits = digitsOf(pan);
  if (panDigits === undefined || panDigits.length < 12 || panDigits.length > 19) {
    throw new PanInvalidError(`${pan.path} must be a string or number of 12 to 19 digits`);
  }
  if (!luhnValid(panDigits)) throw new PanInvalidError(`${pan.path} fails the Luhn check`);

  const cvv = single(candidates(levels, CVV_NAMES), "CVVs");
  if (cvv === undefined) throw new CvvInvalidError(missing("a CVV", CVV_NAMES, levels));
  const cvvDigits = digitsOf(cvv);
  if (cvvDigits === undefined || cvvDigits.length < 3 || cvvDigits.length > 4) {
    throw new CvvInvalidError(`${cvv.path} must be a string or number of 3 or 4 digits`);
  }

  const expiry = readExpiry(levels);
  return { pan: panDigits, cvv: cvvDigits, expiryMonth: expiry.month, expiryYear: expiry.year };
}

function readLevels(plaintext: Buffer): Level[] {
  try {
    const top: Level = { prefix: "", bytes: plaintext, members: scanObjectMembers(plaintext) };
    const card = top.members.get(NESTED_UNDER);
    if (card?.kind !== "object") return [top];
    const bytes = plaintext.subarray(card.start, card.end);
    return [top, { prefix: `${NESTED_UNDER}.`, bytes, members: scanObjectMembers(bytes) }];
  } catch (err) {
    if (err instanceof JsonShapeError) {
      throw new SecretsMalformedError("the decrypted secrets are not a JSON object with unique member names");
    }
    throw err;
  }
}

/** Members named `names` at either level; `null` counts as absent. */
function candidates(levels: readonly Level[], names: readonly string[]): Candidate[] {
  const found: Candidate[] = [];
  for (const level of levels) {
    for (const name of names) {
      const member = level.members.get(name);
      if (member === undefined || isNull(level.bytes, member)) continue;
      const raw = level.bytes.subarray(member.start, member.end);
      const value = member.kind === "string" ? raw.subarray(1, raw.length - 1) : raw;
      found.push({ path: `${level.prefix}${name}`, member, value });
    }
  }
  return found;
}

/** The one value the candidates agree on; refuses candidates that disagree. */
function single(found: readonly Candidate[], what: string): Candidate | undefined {
  const first = found[0];
  for (const other of found.slice(1)) {
    if (other.member.kind === "other" || !other.value.equals(first!.value)) {
      throw new SecretsMalformedError(
        `${found.map((c) => c.path).join(", ")} hold different ${what}; send one value per field`,
      );
    }
  }
  return first;
}

function readExpiry(levels: readonly Level[]): { month: number; year: number } {
  const combined = candidates(levels, EXPIRY_NAMES).map((c) => ({ path: c.path, ...combinedExpiry(c) }));
  const months = [
    ...combined.map((d) => ({ path: d.path, value: d.month })),
    ...candidates(levels, MONTH_NAMES).map((c) => ({ path: c.path, value: month(c) })),
  ];
  const years = [
    ...combined.map((d) => ({ path: d.path, value: d.year })),
    ...candidates(levels, YEAR_NAMES).map((c) => ({ path: c.path, value: year(c) })),
  ];
  const m = agreeing(months, "expiry months");
  const y = agreeing(years, "expiry years");
  if (m === undefined && y === undefined) {
    throw new ExpiryInvalidError(
      missing(
        `an expiry (${EXPIRY_NAMES.join(" or ")}, or a month and a year)`,
        [...EXPIRY_NAMES, ...MONTH_NAMES, ...YEAR_NAMES],
        levels,
      ),
    );
  }
  if (m === undefined) {
    throw new ExpiryInvalidError(
      `${years[0]!.path} has no month: send one of ${MONTH_NAMES.join(", ")} with it`,
    );
  }
  if (y === undefined) {
    throw new ExpiryInvalidError(
      `${months[0]!.path} has no year: send one of ${YEAR_NAMES.join(", ")} with it`,
    );
  }
  return { month: m, year: y };
}

function agreeing(values: readonly { path: string; value: number }[], what: string): number | undefined {
  const first = values[0];
  if (values.some((v) => v.value !== first!.value)) {
    throw new SecretsMalformedError(
      `${values.map((v) => v.path).join(", ")} hold different ${what}; send one value per field`,
    );
  }
  return first?.value;
}

function month(c: Candidate): number {
  const digits = digitsOf(c);
  const value = digits === undefined || digits.length > 2 ? Number.NaN : toNumber(digits);
  if (!(value >= 1 && value <= 12)) {
    throw new ExpiryInvalidError(`${c.path} must be 1 to 12, as a number or a string of 1 or 2 digits`);
  }
  return value;
}

function year(c: Candidate): number {
  const digits = digitsOf(c);
  if (digits === undefined || (digits.length !== 2 && digits.length !== 4)) {
    throw new ExpiryInvalidError(`${c.path} must be a 2- or 4-digit year, as a number or a string`);
  }
  return fullYear(digits, c.path);
}

/** `MM/YY`, `MM/YYYY` or `YYYY-MM`, as a string. */
function combinedExpiry(c: Candidate): { month: number; year: number } {
  const v = c.value;
  const at = (from: number, to: number) => digitsOnly(v.subarray(from, to));
  let mm: Buffer | undefined;
  let yy: Buffer | undefined;
  if (c.member.kind === "string" && (v.length === 5 || v.length === 7) && v[2] === 0x2f) {
    mm = at(0, 2);
    yy = at(3, v.length);
  } else if (c.member.kind === "string" && v.length === 7 && v[4] === 0x2d) {
    yy = at(0, 4);
    mm = at(5, 7);
  }
  const m = mm === undefined ? Number.NaN : toNumber(mm);
  if (yy === undefined || !(m >= 1 && m <= 12)) {
    throw new ExpiryInvalidError(
      `${c.path} must be a string MM/YY, MM/YYYY or YYYY-MM with a month 01 to 12`,
    );
  }
  return { month: m, year: fullYear(yy, c.path) };
}

function fullYear(digits: Buffer, path: string): number {
  // Card expiries are never in the past century, so "30" can only mean 2030.
  const y = digits.length === 2 ? 2000 + toNumber(digits) : toNumber(digits);
  if (y < 2000 || y > 2099) throw new ExpiryInvalidError(`${path} is out of range (2000 to 2099)`);
  return y;
}

/** The digits of a string or number value, or undefined if it holds anything but digits. */
function digitsOf(c: Candidate): Buffer | undefined {
  return c.member.kind === "string" || c.member.kind === "number" ? digitsOnly(c.value) : undefined;
}

function digitsOnly(bytes: Buffer): Buffer | undefined {
  for (const b of bytes) if (b < 0x30 || b > 0x39) return undefined;
  return bytes.length > 0 ? bytes : undefined;
}

function isNull(bytes: Buffer, member: JsonMember): boolean {
  return member.kind === "other" && member.end - member.start === 4 && bytes[member.start] === 0x6e;
}

// A member name is shown only when it cannot be carrying card data: a sender that (wrongly) used a PAN
// or CVV as a name must not get it echoed into logs.
const SHOWABLE_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,47}$/;
const DIGIT_RUN = /\d{3}/;
const MAX_NAMES_SHOWN = 24;

/** "no <what>: expected one of <names>...; the document has members a, b, card.c". */
function missing(what: string, names: readonly string[], levels: readonly Level[]): string {
  const present: string[] = [];
  let withheld = 0;
  for (const level of levels) {
    for (const name of level.members.keys()) {
      if (SHOWABLE_NAME.test(name) && !DIGIT_RUN.test(name)) present.push(`${level.prefix}${name}`);
      else withheld++;
    }
  }
  const shown = present.slice(0, MAX_NAMES_SHOWN);
  withheld += present.length - shown.length;
  const list = shown.length > 0 ? shown.join(", ") : "(none)";
  return (
    `no ${what} found: expected one of ${names.join(", ")} at the top level or under "${NESTED_UNDER}"; ` +
    `the document has members ${list}${withheld > 0 ? ` and ${withheld} more not shown` : ""}`
  );
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
