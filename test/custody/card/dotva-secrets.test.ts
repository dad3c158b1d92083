import { describe, expect, it } from "vitest";
import { parseDotvaSecrets } from "../../../src/custody/card/dotva-secrets.js";

const PAN = "4242424242424242";
const parse = (doc: unknown) =>
  parseDotvaSecrets(Buffer.from(typeof doc === "string" ? doc : JSON.stringify(doc)));
const valid = { pan: PAN, cvv: "123", expiry_month: "08", expiry_year: "2030" };

function failure(doc: unknown): { code: string; message: string } {
  try {
    parse(doc);
  } catch (err) {
    return err as { code: string; message: string };
  }
  throw new Error("parse unexpectedly succeeded");
}

describe("parseDotvaSecrets: liberal in shape", () => {
  it.each([
    ["month as '8'", { expiry_month: "8" }, 8, 2030],
    ["month as 8", { expiry_month: 8 }, 8, 2030],
    ["month as '08'", { expiry_month: "08" }, 8, 2030],
    ["month 12", { expiry_month: 12 }, 12, 2030],
    ["year as 2031", { expiry_year: 2031 }, 8, 2031],
    ["year as '31'", { expiry_year: "31" }, 8, 2031],
    ["year as 31", { expiry_year: 31 }, 8, 2031],
  ])("%s", (_name, override, month, year) => {
    const secrets = parse({ ...valid, ...override });
    expect(secrets.expiryMonth).toBe(month);
    expect(secrets.expiryYear).toBe(year);
  });

  it("PAN and CVV as strings or numbers, returned as digit bytes", () => {
    const fromNumbers = parse(`{"pan":${PAN},"cvv":737,"expiry_month":1,"expiry_year":2030}`);
    expect(fromNumbers.pan.toString()).toBe(PAN);
    expect(fromNumbers.cvv.toString()).toBe("737");
    expect(parse({ ...valid, cvv: "0123" }).cvv.toString()).toBe("0123");
  });

  it("PANs of 12 and 19 digits that pass Luhn", () => {
    expect(parse({ ...valid, pan: "500000000009" }).pan.toString()).toBe("500000000009");
    expect(parse({ ...valid, pan: "6011000000000000001" }).pan.toString()).toBe("6011000000000000001");
  });

  it("ignores unknown members, nested ones included, and whitespace", () => {
    const doc = `{ "card_type":"virtual", "pan" : "${PAN}", "meta":{"a":[1,{"b":null}],"c":"\\u00e9"}, "cvv":"123", "expiry_month":8, "expiry_year":2030 }`;
    expect(parse(doc).pan.toString()).toBe(PAN);
  });

  it("returns views into the plaintext, so wiping the plaintext wipes the PAN and CVV", () => {
    const plaintext = Buffer.from(JSON.stringify(valid));
    const secrets = parseDotvaSecrets(plaintext);
    plaintext.fill(0);
    expect(secrets.pan.every((b) => b === 0)).toBe(true);
    expect(secrets.cvv.every((b) => b === 0)).toBe(true);
  });
});

describe("parseDotvaSecrets: strict in value, errors never echo the value", () => {
  it.each([
    ["PAN failing Luhn", { pan: "4242424242424241" }, "PAN_INVALID"],
    ["PAN of 11 digits", { pan: "42424242424" }, "PAN_INVALID"],
    ["PAN of 20 digits", { pan: "42424242424242424242" }, "PAN_INVALID"],
    ["PAN with spaces", { pan: "4242 4242 4242 4242" }, "PAN_INVALID"],
    [
      "PAN with a unicode escape",
      `{"pan":"424242424242424\\u0032","cvv":"123","expiry_month":8,"expiry_year":2030}`,
      "PAN_INVALID",
    ],
    [
      "PAN negative",
      `{"pan":-4242424242424242,"cvv":"123","expiry_month":8,"expiry_year":2030}`,
      "PAN_INVALID",
    ],
    [
      "PAN as a float",
      `{"pan":4242424242424242.0,"cvv":"123","expiry_month":8,"expiry_year":2030}`,
      "PAN_INVALID",
    ],
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
    ["not an object", "[1,2]", "SECRETS_MALFORMED"],
    ["not JSON", "pan=4242424242424242", "SECRETS_MALFORMED"],
    [
      "duplicate pan",
      `{"pan":"${PAN}","pan":"4000056655665556","cvv":"123","expiry_month":8,"expiry_year":2030}`,
      "SECRETS_MALFORMED",
    ],
    ["trailing garbage", `${JSON.stringify(valid)}x`, "SECRETS_MALFORMED"],
  ])("%s -> %s", (_name, override, code) => {
    const doc = typeof override === "string" ? override : { ...valid, ...override };
    const err = failure(doc);
    expect(err.code).toBe(code);
    for (const secret of [PAN, "4242424242424241", "12345", "123", "2030"])
      expect(err.message).not.toContain(secret);
  });
});
