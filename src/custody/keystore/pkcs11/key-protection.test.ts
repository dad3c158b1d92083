/**
 * What the PKCS#11 store refuses to load, on a real SoftHSM2 token: a private key the token would let
 * out (CKA_EXTRACTABLE, made by OpenSC's pkcs11-tool; not CKA_SENSITIVE, made through pkcs11js), a key
 * that cannot decrypt, a key URI that selects nothing, and a token with no key pair at all. Each
 * refusal names the key by label and id and the attribute at fault, and carries a stable code.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestToken, SOFTHSM_MODULE } from "../../../tools/testing/softhsm.js";
import { KeyStoreError } from "../errors.js";
import { configFromUris, parsePkcs11Config } from "./config.js";
import { pkcs11js } from "./module.js";
import { Pkcs11KeyStore } from "./pkcs11-key-store.js";
import { withTokenSession } from "./token-admin.js";

const token = createTestToken("custody-protect");
// A second token in the same token directory (SoftHSM2 reads one configuration per process).
const empty = { label: "custody-empty", pinFile: token.pinFile };
execFileSync(
  "softhsm2-util",
  [
    "--init-token",
    "--free",
    "--label",
    empty.label,
    "--so-pin",
    "so-secret",
    "--pin",
    readFileSync(token.pinFile, "utf8").trim(),
  ],
  { stdio: "pipe" },
);

/** A key pair made through pkcs11js with the private key's flags as given, the rest as custody makes them. */
async function generateWith(label: string, id: string, flags: { sensitive: boolean; decrypt: boolean }) {
  await withTokenSession(parsePkcs11Config(token.config()), (admin) =>
    admin.lib.C_GenerateKeyPairAsync(
      admin.session,
      { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN },
      [
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_ENCRYPT, value: true },
        { type: pkcs11js.CKA_LABEL, value: label },
        { type: pkcs11js.CKA_ID, value: Buffer.from(id, "hex") },
        { type: pkcs11js.CKA_MODULUS_BITS, value: 2048 },
        { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
      ],
      [
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: flags.sensitive },
        { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        { type: pkcs11js.CKA_DECRYPT, value: flags.decrypt },
        { type: pkcs11js.CKA_SIGN, value: !flags.decrypt },
        { type: pkcs11js.CKA_LABEL, value: label },
        { type: pkcs11js.CKA_ID, value: Buffer.from(id, "hex") },
      ],
    ),
  );
}

beforeAll(async () => {
  token.generateWithPkcs11Tool("good", "01");
  // Another tool's key that may leave the token: pkcs11-tool's own flag, as an operator would type it.
  token.tool(
    "--keypairgen",
    "--key-type",
    "rsa:2048",
    "--label",
    "leaky",
    "--id",
    "02",
    "--usage-decrypt",
    "--sensitive",
    "--extractable",
  );
  await generateWith("readable", "03", { sensitive: false, decrypt: true });
  await generateWith("signer", "04", { sensitive: true, decrypt: false });
});

afterAll(() => token.remove());

const uri = (path: string, on: { label: string; pinFile: string } = token) =>
  `pkcs11:token=${on.label}${path}?module-path=${SOFTHSM_MODULE}&pin-source=file:${on.pinFile}`;

async function refusal(uris: string[]): Promise<KeyStoreError> {
  let store: Pkcs11KeyStore | undefined;
  try {
    store = await Pkcs11KeyStore.open(configFromUris(uris, { sessions: 1 }));
  } catch (err) {
    expect(err).toBeInstanceOf(KeyStoreError);
    return err as KeyStoreError;
  }
  await store.close();
  throw new Error(`the store opened with ${store.list().length} keys`);
}

describe("PKCS#11 key protection at load", () => {
  it("loads a sensitive, non-extractable, decrypt-capable key", async () => {
    const store = await Pkcs11KeyStore.open(
      configFromUris([uri(";object=good;type=private")], { sessions: 1 }),
    );
    try {
      expect(store.list().map((k) => k.label)).toEqual(["good"]);
    } finally {
      await store.close();
    }
  });

  it.each([
    [
      "an extractable key made by pkcs11-tool",
      "leaky",
      'label "leaky" id 02',
      "CKA_EXTRACTABLE must be false",
    ],
    ["a key that is not sensitive", "readable", 'label "readable" id 03', "CKA_SENSITIVE must be true"],
    ["a key that cannot decrypt", "signer", 'label "signer" id 04', "CKA_DECRYPT must be true"],
  ])("refuses %s, naming the key and the attribute", async (_what, label, named, rule) => {
    const err = await refusal([uri(`;object=${label};type=private`)]);
    expect(err.code).toBe("PKCS11_KEY_NOT_PROTECTED");
    expect(err.message).toContain(`private key ${named} refused: ${rule}`);
    expect(err.message).not.toMatch(/[0-9a-f]{64}/);
  });

  it("refuses the whole set when a URI selecting every key on the token would take an unprotected one", async () => {
    const err = await refusal([uri("")]);
    expect(err.code).toBe("PKCS11_KEY_NOT_PROTECTED");
    // Alongside a good key: a selection is all or nothing.
    const mixed = await refusal([uri(";object=good"), uri(";object=leaky")]);
    expect(mixed.message).toContain('label "leaky" id 02');
  });

  it("refuses a key URI whose label or id selects no object, naming the selector", async () => {
    const byLabel = await refusal([uri(";object=absent;type=private")]);
    expect(byLabel.code).toBe("PKCS11_KEY_DISCOVERY_FAILED");
    expect(byLabel.message).toMatch(
      /^no private key on the token matches the key selector label "absent" id \(none\); check object= and id= in the key URI/,
    );
    const byId = await refusal([uri(";object=good;id=%7f")]);
    expect(byId.message).toContain('matches the key selector label "good" id 7f');
  });

  it("refuses a token without any key pair when the URI selects every key", async () => {
    const err = await refusal([uri("", empty)]);
    expect(err.code).toBe("PKCS11_KEY_DISCOVERY_FAILED");
    expect(err.message).toBe(
      `token "${empty.label}" holds no RSA key pair (private key with its public key object) for the key URI to select`,
    );
  });
});
