/**
 * Finds the configured RSA key pairs on a logged-in token. The fingerprint comes from the public key
 * object (CKA_MODULUS, CKA_PUBLIC_EXPONENT) turned into SPKI DER, which is what makes a token key
 * and its PEM twin answer to the same `sha256:`; the private object's own modulus must agree, so a
 * public object that merely shares a label cannot lend its fingerprint to another private key.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { type FingerprintForms, fingerprintForms } from "../../../core/crypto/fingerprint.js";
import { KeyStoreError } from "../errors.js";
import type { KeySelector } from "./config.js";
import { findObjects, type PKCS11, pkcs11js, readAttributes } from "./module.js";

export interface DiscoveredKey {
  readonly label: string;
  readonly id: Buffer;
  /** Object handle of the private key; valid until the library is re-initialised. */
  readonly handle: Buffer;
  readonly publicKey: KeyObject;
  readonly spki: Buffer;
  readonly forms: FingerprintForms;
  readonly modulusBytes: number;
  readonly modulusBits: number;
  /** Big-endian, without leading zero bytes: inputs to the raw RSA operation must be below it. */
  readonly modulus: Buffer;
}

export class KeyDiscoveryError extends KeyStoreError {
  readonly code = "PKCS11_KEY_DISCOVERY_FAILED";
}

/**
 * A private key object the store would use although the token lets it out (CKA_EXTRACTABLE, or not
 * CKA_SENSITIVE) or forbids the one operation the store needs (CKA_DECRYPT: both CKM_RSA_PKCS_OAEP and
 * CKM_RSA_X_509 go through C_Decrypt).
 */
export class KeyProtectionError extends KeyStoreError {
  readonly code = "PKCS11_KEY_NOT_PROTECTED";
}

function unsigned(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  return bytes.subarray(start);
}

function selectorTemplate(
  objectClass: number,
  selector?: { label?: string; id?: Buffer },
): pkcs11js.Template {
  const template: pkcs11js.Template = [
    { type: pkcs11js.CKA_CLASS, value: objectClass },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA },
  ];
  if (selector?.label !== undefined) template.push({ type: pkcs11js.CKA_LABEL, value: selector.label });
  if (selector?.id !== undefined && selector.id.length > 0)
    template.push({ type: pkcs11js.CKA_ID, value: selector.id });
  return template;
}

function describe(label: string, id: Buffer): string {
  return `label "${label}" id ${id.length > 0 ? id.toString("hex") : "(none)"}`;
}

function twinOf(
  lib: PKCS11,
  session: Buffer,
  label: string,
  id: Buffer,
  modulus: Buffer,
): DiscoveredKey | undefined {
  // CKA_ID is how PKCS#11 pairs the halves of a key pair; fall back to the label for tokens that leave it empty.
  const candidates = findObjects(
    lib,
    session,
    selectorTemplate(pkcs11js.CKO_PUBLIC_KEY, id.length > 0 ? { id } : { label }),
  );
  for (const candidate of candidates) {
    const [n, e] = readAttributes(lib, session, candidate, [
      pkcs11js.CKA_MODULUS,
      pkcs11js.CKA_PUBLIC_EXPONENT,
    ]);
    if (!n || !e || !unsigned(n).equals(modulus)) continue;
    const publicKey = createPublicKey({
      key: { kty: "RSA", n: modulus.toString("base64url"), e: unsigned(e).toString("base64url") },
      format: "jwk",
    });
    const spki = publicKey.export({ type: "spki", format: "der" });
    return {
      label,
      id,
      handle: Buffer.alloc(0),
      publicKey,
      spki,
      forms: fingerprintForms(publicKey),
      modulusBytes: modulus.length,
      modulusBits: publicKey.asymmetricKeyDetails?.modulusLength ?? modulus.length * 8,
      modulus,
    };
  }
  return undefined;
}

export interface DiscoveryResult {
  readonly keys: DiscoveredKey[];
  /** Private keys skipped under `keys: "all"` because they have no public twin (logged by the caller). */
  readonly skipped: string[];
}

