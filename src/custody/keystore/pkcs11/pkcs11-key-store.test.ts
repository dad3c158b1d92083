/**
 * The PKCS#11 store on a real SoftHSM2 token: a key generated in the token by OpenSC's pkcs11-tool
 * (non-extractable, sensitive) decrypts a JWE made by jose; a key imported from PEM answers to the
 * same fingerprint as its file twin; SoftHSM2 2.6's refusal of OAEP-SHA-256 leads to the raw RSA path,
 * logged per key, and every Wycheproof OAEP-SHA-256 case goes through that path.
 */
import {
  constants,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  publicEncrypt,
} from "node:crypto";
import { Writable } from "node:stream";
import { CompactEncrypt } from "jose";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fingerprintForms, spkiFingerprint } from "../../../core/crypto/fingerprint.js";
import { decryptJwe, parseCompactJwe } from "../../../core/crypto/jwe-decrypt.js";
import { createTestToken, SOFTHSM_MODULE } from "../../../tools/testing/softhsm.js";
import { readOaepSha256Vectors } from "../../../tools/testing/wycheproof.js";
import { configFromUris, parsePkcs11Config } from "./config.js";
import { MechanismError } from "./mechanism.js";
import { Pkcs11KeyStore } from "./pkcs11-key-store.js";
import { importIntoToken, listTokenKeys, privateKeyFlags, withTokenSession } from "./token-admin.js";

const wycheproof = readOaepSha256Vectors()[0]!;
const wycheproofKey = createPrivateKey(wycheproof.privateKeyPem);

const token = createTestToken();
const fileTwin = generateKeyPairSync("rsa", { modulusLength: 2048 });
const logLines: Record<string, unknown>[] = [];
const log = pino(
  { level: "info" },
  new Writable({
    write(chunk, _enc, done) {
      logLines.push(JSON.parse(chunk.toString()));
      done();
    },
  }),
);
let store: Pkcs11KeyStore;

beforeAll(async () => {
  token.generateWithPkcs11Tool("dotva-hsm", "01");
  await withTokenSession(parsePkcs11Config(token.config()), (admin) => {
    importIntoToken(
      admin,
      "dotva-migrated",
      Buffer.from("02", "hex"),
      fileTwin.privateKey.export({ type: "pkcs8", format: "pem" }),
    );
    importIntoToken(admin, "wycheproof", Buffer.from("03", "hex"), wycheproof.privateKeyPem);
  });
  store = await Pkcs11KeyStore.open(parsePkcs11Config(token.config()), log);
});

afterAll(async () => {
  await store?.close();
  token.remove();
});

const byLabel = (label: string) => store.list().find((k) => k.label === label)!;

async function jweTo(spki: Buffer, plaintext: string): Promise<string> {
  return new CompactEncrypt(new TextEncoder().encode(plaintext))
    .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM" })
    .encrypt(createPublicKey({ key: spki, format: "der", type: "spki" }));
}

