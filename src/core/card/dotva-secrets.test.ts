import { generateKeyPairSync } from "node:crypto";
import { CompactEncrypt, compactDecrypt } from "jose";
import { describe, expect, it } from "vitest";
import { privateKeyUnwrap } from "../../custody/keystore/private-key-unwrap.js";
import { type SecretsShape, secretsPlaintext } from "../../tools/simulators/dotva-simulator.js";
import { jwcrypto } from "../../tools/testing/jwcrypto.js";
import { USER } from "../../tools/testing/profile.js";
import { parseCompactJwe } from "../crypto/jwe-decrypt.js";
import { parseKnotJwk } from "../crypto/knot-jwk.js";
import { reencryptForKnot } from "../reencrypt.js";
import { parseDotvaSecrets } from "./dotva-secrets.js";
import { parseKnotUser } from "./knot-user.js";

const PAN = "4242424242424242";
const OTHER_PAN = "5555555555554444";
// Expiry years from the clock, so no test starts failing on a calendar date.
const YEAR = new Date().getUTCFullYear() + 3;
const YY = String(YEAR % 100).padStart(2, "0");
const parse = (doc: unknown) =>
  parseDotvaSecrets(Buffer.from(typeof doc === "string" ? doc : JSON.stringify(doc)));
const valid = { pan: PAN, cvv: "123", expiry_month: "08", expiry_year: String(YEAR) };
const VALUES = [PAN, OTHER_PAN, "4242424242424241", "12345", "123", "0123", "737", String(YEAR), YY];

function failure(doc: unknown): { code: string; message: string } {
  try {
    parse(doc);
  } catch (err) {
    return err as { code: string; message: string };
  }
  throw new Error("parse unexpectedly succeeded");
}

function expectNoValues(message: string): void {
  for (const secret of VALUES) expect(message).not.toContain(secret);
}

describe("parseDotvaSecrets: every documented-tolerated shape", () => {
  it.each([
    ["seed 004's jose example names", valid, "123", 8],
    [
      "Knot-like: nested under card, number / expiration MM/YYYY / cvv",
      { card: { number: PAN, expiration: `08/${YEAR}`, cvv: "123" } },
      "123",
      8,
    ],
    ["card_number, cvc, expiry MM/YY", { card_number: PAN, cvc: "737", expiry: `11/${YY}` }, "737", 11],
    ["pan, cvv2, expiration YYYY-MM", { pan: PAN, cvv2: "0123", expiration: `${YEAR}-01` }, "0123", 1],
    [
      "number, security_code, exp_month / exp_year as numbers",
      { number: Number(PAN), security_code: 737, exp_month: 12, exp_year: YEAR },
      "737",
      12,
    ],
    [
      "nested, month as '8', two-digit year",
      { card: { pan: PAN, cvv: "123", expiry_month: "8", expiry_year: YY } },
      "123",
      8,
    ],
    [
      "split across levels: PAN nested, CVV and expiry at the top",
      { card: { card_number: PAN }, cvc: "123", exp_month: 3, exp_year: Number(YY) },
      "123",
      3,
    ],
    [
      "the same PAN at both levels, as a string and as a number",
      { pan: PAN, card: { number: Number(PAN) }, cvv: "123", expiry: `05/${YEAR}` },
      "123",
      5,
    ],
    [
      "an expiry given twice that agrees",
      { ...valid, expiry_month: 8, expiration: `08/${YY}`, card: { exp_year: YEAR } },
      "123",
      8,
    ],
  ])("%s", (_name, doc, cvv, month) => {
    const secrets = parse(doc);
    expect(secrets.pan.toString()).toBe(PAN);
    expect(secrets.cvv.toString()).toBe(cvv);
    expect(secrets.expiryMonth).toBe(month);
    expect(secrets.expiryYear).toBe(YEAR);
  });

  it.each([
    ["month as '8'", { expiry_month: "8" }, 8, YEAR],
    ["month as 8", { expiry_month: 8 }, 8, YEAR],
    ["month 12", { expiry_month: 12 }, 12, YEAR],
    ["year as a number", { expiry_year: YEAR + 1 }, 8, YEAR + 1],
    ["year as two digits in a string", { expiry_year: YY }, 8, YEAR],
    ["year as a two-digit number", { expiry_year: Number(YY) }, 8, YEAR],
  ])("%s", (_name, override, month, year) => {
    const secrets = parse({ ...valid, ...override });
    expect(secrets.expiryMonth).toBe(month);
    expect(secrets.expiryYear).toBe(year);
  });

  it("PANs of 12 and 19 digits that pass Luhn, and a PAN written as a JSON number", () => {
    expect(parse({ ...valid, pan: "500000000009" }).pan.toString()).toBe("500000000009");
    expect(parse({ ...valid, pan: "6011000000000000001" }).pan.toString()).toBe("6011000000000000001");
    expect(parse(`{"pan":${PAN},"cvv":737,"expiry_month":1,"expiry_year":${YEAR}}`).cvv.toString()).toBe(
      "737",
    );
  });

  it("ignores unknown members, nested ones included, a null alias and whitespace", () => {
    const doc = `{ "card_type":"virtual", "pan" : "${PAN}", "number": null, "meta":{"a":[1,{"b":null}],"c":"\\u00e9"}, "cvv":"123", "expiry_month":8, "expiry_year":${YEAR} }`;
    expect(parse(doc).pan.toString()).toBe(PAN);
  });

  it("returns views into the plaintext, nested members included: wiping the plaintext wipes PAN and CVV", () => {
    for (const doc of [valid, { card: { number: PAN, cvv: "123", expiration: `08/${YEAR}` } }]) {
      const plaintext = Buffer.from(JSON.stringify(doc));
      const secrets = parseDotvaSecrets(plaintext);
      plaintext.fill(0);
      expect(secrets.pan.every((b) => b === 0)).toBe(true);
      expect(secrets.cvv.every((b) => b === 0)).toBe(true);
    }
  });
});

