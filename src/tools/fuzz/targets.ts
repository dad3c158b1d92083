/**
 * Fuzz targets: each takes arbitrary bytes and throws PropertyViolation (or anything unexpected) when a
 * property of the code under test does not hold. The same functions run under Jazzer.js
 * (`npm run fuzz`, src/tools/fuzz/run.ts) and over the saved corpus in the test suite
 * (src/tools/fuzz/regression.test.ts).
 *
 * Properties, per target:
 * - a refusal is one of our typed errors with a stable `code` from the target's allowlist, never a
 *   TypeError, RangeError or SyntaxError escaping from inside;
 * - no error message contains input values (checked against the input's own tokens);
 * - an acceptance satisfies the parser's documented post-conditions, and where a reference exists
 *   (JSON.parse, node:crypto OAEP) the result equals the reference's.
 */
import {
  constants,
  createHash,
  createHmac,
  generateKeyPairSync,
  hash,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
} from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { parseDotvaSecrets } from "../../core/card/dotva-secrets.js";
import { CardError } from "../../core/card/errors.js";
import { CryptoError } from "../../core/crypto/errors.js";
import { normalizeFingerprint } from "../../core/crypto/fingerprint.js";
import { JsonShapeError, scanObjectMembers } from "../../core/crypto/json-members.js";
import { parseCompactJwe } from "../../core/crypto/jwe-decrypt.js";
import { parseKnotJwk } from "../../core/crypto/knot-jwk.js";
import { oaepSha256DecodeInto } from "../../core/crypto/oaep-decode.js";
import { sanUris } from "../../custody/caller-identity.js";
import { CustodyError } from "../../custody/errors.js";
import { cardIssuedSecretsSchema, contentDigest, toDotvaCard } from "../../gateway/dotva/schema.js";
import { knotEventSchema } from "../../gateway/knot/schema.js";
import { knotSignature, type SignedFacts, verifyKnotSignature } from "../../gateway/knot/signature.js";

export class PropertyViolation extends Error {}

function violated(message: string): never {
  throw new PropertyViolation(message);
}

let tokenized: { text: string; tokens: string[] } | undefined;

/**
 * Tokens of the input an error message must never repeat: runs of 6+ characters between JSON syntax.
 * The last input's tokens are kept: a schema refusal checks every issue's message against the same body.
 */
