/**
 * RFC 7512 URI parsing and the PKCS#11 store config: what operators write, what is refused and why.
 */
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { configFromUris, Pkcs11ConfigError, parsePkcs11Config } from "./config.js";
import { PinSourceError, readPin } from "./pin.js";
import { formatKeyUri, Pkcs11UriError, parsePkcs11Uri } from "./uri.js";

const MODULE = "/usr/lib/softhsm/libsofthsm2.so";

describe("parsePkcs11Uri", () => {
  it("reads path and query attributes with percent-decoding", () => {
    expect(
      parsePkcs11Uri(
        `pkcs11:token=custody%20prod;object=dotva-2026;id=%01%ff;type=private;slot-id=3?module-path=${MODULE}&pin-source=file:/etc/custody/pin`,
      ),
    ).toEqual({
      token: "custody prod",
      object: "dotva-2026",
      id: Buffer.from([0x01, 0xff]),
      type: "private",
      slotId: 3,
      modulePath: MODULE,
      pinSource: "file:/etc/custody/pin",
    });
  });

  it.each([
    ["pkcs11:token=a?pin-value=1234", /pin-value is refused/],
    ["pkcs11:token=a;tokn=b", /tokn is not supported/],
    ["pkcs11:token=a;token=b", /appears twice/],
    ["pkcs11:object=%zz", /malformed percent escape/],
    ["pkcs11:type=secret", /type must be one of/],
    ["pkcs11:slot-id=x", /decimal number/],
    ["pkcs11:token", /name=value/],
    ["file:/etc/key.pem", /starts with pkcs11:/],
  ])("refuses %s", (uri, message) => {
    expect(() => parsePkcs11Uri(uri)).toThrow(Pkcs11UriError);
    expect(() => parsePkcs11Uri(uri)).toThrow(message);
  });

  it("formats a key URI that parses back to the same token, label and id", () => {
    const uri = formatKeyUri("custody prod", "dotva;2026", Buffer.from([0, 1]));
    expect(uri).toBe("pkcs11:token=custody%20prod;object=dotva%3B2026;id=%00%01;type=private");
    expect(parsePkcs11Uri(uri)).toMatchObject({
      token: "custody prod",
      object: "dotva;2026",
      id: Buffer.from([0, 1]),
    });
  });
});

describe("PKCS#11 store config", () => {
  it("builds a config from key URIs: one key per URI, or every key pair when no object or id is named", () => {
    const q = `?module-path=${MODULE}&pin-source=env:CUSTODY_PKCS11_PIN`;
    const two = configFromUris([`pkcs11:token=custody;object=a${q}`, "pkcs11:token=custody;id=%0a"]);
    expect(two).toMatchObject({
      modulePath: MODULE,
      token: { label: "custody" },
      pin: { env: "CUSTODY_PKCS11_PIN" },
      keys: [{ label: "a" }, { id: "0a" }],
      mechanism: "auto",
      sessions: 4,
    });
    expect(configFromUris([`pkcs11:token=custody${q}`], { mechanism: "rsa-x509" })).toMatchObject({
      keys: "all",
      mechanism: "rsa-x509",
    });
  });

  it.each([
    [["pkcs11:token=a;object=k?pin-source=file:/p"], /modulePath/],
    [[`pkcs11:token=a;object=k?module-path=${MODULE}`], /pin/],
    [[`pkcs11:token=a?module-path=${MODULE}&pin-source=https://x`], /pin-source must be/],
    [[`pkcs11:token=a?module-path=${MODULE}&pin-source=file:/p`, "pkcs11:token=b"], /same token/],
    [[`pkcs11:token=a;type=public?module-path=${MODULE}&pin-source=file:/p`], /type=private/],
    [[`pkcs11:object=k?module-path=${MODULE}&pin-source=file:/p`], /token/],
  ])("refuses %j", (uris, message) => {
    expect(() => configFromUris(uris)).toThrow(Pkcs11ConfigError);
    expect(() => configFromUris(uris)).toThrow(message);
  });

  it("refuses a relative module path, unknown settings and an unknown mechanism", () => {
    const base = { modulePath: MODULE, token: { label: "t" }, pin: { file: "/p" }, keys: "all" };
    expect(parsePkcs11Config(base).sessions).toBe(4);
    expect(() => parsePkcs11Config({ ...base, modulePath: "libsofthsm2.so" })).toThrow(/absolute/);
    expect(() => parsePkcs11Config({ ...base, pinValue: "1234" })).toThrow(Pkcs11ConfigError);
    expect(() => parsePkcs11Config({ ...base, mechanism: "rsa-pkcs" })).toThrow(/mechanism/);
  });
});

describe("readPin", () => {
  const dir = mkdtempSync(join(tmpdir(), "pin-"));

  it("reads a 0600 file without its trailing newline, and an environment variable", () => {
    const file = join(dir, "pin");
    writeFileSync(file, "123456\n", { mode: 0o600 });
    expect(readPin({ file })).toBe("123456");
    process.env.TEST_PKCS11_PIN = "654321";
    expect(readPin({ env: "TEST_PKCS11_PIN" })).toBe("654321");
  });

  it("refuses a file others can read, a missing file and an empty variable, without echoing a PIN", () => {
    const open = join(dir, "open-pin");
    writeFileSync(open, "987654\n");
    chmodSync(open, 0o644);
    expect(() => readPin({ file: open })).toThrow(/chmod 600/);
    expect(() => readPin({ file: join(dir, "absent") })).toThrow(/ENOENT/);
    expect(() => readPin({ env: "TEST_PKCS11_PIN_UNSET" })).toThrow(PinSourceError);
    try {
      readPin({ file: open });
    } catch (err) {
      expect(String(err)).not.toContain("987654");
    }
  });
});
