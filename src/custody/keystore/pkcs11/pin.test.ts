/**
 * The token PIN: `env:` sources refused in production (the value would sit in /proc/<pid>/environ and
 * every child's environment for the life of the process), PIN files read into a Buffer that is zeroed
 * once C_Login returned, on a real SoftHSM2 token, and PIN files others can read refused before a byte
 * of them is read.
 */
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { baseEnv, testPki } from "../../../tools/testing/custody-harness.js";
import { createTestToken, SOFTHSM_MODULE } from "../../../tools/testing/softhsm.js";
import { ConfigError, loadConfig } from "../../config.js";
import { acquireModule, findSlot, pkcs11js, releaseModule } from "./module.js";
import { loginWithPin, PinSourceError } from "./pin.js";

// Session states of PKCS#11 (pkcs11js does not export them): read-only, without and with the user.
const CKS_RO_PUBLIC_SESSION = 0;
const CKS_RO_USER_FUNCTIONS = 1;

const token = createTestToken("custody-pin");
afterAll(() => token.remove());

describe("PIN source in custody's config", () => {
  const pki = testPki();
  const uri = (pinSource: string) =>
    `pkcs11:token=${token.label};object=k?module-path=${SOFTHSM_MODULE}&pin-source=${pinSource}`;
  const env = (pinSource: string, mode?: string) =>
    baseEnv(pki, {
      CUSTODY_KEYSTORE: "pkcs11",
      CUSTODY_PKCS11_URI: uri(pinSource),
      // Required in production by the audit sink; irrelevant to the PIN rule.
      CUSTODY_AUDIT_FILE: join(token.dir, "audit.log"),
      ...(mode ? { CUSTODY_ENV: mode } : {}),
    });

  it("refuses pin-source=env: in production (the default), naming the variable and the file: alternative", () => {
    for (const mode of [undefined, "production"]) {
      let refusal: unknown;
      try {
        loadConfig(env("env:CUSTODY_PKCS11_PIN", mode));
      } catch (err) {
        refusal = err;
      }
      expect(refusal).toBeInstanceOf(ConfigError);
      expect((refusal as Error).message).toMatch(
        /^CUSTODY_PKCS11_URI: pin-source=env:CUSTODY_PKCS11_PIN is refused with CUSTODY_ENV=production; use pin-source=file:/,
      );
    }
  });

  it("accepts pin-source=file: in production and env: in development", () => {
    const production = loadConfig(env(`file:${token.pinFile}`));
    expect(production.keyStore).toMatchObject({ kind: "pkcs11", pkcs11: { pin: { file: token.pinFile } } });
    const development = loadConfig(env("env:CUSTODY_PKCS11_PIN", "development"));
    expect(development.keyStore).toMatchObject({
      kind: "pkcs11",
      pkcs11: { pin: { env: "CUSTODY_PKCS11_PIN" } },
    });
  });
});

describe("loginWithPin on SoftHSM2", () => {
  const lib = acquireModule(SOFTHSM_MODULE);
  afterAll(() => releaseModule(SOFTHSM_MODULE));
  const slot = findSlot(lib, { label: token.label })!;
  const read: Buffer[] = [];
  const capture = (path: string) => {
    const bytes = readFileSync(path);
    read.push(bytes);
    return bytes;
  };
  const file = (name: string, text: string, mode = 0o600) => {
    const path = join(token.dir, name);
    writeFileSync(path, text, { mode });
    chmodSync(path, mode);
    return path;
  };
  const withSession = (fn: (session: Buffer) => void) => {
    const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    try {
      fn(session);
    } finally {
      lib.C_CloseSession(session);
    }
  };

  it("logs in from the file and leaves the Buffer it read all zeros", () => {
    read.length = 0;
    withSession((session) => {
      loginWithPin(lib, session, { file: token.pinFile }, capture);
      expect(lib.C_GetSessionInfo(session).state).toBe(CKS_RO_USER_FUNCTIONS);
      lib.C_Logout(session);
    });
    expect(read).toHaveLength(1);
    expect(read[0]!.length).toBeGreaterThan(4);
    expect(read[0]!.every((byte) => byte === 0)).toBe(true);
  });

  it("leaves the Buffer all zeros when the token refuses the PIN", () => {
    read.length = 0;
    const wrong = file("wrong-pin", "not-the-pin-123\n");
    withSession((session) => {
      expect(() => loginWithPin(lib, session, { file: wrong }, capture)).toThrow(/CKR_PIN_INCORRECT/);
      expect(lib.C_GetSessionInfo(session).state).toBe(CKS_RO_PUBLIC_SESSION);
    });
    expect(read).toHaveLength(1);
    expect(read[0]!.every((byte) => byte === 0)).toBe(true);
  });

  it.each([
    ["group", 0o640],
    ["others", 0o604],
  ])("refuses a PIN file readable by %s, naming it, without reading it", (_who, mode) => {
    read.length = 0;
    const open = file(`open-pin-${mode.toString(8)}`, `${readFileSync(token.pinFile, "utf8")}`, mode);
    withSession((session) => {
      let refusal: unknown;
      try {
        loginWithPin(lib, session, { file: open }, capture);
      } catch (err) {
        refusal = err;
      }
      expect(refusal).toBeInstanceOf(PinSourceError);
      expect(refusal).toMatchObject({ code: "PKCS11_PIN_SOURCE_INVALID" });
      expect((refusal as Error).message).toBe(
        `PIN file ${open} is accessible to group or others; chmod 600 it`,
      );
      expect(lib.C_GetSessionInfo(session).state).toBe(CKS_RO_PUBLIC_SESSION);
    });
    expect(read).toEqual([]);
  });
});