describe("parseDotvaSecrets reads every shape the Dotva simulator sends", () => {
  const card = { pan: PAN, cvv: "0123", expiry_month: 2, expiry_year: YY };
  it.each<SecretsShape>([
    { pan: "pan", cvv: "cvv", expiry: { month: "expiry_month", year: "expiry_year" } },
    { pan: "number", cvv: "cvc", expiry: { member: "expiration", format: "MM/YYYY" }, nestUnder: "card" },
    { pan: "card_number", cvv: "cvv2", expiry: { member: "expiry", format: "MM/YY" }, extra: { id: 7 } },
    { pan: "pan", cvv: "security_code", expiry: { member: "expiration", format: "YYYY-MM" } },
    { pan: "card_number", cvv: "cvv", expiry: { month: "exp_month", year: "exp_year" }, nestUnder: "card" },
  ])("%j", (shape) => {
    const secrets = parse(secretsPlaintext(card, shape));
    expect([secrets.pan.toString(), secrets.cvv.toString()]).toEqual([PAN, "0123"]);
    expect([secrets.expiryMonth, secrets.expiryYear]).toEqual([2, YEAR]);
  });
});

describe("parseDotvaSecrets: ambiguity is refused, naming the members, never the values", () => {
  it.each([
    ["two different PANs across levels", { ...valid, card: { number: OTHER_PAN } }, ["pan", "card.number"]],
    ["two different PANs at one level", { ...valid, card_number: OTHER_PAN }, ["pan", "card_number"]],
    ["a PAN alias holding something else", { ...valid, number: 5 }, ["pan", "number"]],
    ["CVV as '0123' and as 123", { ...valid, cvv: "0123", cvc: 123 }, ["cvv", "cvc"]],
    ["two different CVVs", { ...valid, card: { cvv: "737" } }, ["cvv", "card.cvv"]],
    [
      "an expiry that disagrees with the month",
      { ...valid, expiration: `09/${YEAR}` },
      ["expiration", "expiry_month"],
    ],
    ["two expiry years", { ...valid, card: { exp_year: YEAR + 1 } }, ["expiry_year", "card.exp_year"]],
  ])("%s -> SECRETS_MALFORMED", (_name, doc, paths) => {
    const err = failure(doc);
    expect(err.code).toBe("SECRETS_MALFORMED");
    for (const p of paths) expect(err.message).toContain(p);
    expectNoValues(err.message);
  });
});

