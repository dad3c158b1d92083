/**
 * A strict scanner for one top-level JSON object held in bytes, returning where each member's value
 * lies instead of building JavaScript values.
 *
 * Two callers need that:
 * - JWE protected headers, to refuse duplicate member names (JSON.parse keeps the last one silently,
 *   another implementation may keep the first: the same header would mean two things).
 * - Decrypted card secrets: JSON.parse would copy the PAN and CVV into immutable strings that cannot be
 *   overwritten, while byte ranges into the plaintext buffer are wiped with it.
 *
 * It validates the whole document against RFC 8259 grammar (nested values of unknown members included)
 * but decodes only member names. A member whose value is an object is reported as such, so a caller
 * can scan that object in turn (Dotva's secrets may sit under `card`).
 */
export type JsonValueKind = "string" | "number" | "object" | "other";

export interface JsonMember {
  /** Index of the first byte of the value (the opening quote for a string). */
  readonly start: number;
  /** Index one past the last byte of the value. */
  readonly end: number;
  readonly kind: JsonValueKind;
}

export class JsonShapeError extends Error {}

const MAX_DEPTH = 16;

type OnMember = (nameStart: number, nameEnd: number, member: JsonMember) => void;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const MINUS = 0x2d;

const isDigit = (b: number | undefined) => b !== undefined && b >= 0x30 && b <= 0x39;
const isHex = (b: number | undefined) =>
  b !== undefined && ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66));

/** Members of the single object in `bytes`, by name. Throws JsonShapeError on any grammar violation or duplicate name. */
export function scanObjectMembers(bytes: Uint8Array): Map<string, JsonMember> {
  return new Scanner(bytes).topLevelObject();
}

class Scanner {
  private pos = 0;

  constructor(private readonly bytes: Uint8Array) {}

  topLevelObject(): Map<string, JsonMember> {
    const members = new Map<string, JsonMember>();
    this.skipWhitespace();
    if (this.bytes[this.pos] !== OPEN_BRACE) throw new JsonShapeError("not a JSON object");
    this.skipContainer(1, CLOSE_BRACE, (nameStart, nameEnd, member) => {
      // Member names are not secret; JSON.parse decodes their escapes exactly as the spec says.
      const name = JSON.parse(
        Buffer.from(this.bytes.subarray(nameStart, nameEnd)).toString("utf8"),
      ) as string;
      if (members.has(name)) throw new JsonShapeError("duplicate member name");
      members.set(name, member);
    });
    this.skipWhitespace();
    if (this.pos !== this.bytes.length) throw new JsonShapeError("trailing bytes after the object");
    return members;
  }

  private expect(byte: number): void {
    if (this.bytes[this.pos] !== byte) throw new JsonShapeError("unexpected byte");
    this.pos++;
  }

  private skipWhitespace(): void {
    for (;;) {
      const b = this.bytes[this.pos];
      if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) this.pos++;
      else return;
    }
  }

  private skipValue(depth: number): JsonValueKind {
    if (depth > MAX_DEPTH) throw new JsonShapeError("nesting too deep");
    const b = this.bytes[this.pos];
    if (b === QUOTE) {
      this.skipString();
      return "string";
    }
    if (b === MINUS || isDigit(b)) {
      this.skipNumber();
      return "number";
    }
    if (b === OPEN_BRACE) {
      this.skipContainer(depth, CLOSE_BRACE, () => {});
      return "object";
    }
    if (b === OPEN_BRACKET) this.skipContainer(depth, CLOSE_BRACKET);
    else if (!this.skipLiteral("true") && !this.skipLiteral("false") && !this.skipLiteral("null")) {
      throw new JsonShapeError("not a JSON value");
    }
    return "other";
  }

  /** An object when `onMember` is given (called for each member), else an array. */
  private skipContainer(depth: number, close: number, onMember?: OnMember): void {
    this.pos++;
    this.skipWhitespace();
    if (this.bytes[this.pos] === close) {
      this.pos++;
      return;
    }
    for (;;) {
      this.skipWhitespace();
      if (onMember) {
        const nameStart = this.pos;
        this.skipString();
        const nameEnd = this.pos;
        this.skipWhitespace();
        this.expect(COLON);
        this.skipWhitespace();
        const start = this.pos;
        const kind = this.skipValue(depth + 1);
        onMember(nameStart, nameEnd, { start, end: this.pos, kind });
      } else {
        this.skipValue(depth + 1);
      }
      this.skipWhitespace();
      if (this.bytes[this.pos] === COMMA) {
        this.pos++;
        continue;
      }
      this.expect(close);
      return;
    }
  }

  private skipLiteral(word: string): boolean {
    for (let i = 0; i < word.length; i++) {
      if (this.bytes[this.pos + i] !== word.charCodeAt(i)) return false;
    }
    this.pos += word.length;
    return true;
  }

  private skipString(): void {
    this.expect(QUOTE);
    for (;;) {
      const b = this.bytes[this.pos];
      if (b === undefined || b < 0x20) throw new JsonShapeError("unterminated string or control character");
      this.pos++;
      if (b === QUOTE) return;
      if (b !== BACKSLASH) continue;
      const escaped = this.bytes[this.pos];
      this.pos++;
      if (escaped === 0x75) {
        for (let i = 0; i < 4; i++, this.pos++) {
          if (!isHex(this.bytes[this.pos])) throw new JsonShapeError("bad \\u escape");
        }
      } else if (escaped === undefined || !'"\\/bfnrt'.includes(String.fromCharCode(escaped))) {
        throw new JsonShapeError("bad escape");
      }
    }
  }

  private skipNumber(): void {
    if (this.bytes[this.pos] === MINUS) this.pos++;
    if (this.bytes[this.pos] === 0x30) this.pos++;
    else if (isDigit(this.bytes[this.pos])) this.skipDigits();
    else throw new JsonShapeError("bad number");
    if (this.bytes[this.pos] === 0x2e) {
      this.pos++;
      if (!isDigit(this.bytes[this.pos])) throw new JsonShapeError("bad number");
      this.skipDigits();
    }
    const e = this.bytes[this.pos];
    if (e === 0x65 || e === 0x45) {
      this.pos++;
      const sign = this.bytes[this.pos];
      if (sign === 0x2b || sign === MINUS) this.pos++;
      if (!isDigit(this.bytes[this.pos])) throw new JsonShapeError("bad number");
      this.skipDigits();
    }
  }

  private skipDigits(): void {
    while (isDigit(this.bytes[this.pos])) this.pos++;
  }
}