export function discoverKeys(
  lib: PKCS11,
  session: Buffer,
  selection: "all" | readonly KeySelector[],
): DiscoveryResult {
  const keys: DiscoveredKey[] = [];
  const skipped: string[] = [];
  const selectors =
    selection === "all"
      ? [undefined]
      : selection.map((s) => ({
          label: s.label,
          id: s.id === undefined ? undefined : Buffer.from(s.id, "hex"),
        }));
  const seen = new Set<string>();
  for (const selector of selectors) {
    const handles = findObjects(lib, session, selectorTemplate(pkcs11js.CKO_PRIVATE_KEY, selector));
    if (selector !== undefined && handles.length === 0) {
      throw new KeyDiscoveryError(
        `no private key on the token matches the key selector ${describe(selector.label ?? "", selector.id ?? Buffer.alloc(0))}; check object= and id= in the key URI (custody-keys list --pkcs11 shows the token's keys)`,
      );
    }
    if (selector !== undefined && handles.length > 1) {
      throw new KeyDiscoveryError(
        `key selector ${describe(selector.label ?? "", selector.id ?? Buffer.alloc(0))} matches ${handles.length} private keys on the token; it must match exactly one`,
      );
    }
    for (const handle of handles) {
      const [labelBytes, id, n] = readAttributes(lib, session, handle, [
        pkcs11js.CKA_LABEL,
        pkcs11js.CKA_ID,
        pkcs11js.CKA_MODULUS,
      ]);
      const label = labelBytes?.toString("utf8") ?? "";
      const twin = twinOf(lib, session, label, id ?? Buffer.alloc(0), unsigned(n ?? Buffer.alloc(0)));
      if (twin === undefined) {
        if (selector !== undefined) {
          throw new KeyDiscoveryError(
            `private key ${describe(label, id ?? Buffer.alloc(0))} has no matching public key object`,
          );
        }
        skipped.push(describe(label, id ?? Buffer.alloc(0)));
        continue;
      }
      if (seen.has(twin.forms.canonical)) continue;
      seen.add(twin.forms.canonical);
      keys.push({ ...twin, handle });
    }
  }
  return { keys, skipped };
}

/** CK_BBOOL attributes every private key the store uses must have, with the value they must have. */
const REQUIRED_FLAGS: ReadonlyArray<readonly [name: string, type: number, required: boolean]> = [
  ["CKA_SENSITIVE", pkcs11js.CKA_SENSITIVE, true],
  ["CKA_EXTRACTABLE", pkcs11js.CKA_EXTRACTABLE, false],
  ["CKA_DECRYPT", pkcs11js.CKA_DECRYPT, true],
];

/**
 * Refuses a key the token would let out in plaintext or wrapped (a sensitive, non-extractable key
 * cannot leave the token by any PKCS#11 call, so a custody host compromise cannot copy it), or that
 * cannot decrypt. The message names the key by label and id and the attributes at fault, nothing else.
 */
export function assertKeyProtected(lib: PKCS11, session: Buffer, key: DiscoveredKey): void {
  let values: Buffer[];
  try {
    values = readAttributes(
      lib,
      session,
      key.handle,
      REQUIRED_FLAGS.map(([, type]) => type),
    );
  } catch (err) {
    throw new KeyProtectionError(
      `private key ${describe(key.label, key.id)}: CKA_SENSITIVE, CKA_EXTRACTABLE and CKA_DECRYPT cannot be read (${err instanceof Error ? err.message : "unknown error"}); refusing a key whose protection cannot be checked`,
    );
  }
  const wrong = REQUIRED_FLAGS.filter(([, , required], i) => (values[i]?.[0] === 1) !== required).map(
    ([name, , required]) => `${name} must be ${required}`,
  );
  if (wrong.length > 0) {
    throw new KeyProtectionError(
      `private key ${describe(key.label, key.id)} refused: ${wrong.join(", ")}; generate the key in the token (custody-keys generate --pkcs11) or import it with custody-keys import --pkcs11, which makes it sensitive, non-extractable and decrypt-capable`,
    );
  }
}