describe("parseDotvaSecrets: nothing matches, the error lists the members present", () => {
  it("names every member, nested ones with their prefix, and no value", () => {
    const err = failure({ primary_account: PAN, code: "123", card: { valid_thru: `08/${YEAR}` } });
    expect(err.code).toBe("PAN_INVALID");
    expect(err.message).toContain("pan, number, card_number");
    expect(err.message).toContain("primary_account, code, card, card.valid_thru");
    expectNoValues(err.message);
  });

  it("withholds member names that could be card data", () => {
    const err = failure({ [PAN]: true, cvv_737: 1, "x y": 2, pan_ref: "r" });
    expect(err.code).toBe("PAN_INVALID");
    expect(err.message).toContain("pan_ref and 3 more not shown");
    expectNoValues(err.message);
  });

  it.each([
    ["no CVV", { pan: PAN, expiry: `08/${YEAR}` }, "CVV_INVALID", "pan, expiry"],
    ["no expiry at all", { pan: PAN, cvv: "123" }, "EXPIRY_INVALID", "pan, cvv"],
    [
      "a year without a month",
      { pan: PAN, cvv: "123", exp_year: YEAR },
      "EXPIRY_INVALID",
      "exp_year has no month",
    ],
    [
      "a month without a year",
      { pan: PAN, cvv: "123", expiry_month: 8 },
      "EXPIRY_INVALID",
      "expiry_month has no year",
    ],
  ])("%s -> %s", (_name, doc, code, text) => {
    const err = failure(doc);
    expect(err.code).toBe(code);
    expect(err.message).toContain(text);
    expectNoValues(err.message);
  });
});