function inputTokens(text: string): string[] {
  if (tokenized?.text !== text) {
    tokenized = { text, tokens: [...new Set(text.split(/[\s"{}[\]:,.\\/]+/).filter((t) => t.length >= 6))] };
  }
  return tokenized.tokens;
}

/**
 * The wording messages may use: the source of the modules under test (member names such as
 * `expiry_month`, algorithm names such as `RSA-OAEP-256`) and zod's own words. A token found there is
 * vocabulary, not an echo; PANs, key material and other values are not in the source.
 */
const VOCABULARY = [
  "src/core/crypto",
  "src/core/card",
  "src/custody/errors.ts",
  "src/gateway/dotva/schema.ts",
  "src/gateway/knot/schema.ts",
  "src/gateway/http/partner-ids.ts",
]
  .flatMap((path) => {
    const full = new URL(`../../../${path}`, import.meta.url).pathname;
    // Sources only: the tests beside them hold test PANs and keys, which are exactly what must not echo.
    return statSync(full).isDirectory()
      ? readdirSync(full)
          .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
          .map((f) => readFileSync(join(full, f), "utf8"))
      : [readFileSync(full, "utf8")];
  })
  .join("\n");

function assertNoEcho(
  message: string,
  input: string,
  mayShow: (token: string) => boolean = () => false,
): void {
  for (const token of inputTokens(input)) {
    // The message is short and the vocabulary is the modules' whole source: look in the message first.
    if (!message.includes(token)) continue;
    if (/^[A-Za-z_ -]+$/.test(token) || VOCABULARY.includes(token) || mayShow(token)) continue;
    violated(`error message repeats input token of length ${token.length}`);
  }
}

function expectTyped(
  err: unknown,
  codes: ReadonlySet<string>,
  input: string,
  mayShow?: (token: string) => boolean,
): void {
  if (!(err instanceof CryptoError || err instanceof CardError || err instanceof CustodyError)) throw err;
  if (!codes.has(err.code)) violated(`unexpected code ${err.code}`);
  assertNoEcho(err.message, input, mayShow);
}

const JWE_CODES = new Set(["JWE_MALFORMED", "JWE_TOO_LARGE", "JWE_HEADER_UNSUPPORTED"]);

export function fuzzJweParse(data: Buffer): void {
  const text = data.toString("latin1");
  let parsed: ReturnType<typeof parseCompactJwe>;
  try {
    parsed = parseCompactJwe(text);
  } catch (err) {
    expectTyped(err, JWE_CODES, text);
    return;
  }
  const parts = text.split(".");
  if (parts.length !== 5) violated("accepted a JWE without five parts");
  if (parsed.header.alg !== "RSA-OAEP-256" || parsed.header.enc !== "A256GCM") violated("accepted alg/enc");
  if (parsed.iv.length !== 12 || parsed.tag.length !== 16) violated("accepted iv or tag length");
  if (parsed.encryptedKey.length < 256 || parsed.encryptedKey.length > 512) violated("accepted key length");
  if (parsed.aad.toString("ascii") !== parts[0]) violated("aad is not the protected header text");
  const header = JSON.parse(Buffer.from(parts[0]!, "base64url").toString("utf8")) as Record<string, unknown>;
  if ("zip" in header || "crit" in header) violated("accepted zip or crit");
  for (const [i, part] of parts.entries()) {
    if (Buffer.from(part, "base64url").toString("base64url") !== part) violated(`part ${i} not canonical`);
  }
}

/**
 * Differential against JSON.parse. Intended differences (the scanner is stricter): only an object at
 * the top level, no duplicate member names, at most 16 levels of nesting. Everything the scanner
 * accepts JSON.parse accepts with the same members, and each member's byte range parses to the value
 * JSON.parse gave that member.
 */
export function fuzzJsonMembers(data: Buffer): void {
  let reference: unknown;
  let referenceOk = true;
  try {
    reference = JSON.parse(data.toString("utf8"));
  } catch {
    referenceOk = false;
  }
  let members: ReturnType<typeof scanObjectMembers>;
  try {
    members = scanObjectMembers(data);
  } catch (err) {
    if (!(err instanceof JsonShapeError)) throw err;
    const isObject = typeof reference === "object" && reference !== null && !Array.isArray(reference);
    if (referenceOk && isObject && !/^(duplicate member name|nesting too deep)$/.test(err.message)) {
      violated(`scanner refused an object JSON.parse reads: ${err.message}`);
    }
    return;
  }
  if (!referenceOk) violated("scanner accepted what JSON.parse refuses");
  if (typeof reference !== "object" || reference === null || Array.isArray(reference)) {
    violated("scanner accepted a non-object");
  }
  const object = reference as Record<string, unknown>;
  const names = Object.keys(object);
  if (names.length !== members.size || !names.every((n) => members.has(n))) violated("member names differ");
  for (const [name, m] of members) {
    const value = JSON.parse(data.subarray(m.start, m.end).toString("utf8")) as unknown;
    if (!isDeepStrictEqual(value, object[name])) violated("member value differs from JSON.parse");
    const kind =
      typeof value === "string"
        ? "string"
        : typeof value === "number"
          ? "number"
          : typeof value === "object" && value !== null && !Array.isArray(value)
            ? "object"
            : "other";
    if (kind !== m.kind) violated(`member kind ${m.kind} but value is ${kind}`);
  }
}

const SECRETS_CODES = new Set(["SECRETS_MALFORMED", "PAN_INVALID", "CVV_INVALID", "EXPIRY_INVALID"]);

function luhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return sum % 10 === 0;
}

export function fuzzDotvaSecrets(data: Buffer): void {
  const input = Buffer.from(data);
  let secrets: ReturnType<typeof parseDotvaSecrets>;
  try {
    secrets = parseDotvaSecrets(input);
  } catch (err) {
    // Member names are shown to help map a new document shape, unless they hold a digit run.
    expectTyped(
      err,
      SECRETS_CODES,
      data.toString("latin1"),
      (t) => /^[A-Za-z_][A-Za-z0-9_-]*$/.test(t) && !/\d{3}/.test(t),
    );
    // Digit runs are what a PAN or CVV looks like: a number in a message must be one the source
    // itself writes (a bound such as 2099), never one taken from the input.
    for (const run of (err as Error).message.match(/\d{3,}/g) ?? []) {
      if (!new RegExp(`\\b${run}\\b`).test(VOCABULARY)) violated("message holds a number from the input");
    }
    return;
  }
  const pan = secrets.pan.toString("latin1");
  const cvv = secrets.cvv.toString("latin1");
  if (!/^\d{12,19}$/.test(pan) || !luhn(pan)) violated("accepted PAN is not 12-19 Luhn-valid digits");
  if (!/^\d{3,4}$/.test(cvv)) violated("accepted CVV is not 3-4 digits");
  if (secrets.expiryMonth < 1 || secrets.expiryMonth > 12) violated("accepted month out of range");
  if (secrets.expiryYear < 2000 || secrets.expiryYear > 2099) violated("accepted year out of range");
  if (secrets.pan.buffer !== input.buffer || secrets.cvv.buffer !== input.buffer) {
    violated("PAN or CVV copied out of the plaintext buffer (could not be wiped)");
  }
}

export function fuzzKnotJwk(data: Buffer): void {
  const text = data.toString("utf8");
  let recipient: ReturnType<typeof parseKnotJwk>;
  try {
    recipient = parseKnotJwk(text);
  } catch (err) {
    expectTyped(err, new Set(["KNOT_JWK_INVALID"]), text);
    return;
  }
  const jwk = recipient.publicKey.export({ format: "jwk" });
  if (recipient.publicKey.type !== "public" || jwk.kty !== "RSA") violated("accepted a non-RSA-public key");
  if (jwk.e !== "AQAB") violated("accepted e other than 65537");
  if (recipient.modulusBits < 2048 || recipient.modulusBits > 8192) violated("accepted modulus size");
  const source = JSON.parse(text) as Record<string, unknown>;
  for (const m of ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]) if (m in source) violated(`accepted ${m}`);
}

export function fuzzFingerprint(data: Buffer): void {
  const text = data.toString("utf8");
  let normalized: string;
  try {
    normalized = normalizeFingerprint(text);
  } catch (err) {
    expectTyped(err, new Set(["KEY_FINGERPRINT_INVALID"]), text);
    return;
  }
  if (!/^sha256:[0-9a-f]{64}$/.test(normalized) && !/^[A-Za-z0-9_-]{43}$/.test(normalized)) {
    violated("normalized to a form the index does not hold");
  }
  if (normalizeFingerprint(normalized) !== normalized) violated("normalization is not idempotent");
}

const SAN_KINDS = ["URI", "DNS", "IP Address", "email", "DirName"] as const;

/**
 * Renders SAN entries as Node's `subjectaltname` does: `Kind:value` joined by ", ", a value JSON-quoted
 * when it holds a character that would make the list ambiguous (comma, quote, backslash, control or
 * non-ASCII). The property: sanUris reads back exactly the URI values, in order.
 */
export function fuzzSanUris(data: Buffer): void {
  const entries: { kind: string; value: string }[] = [];
  let i = 0;
  while (i < data.length && entries.length < 8) {
    const kind = SAN_KINDS[data[i]! % SAN_KINDS.length]!;
    const length = data[i + 1] ?? 0;
    const value = data.subarray(i + 2, i + 2 + (length % 64)).toString("utf8");
    i += 2 + (length % 64);
    entries.push({ kind, value });
  }
  const rendered = entries
    .map(({ kind, value }) =>
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what Node quotes
      /[,"\\\u0000-\u001f\u007f-\uffff]/.test(value)
        ? `${kind}:${JSON.stringify(value)}`
        : `${kind}:${value}`,
    )
    .join(", ");
  const expected = entries.filter((e) => e.kind === "URI").map((e) => e.value);
  const actual = sanUris(rendered);
  if (!isDeepStrictEqual(actual, expected)) violated("sanUris did not read back the URI SANs");
}

function parseJsonOrUndefined(data: Buffer): unknown {
  try {
    return JSON.parse(data.toString("utf8"));
  } catch {
    return undefined;
  }
}

export function fuzzDotvaWebhook(data: Buffer): void {
  const body = parseJsonOrUndefined(data);
  const result = cardIssuedSecretsSchema.safeParse(body);
  if (!result.success) {
    for (const issue of result.error.issues) assertNoEcho(issue.message, data.toString("utf8"));
    return;
  }
  const jwe = result.data.data.secrets_jwe;
  if (jwe.split(".").length !== 5 || jwe.length > 16_384)
    violated("accepted a secrets_jwe that is not compact");
  const card = toDotvaCard(result.data, 0);
  if (!/^[0-9a-f]{64}$/.test(contentDigest(card))) violated("content digest is not SHA-256 hex");
}

export function fuzzKnotWebhook(data: Buffer): void {
  const body = parseJsonOrUndefined(data);
  const result = knotEventSchema.safeParse(body);
  if (!result.success) {
    for (const issue of result.error.issues) assertNoEcho(issue.message, data.toString("utf8"));
    return;
  }
  if (typeof result.data.event !== "string" || result.data.event.length === 0) violated("accepted no event");
}

/**
 * Knot signature verification: with arbitrary facts and an arbitrary presented value it never throws,
 * accepts what knotSignature computes, and accepts a presented value only when it decodes to the
 * HMAC's bytes (the base64 comparison is on bytes, so an encoding with different unused low bits of
 * the last character decodes to the same bytes and is the same signature).
 */
export function fuzzKnotSignature(data: Buffer): void {
  const fields = data.toString("utf8").split("\u0000");
  const facts: SignedFacts = {
    contentLength: fields[0] ?? "",
    contentType: fields[1] ?? "",
    encryptionType: fields[2] ?? "",
    event: fields[3] ?? "",
    ...(fields[4] === undefined ? {} : { sessionId: fields[4] }),
  };
  const secret = "fuzz-client-secret";
  const presented = fields[5];
  const expected = createHmac("sha256", secret)
    .update(
      [
        `Content-Length|${facts.contentLength}`,
        `Content-Type|${facts.contentType}`,
        `Encryption-Type|${facts.encryptionType}`,
        `event|${facts.event}`,
        ...(facts.sessionId === undefined ? [] : [`session_id|${facts.sessionId}`]),
      ].join("|"),
    )
    .digest();
  if (!verifyKnotSignature(secret, facts, knotSignature(secret, facts))) violated("own signature refused");
  if (knotSignature(secret, facts) !== expected.toString("base64")) {
    violated("signature is not HMAC-SHA256 over Knot's documented string");
  }
  const accepted = verifyKnotSignature(secret, facts, presented);
  const shouldAccept =
    presented !== undefined &&
    /^[A-Za-z0-9+/]{43}=$/.test(presented.trim()) &&
    Buffer.from(presented.trim(), "base64").equals(expected);
  if (accepted !== shouldAccept) violated(`verification answered ${accepted}`);
}

const MODULUS_BYTES = 256;
const HASH_BYTES = 32;
const DB_BYTES = MODULUS_BYTES - HASH_BYTES - 1;
const EMPTY_LABEL_HASH = createHash("sha256").digest();
const CONTENT_KEY_BYTES = 32;

/** MGF1-SHA-256 (RFC 8017 B.2.1), written plainly and apart from the decoder under test. */
function mgf1(seed: Buffer, length: number): Buffer {
  const out: Buffer[] = [];
  for (let counter = 0; out.length * HASH_BYTES < length; counter++) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    out.push(hash("sha256", Buffer.concat([seed, c]), "buffer"));
  }
  return Buffer.concat(out).subarray(0, length);
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** The checks of RFC 8017 7.1.2 step 3 on an unmasked block: the message, or undefined. */
function referenceUnpad(leading: number, db: Buffer): Buffer | undefined {
  if (leading !== 0 || !db.subarray(0, HASH_BYTES).equals(EMPTY_LABEL_HASH)) return undefined;
  let i = HASH_BYTES;
  while (i < db.length && db[i] === 0) i++;
  if (i === db.length || db[i] !== 1) return undefined;
  return db.subarray(i + 1);
}

/** The reference: EME-OAEP decoding (RFC 8017 7.1.2 step 3) the obvious way, with early returns. */
function referenceDecode(em: Buffer): Buffer | undefined {
  const maskedSeed = em.subarray(1, 1 + HASH_BYTES);
  const maskedDb = em.subarray(1 + HASH_BYTES);
  const seed = xor(maskedSeed, mgf1(maskedDb, HASH_BYTES));
  return referenceUnpad(em[0]!, xor(maskedDb, mgf1(seed, DB_BYTES)));
}

/**
 * An EM block built from the input in the decoded domain, where each check of the decoder lives:
 * byte 0 picks the leading byte (zero for 15 values in 16), byte 1 the message length (the content
 * key's 32 bytes for half the values), the next 32 bytes the seed and then the message; the rest are
 * (position, mask) pairs XOR-ed into DB = lHash || PS || 0x01 || M before masking, so the fuzzer can
 * damage the label hash, the padding or the separator directly. Masking with MGF1 is cheap; no RSA here.
 */
function oaepBlock(data: Buffer): { em: Buffer; leading: number; db: Buffer } {
  const leading = data[0] !== undefined && data[0] >= 0xf0 ? data[0] - 0xef : 0;
  const lengthByte = data[1] ?? 0;
  const messageBytes = lengthByte < 128 ? CONTENT_KEY_BYTES : (lengthByte - 128) % (DB_BYTES - HASH_BYTES);
  const seed = Buffer.alloc(HASH_BYTES);
  data.subarray(2, 2 + HASH_BYTES).copy(seed);
  const db = Buffer.alloc(DB_BYTES);
  EMPTY_LABEL_HASH.copy(db);
  db[DB_BYTES - messageBytes - 1] = 1;
  data.subarray(2 + HASH_BYTES, 2 + HASH_BYTES + messageBytes).copy(db, DB_BYTES - messageBytes);
  for (let i = 2 + HASH_BYTES + messageBytes; i + 1 < data.length; i += 2) {
    db[data[i]! % DB_BYTES]! ^= data[i + 1]!;
  }
  const maskedDb = xor(db, mgf1(seed, DB_BYTES));
  const maskedSeed = xor(seed, mgf1(maskedDb, HASH_BYTES));
  return { em: Buffer.concat([Buffer.from([leading]), maskedSeed, maskedDb]), leading, db };
}

let anchored = false;

/**
 * Once per process: the reference and the block builder agree with OpenSSL (node:crypto). Each block
 * is turned into a ciphertext with a raw public operation and decrypted with node:crypto's
 * RSA-OAEP-SHA-256; the reference must give the same message, or refuse what OpenSSL refuses. The
 * blocks cover each kind of failure as well as valid keys of several lengths, so the per-input
 * comparison below is with a reference that is itself checked, at the cost of ~20 RSA operations once
 * instead of three per input.
 */
function anchorReference(): void {
  if (anchored) return;
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: MODULUS_BYTES * 8 });
  const cases: ReturnType<typeof oaepBlock>[] = [];
  for (const lengthByte of [0, 128, 128 + 16, 128 + 31, 128 + 33, 128 + 190]) {
    cases.push(oaepBlock(Buffer.concat([Buffer.from([0, lengthByte]), randomBytes(HASH_BYTES + 200)])));
  }
  const valid = Buffer.concat([Buffer.from([0, 0]), randomBytes(HASH_BYTES + CONTENT_KEY_BYTES)]);
  for (const damage of [
    [0, 1],
    [31, 0x80],
    [HASH_BYTES, 1],
    [DB_BYTES - CONTENT_KEY_BYTES - 1, 1],
    [DB_BYTES - CONTENT_KEY_BYTES - 1, 3],
  ]) {
    cases.push(oaepBlock(Buffer.concat([valid, Buffer.from(damage)])));
  }
  cases.push(oaepBlock(Buffer.concat([Buffer.from([0xf0]), valid.subarray(1)])));
  for (const { em, leading, db } of cases) {
    let expected: Buffer | undefined;
    try {
      const ciphertext = publicEncrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, em);
      expected = privateDecrypt({ key: privateKey, oaepHash: "sha256" }, ciphertext);
    } catch {
      expected = undefined;
    }
    const actual = referenceDecode(em);
    if (actual === undefined ? expected !== undefined : expected === undefined || !actual.equals(expected)) {
      violated("the reference OAEP decode disagrees with node:crypto");
    }
    // Unmasking inverts the builder's masking, so per input the checks run on the builder's own DB.
    const unpadded = referenceUnpad(leading, db);
    if (unpadded === undefined ? actual !== undefined : actual === undefined || !unpadded.equals(actual)) {
      violated("unmasking does not give back the builder's block");
    }
  }
  anchored = true;
}

/**
 * OAEP decode against the reference (itself checked against node:crypto, above): the decode must
 * never throw, must give the message when the reference decodes a 32-byte one, and must leave the
 * random substitute untouched otherwise.
 */
export function fuzzOaepDecode(data: Buffer): void {
  anchorReference();
  const { em: block, leading, db } = oaepBlock(data);
  const reference = referenceUnpad(leading, db);
  const substitute = randomBytes(CONTENT_KEY_BYTES);
  const out = Buffer.from(substitute);
  oaepSha256DecodeInto(block, MODULUS_BYTES, out);
  if (reference !== undefined && reference.length === CONTENT_KEY_BYTES) {
    if (!out.equals(reference)) violated("decode differs from the reference on a valid block");
  } else if (!out.equals(substitute)) {
    violated("decode changed the substitute for a block the reference refuses");
  }
  // Short blocks (a token that strips leading zeros) decode as their left-padded form; checked on half
  // the inputs (even first byte), as it doubles the decoder's work.
  if (block[0] === 0 && (data[0] ?? 0) % 2 === 0) {
    const stripped = Buffer.from(substitute);
    oaepSha256DecodeInto(block.subarray(1), MODULUS_BYTES, stripped);
    if (!stripped.equals(out)) violated("leading-zero-stripped block decodes differently");
  }
}

export const TARGETS = {
  "jwe-parse": fuzzJweParse,
  "json-members": fuzzJsonMembers,
  "dotva-secrets": fuzzDotvaSecrets,
  "knot-jwk": fuzzKnotJwk,
  fingerprint: fuzzFingerprint,
  "san-uris": fuzzSanUris,
  "dotva-webhook": fuzzDotvaWebhook,
  "knot-webhook": fuzzKnotWebhook,
  "knot-signature": fuzzKnotSignature,
  "oaep-decode": fuzzOaepDecode,
} as const satisfies Record<string, (data: Buffer) => void>;

export type TargetName = keyof typeof TARGETS;
