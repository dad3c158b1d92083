import { describe, expect, it } from "vitest";
import { expiryFromNow } from "../../tools/testing/expiry.js";
import { USER } from "../../tools/testing/profile.js";
import { parseDotvaSecrets } from "./dotva-secrets.js";
import { assertNotExpired, buildKnotPayload } from "./knot-payload.js";
import { parseKnotUser } from "./knot-user.js";

const secrets = (month: number | string, year: number | string) =>
  parseDotvaSecrets(
    Buffer.from(
      JSON.stringify({ pan: "4242424242424242", cvv: "012", expiry_month: month, expiry_year: year }),
    ),
  );

const expiry = expiryFromNow();

describe("buildKnotPayload", () => {
  it("produces Knot's documented shape exactly, with MM/YYYY expiration", () => {
    const twoDigits = (n: number) => String(n % 100).padStart(2, "0");
    const payload = buildKnotPayload(
      parseKnotUser(USER),
      secrets(String(expiry.month), twoDigits(expiry.year)),
    );
    expect(JSON.parse(payload.toString())).toStrictEqual({
      user: USER,
      card: { number: "4242424242424242", expiration: expiry.mmYyyy, cvv: "012" },
    });
    expect(Object.keys(JSON.parse(payload.toString()))).toEqual(["user", "card"]);
  });

  it("escapes profile text as JSON", () => {
    const user = parseKnotUser({ ...USER, name: { first_name: 'O"Brien\\', last_name: "Zoë" } });
    expect(
      JSON.parse(buildKnotPayload(user, secrets(expiry.month, expiry.year)).toString()).user.name,
    ).toEqual({
      first_name: 'O"Brien\\',
      last_name: "Zoë",
    });
  });

  it("leaves street2 out when the profile has none (proto3 sends an empty string)", () => {
    const user = parseKnotUser({ ...USER, address: { ...USER.address, street2: "" } });
    expect(
      JSON.parse(buildKnotPayload(user, secrets(expiry.month, expiry.year)).toString()).user.address,
    ).not.toHaveProperty("street2");
  });
});

describe("assertNotExpired", () => {
  const lastSecondOf = (e: { expiredFrom: Date }) => new Date(e.expiredFrom.getTime() - 1000);
  it("accepts a card through the last day of its expiry month (UTC)", () => {
    expect(() => assertNotExpired(secrets(expiry.month, expiry.year), lastSecondOf(expiry))).not.toThrow();
    expect(() => assertNotExpired(secrets(expiry.month, expiry.year), new Date())).not.toThrow();
  });
  it("reports CARD_EXPIRED from the first day of the next month", () => {
    expect(() => assertNotExpired(secrets(expiry.month, expiry.year), expiry.expiredFrom)).toThrow(
      expect.objectContaining({ code: "CARD_EXPIRED" }),
    );
    const lastMonth = expiryFromNow(-1);
    expect(() => assertNotExpired(secrets(lastMonth.month, lastMonth.year), new Date())).toThrow(
      expect.objectContaining({ code: "CARD_EXPIRED" }),
    );
  });
  it("rolls December over into January of the next year", () => {
    const newYear = new Date(Date.UTC(expiry.year + 1, 0, 1));
    expect(() =>
      assertNotExpired(secrets(12, expiry.year), lastSecondOf({ expiredFrom: newYear })),
    ).not.toThrow();
    expect(() => assertNotExpired(secrets(12, expiry.year), newYear)).toThrow(
      expect.objectContaining({ code: "CARD_EXPIRED" }),
    );
  });
});

describe("parseKnotUser", () => {
  it.each([
    ["missing first name", { ...USER, name: { last_name: "L" } }, "user.name.first_name"],
    ["blank city", { ...USER, address: { ...USER.address, city: "  " } }, "user.address.city"],
    ["alpha-3 country", { ...USER, address: { ...USER.address, country: "USA" } }, "user.address.country"],
    ["unassigned country", { ...USER, address: { ...USER.address, country: "XX" } }, "user.address.country"],
    ["lower-case country", { ...USER, address: { ...USER.address, country: "us" } }, "user.address.country"],
    ["phone without +", { ...USER, phone_number: "14155550123" }, "user.phone_number"],
    ["phone with spaces", { ...USER, phone_number: "+1 415 555 0123" }, "user.phone_number"],
    ["control character", { ...USER, name: { ...USER.name, last_name: "L\u0000" } }, "user.name.last_name"],
    ["no user", undefined, "user"],
  ])("rejects %s with USER_PROFILE_INVALID naming %s", (_name, input, path) => {
    try {
      parseKnotUser(input);
      expect.unreachable();
    } catch (err) {
      expect((err as { code: string }).code).toBe("USER_PROFILE_INVALID");
      expect((err as Error).message.startsWith(`${path} `)).toBe(true);
    }
  });
});