describe("parseDotvaSecrets: strict in value, errors never echo the value", () => {
  it.each([
    ["PAN failing Luhn", { pan: "4242424242424241" }, "PAN_INVALID"],
    ["PAN of 11 digits", { pan: "42424242424" }, "PAN_INVALID"],
    ["PAN of 20 digits", { pan: "42424242424242424242" }, "PAN_INVALID"],
    ["PAN with spaces", { pan: "4242 4242 4242 4242" }, "PAN_INVALID"],
    ["nested PAN failing Luhn", { pan: undefined, card: { number: "4242424242424241" } }, "PAN_INVALID"],
    [
      "PAN with a unicode escape",
      `{"pan":"424242424242424\\u0032","cvv":"123","expiry_month":8,"expiry_year":${YEAR}}`,
      "PAN_INVALID",
    ],
    [
      "PAN negative",
      `{"pan":-4242424242424242,"cvv":"123","expiry_month":8,"expiry_year":${YEAR}}`,
      "PAN_INVALID",
    ],
    [
      "PAN as a float",
      `{"pan":4242424242424242.0,"cvv":"123","expiry_month":8,"expiry_year":${YEAR}}`,
      "PAN_INVALID",
    ],
    ["PAN as an object", { pan: { value: PAN } }, "PAN_INVALID"],
    ["PAN missing", { pan: undefined }, "PAN_INVALID"],
    ["PAN null", { pan: null }, "PAN_INVALID"],
    ["CVV of 2 digits", { cvv: "12" }, "CVV_INVALID"],
    ["CVV of 5 digits", { cvv: "12345" }, "CVV_INVALID"],
    ["CVV with a letter", { cvv: "12a" }, "CVV_INVALID"],
    ["CVV missing", { cvv: undefined }, "CVV_INVALID"],
    ["month 0", { expiry_month: 0 }, "EXPIRY_INVALID"],
    ["month 13", { expiry_month: "13" }, "EXPIRY_INVALID"],
    ["month '008'", { expiry_month: "008" }, "EXPIRY_INVALID"],
    ["month empty", { expiry_month: "" }, "EXPIRY_INVALID"],
    ["year of 3 digits", { expiry_year: "203" }, "EXPIRY_INVALID"],
    ["year 2100", { expiry_year: 2100 }, "EXPIRY_INVALID"],
    ["year 1999", { expiry_year: 1999 }, "EXPIRY_INVALID"],
    ["expiry M/YY", { expiry_month: undefined, expiry_year: undefined, expiry: `8/${YY}` }, "EXPIRY_INVALID"],
    [
      "expiry month 13",
      { expiry_month: undefined, expiry_year: undefined, expiry: `13/${YY}` },
      "EXPIRY_INVALID",
    ],
    [
      "expiry MM-YYYY",
      { expiry_month: undefined, expiry_year: undefined, expiration: `08-${YEAR}` },
      "EXPIRY_INVALID",
    ],
    [
      "expiry YYYY/MM",
      { expiry_month: undefined, expiry_year: undefined, expiration: `${YEAR}/08` },
      "EXPIRY_INVALID",
    ],
    [
      "expiry as a number",
      { expiry_month: undefined, expiry_year: undefined, expiry: 829 },
      "EXPIRY_INVALID",
    ],
    ["not an object", "[1,2]", "SECRETS_MALFORMED"],
    ["not JSON", `pan=${PAN}`, "SECRETS_MALFORMED"],
    [
      "duplicate pan",
      `{"pan":"${PAN}","pan":"${OTHER_PAN}","cvv":"123","expiry_month":8,"expiry_year":${YEAR}}`,
      "SECRETS_MALFORMED",
    ],
    [
      "duplicate member inside card",
      `{"card":{"number":"${PAN}","number":"${OTHER_PAN}"},"cvv":"123","expiry":"08/${YY}"}`,
      "SECRETS_MALFORMED",
    ],
    ["trailing garbage", `${JSON.stringify(valid)}x`, "SECRETS_MALFORMED"],
  ])("%s -> %s", (_name, override, code) => {
    const doc = typeof override === "string" ? override : { ...valid, ...override };
    const err = failure(doc);
    expect(err.code).toBe(code);
    expectNoValues(err.message);
  });
});

describe("a non-default shape through reencryptForKnot, encrypted by other implementations", () => {
  const dotva = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const knot = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const recipient = parseKnotJwk(JSON.stringify(knot.publicKey.export({ format: "jwk" })));
  const HEADER = { alg: "RSA-OAEP-256", enc: "A256GCM" };
  const SECRETS = JSON.stringify({
    card_uuid: "1f0c6a1e-8d7b-4c1a-9a55-0c0f3e9a7b21",
    card: { card_number: PAN, cvc: 737, expiration: `04/${YY}` },
  });

  async function throughCustody(jwe: string) {
    const out = await reencryptForKnot({
      jwe: parseCompactJwe(jwe),
      unwrap: privateKeyUnwrap(dotva.privateKey),
      recipient,
      user: parseKnotUser(USER),
      now: new Date(),
    });
    const { plaintext } = await compactDecrypt(out.jwe, knot.privateKey);
    return { last4: out.cardLast4, payload: JSON.parse(new TextDecoder().decode(plaintext)) };
  }

  const expected = { user: USER, card: { number: PAN, expiration: `04/${YEAR}`, cvv: "737" } };

  it("a JWE made by jose", async () => {
    const jwe = await new CompactEncrypt(new TextEncoder().encode(SECRETS))
      .setProtectedHeader(HEADER)
      .encrypt(dotva.publicKey);
    expect(await throughCustody(jwe)).toStrictEqual({ last4: "4242", payload: expected });
  });

  it("a JWE made by python3-jwcrypto", async () => {
    const jwe = jwcrypto("encrypt", {
      jwk: dotva.publicKey.export({ format: "jwk" }),
      plaintext: SECRETS,
      header: HEADER,
    });
    expect(await throughCustody(jwe)).toStrictEqual({ last4: "4242", payload: expected });
  });
});