describe("Pkcs11KeyStore on SoftHSM2", () => {
  it("finds every key pair, falls back to CKM_RSA_X_509 where OAEP-SHA-256 is refused, and logs the path per key", () => {
    expect(
      store
        .list()
        .map((k) => k.label)
        .sort(),
    ).toEqual(["dotva-hsm", "dotva-migrated", "wycheproof"]);
    expect(store.health.healthy()).toBe(true);
    for (const key of store.list()) {
      expect(key.mechanism).toBe("rsa-x509");
      expect(key.source).toMatch(/^pkcs11:token=custody-test;object=[a-z-]+;id=%0[123];type=private$/);
      const line = logLines.find((l) => l.fingerprint === key.fingerprint);
      expect(line?.mechanism).toBe("rsa-x509");
      expect(line?.oaepRefused).toBe("CKR_ARGUMENTS_BAD");
    }
  });

  it("decrypts a jose JWE with a key generated non-extractable and sensitive inside the token", async () => {
    const key = byLabel("dotva-hsm");
    const flags = await withTokenSession(parsePkcs11Config(token.config()), (admin) => {
      const inToken = listTokenKeys(admin).find((k) => k.label === "dotva-hsm")!;
      expect(() =>
        admin.lib.C_GetAttributeValue(admin.session, inToken.handle, [
          { type: 0x123 /* CKA_PRIVATE_EXPONENT */ },
        ]),
      ).toThrow(/CKR_ATTRIBUTE_SENSITIVE/);
      return privateKeyFlags(admin, inToken);
    });
    expect(flags).toEqual({ sensitive: true, extractable: false });

    const jwe = parseCompactJwe(await jweTo(key.spki, '{"pan":"4111111111111111"}'));
    const plaintext = await decryptJwe(jwe, store.get(key.fingerprint)!.unwrap);
    expect(plaintext.toString()).toBe('{"pan":"4111111111111111"}');
  });

  it("gives a key imported from PEM the fingerprint of its file twin, under every alias", async () => {
    const key = byLabel("dotva-migrated");
    const twin = fingerprintForms(fileTwin.publicKey);
    expect(key.fingerprint).toBe(twin.canonical);
    expect(key.fingerprint).toBe(spkiFingerprint(fileTwin.publicKey.export({ type: "spki", format: "der" })));
    for (const alias of twin.aliases) expect(store.get(alias)?.info.label).toBe("dotva-migrated");
    const jwe = parseCompactJwe(await jweTo(key.spki, "migrated"));
    expect((await decryptJwe(jwe, store.get(key.fingerprint)!.unwrap)).toString()).toBe("migrated");
  });

  it("runs every Wycheproof OAEP-SHA-256 case through the token's raw RSA and the in-process decode", async () => {
    const key = byLabel("wycheproof");
    expect(key.fingerprint).toBe(fingerprintForms(createPublicKey(wycheproofKey)).canonical);
    const cases = wycheproof.tests;
    expect(cases).toHaveLength(37);
    const { unwrap } = store.get(key.fingerprint)!;
    let decrypted = 0;
    for (const test of cases) {
      const ct = Buffer.from(test.ct, "hex");
      const [first, second] = [await unwrap(ct), await unwrap(ct)];
      expect(first, `tc${test.tcId}`).toHaveLength(32);
      if (test.result === "valid" && test.label === "" && test.msg.length === 64) {
        expect(first.toString("hex"), `tc${test.tcId}`).toBe(test.msg);
        expect(second.toString("hex"), `tc${test.tcId}`).toBe(test.msg);
        decrypted++;
      } else {
        // Invalid, valid only under a label JWE never uses, or no 256-bit key: a fresh random key.
        expect(first.toString("hex"), `tc${test.tcId}`).not.toBe(test.msg);
        expect(first.equals(second), `tc${test.tcId}`).toBe(false);
      }
    }
    expect(decrypted).toBe(1);
    expect(store.health.healthy()).toBe(true);
  });

  it("finds no unknown fingerprint, and answers a ciphertext of the wrong size or value with a random key", async () => {
    const key = byLabel("dotva-hsm");
    const ct = publicEncrypt(
      {
        key: createPublicKey({ key: key.spki, format: "der", type: "spki" }),
        padding: constants.RSA_PKCS1_OAEP_PADDING,
        oaepHash: "sha256",
      },
      Buffer.alloc(32, 1),
    );
    expect(store.get(`sha256:${"0".repeat(64)}`)).toBeUndefined();
    const { unwrap } = store.get(key.fingerprint)!;
    for (const bad of [ct.subarray(1), Buffer.alloc(256, 0xff)]) {
      const cek = await unwrap(bad);
      expect(cek).toHaveLength(32);
      expect(cek.equals(Buffer.alloc(32, 1))).toBe(false);
    }
    expect((await unwrap(ct)).equals(Buffer.alloc(32, 1))).toBe(true);
  });

  it("opens from an RFC 7512 URI naming one key, and refuses a pinned mechanism the token lacks", async () => {
    const uri = `pkcs11:token=${token.label};object=dotva-hsm;type=private?module-path=${SOFTHSM_MODULE}&pin-source=file:${token.pinFile}`;
    const one = await Pkcs11KeyStore.open(configFromUris([uri], { sessions: 1 }));
    try {
      expect(one.list().map((k) => k.fingerprint)).toEqual([byLabel("dotva-hsm").fingerprint]);
    } finally {
      await one.close();
    }
    await expect(
      Pkcs11KeyStore.open(
        parsePkcs11Config(token.config({ keys: [{ id: "01" }], mechanism: "rsa-pkcs-oaep" })),
      ),
    ).rejects.toThrow(MechanismError);
    // The first store shares the library; the failed and closed ones must not have taken it down.
    const stillUp = Buffer.alloc(32, 0x2a);
    const ct = publicEncrypt(
      { key: fileTwin.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
      stillUp,
    );
    expect(await store.get(byLabel("dotva-migrated").fingerprint)!.unwrap(ct)).toEqual(stillUp);
  });
});
