/**
 * Key administration on a token, for the key CLI: generate a key pair inside the token, import one
 * from PEM (migration from the file store), list what is there. Private key objects are always
 * created sensitive and non-extractable, token-resident, decrypt-only in usage: once in the token,
 * the key cannot be read back out by this tool or anyone else.
 */
import { createPrivateKey, randomBytes } from "node:crypto";
import type { Pkcs11StoreConfig } from "./config.js";
import { type DiscoveredKey, discoverKeys } from "./discovery.js";
import { acquireModule, findSlot, type PKCS11, pkcs11js, releaseModule } from "./module.js";
import { loginWithPin } from "./pin.js";

export type TokenAccess = Pick<Pkcs11StoreConfig, "modulePath" | "token" | "pin">;

export interface AdminSession {
  readonly lib: PKCS11;
  readonly session: Buffer;
}

/** Opens a read-write session, logs in, runs `fn`, and closes everything whatever happens. */
export async function withTokenSession<T>(access: TokenAccess, fn: (admin: AdminSession) => Promise<T> | T) {
  const lib = acquireModule(access.modulePath);
  try {
    const slot = findSlot(lib, access.token);
    if (slot === undefined) throw new Error("no present token matches the configured label, serial or slot");
    const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      loginWithPin(lib, session, access.pin);
      return await fn({ lib, session });
    } finally {
      lib.C_CloseSession(session);
    }
  } finally {
    releaseModule(access.modulePath);
  }
}

const attr = (type: number, value: pkcs11js.Attribute["value"]): pkcs11js.Attribute => ({ type, value });

function privateTemplate(label: string, id: Buffer): pkcs11js.Template {
  return [
    attr(pkcs11js.CKA_CLASS, pkcs11js.CKO_PRIVATE_KEY),
    attr(pkcs11js.CKA_KEY_TYPE, pkcs11js.CKK_RSA),
    attr(pkcs11js.CKA_TOKEN, true),
    attr(pkcs11js.CKA_PRIVATE, true),
    attr(pkcs11js.CKA_SENSITIVE, true),
    attr(pkcs11js.CKA_EXTRACTABLE, false),
    attr(pkcs11js.CKA_DECRYPT, true),
    attr(pkcs11js.CKA_SIGN, false),
    attr(pkcs11js.CKA_UNWRAP, false),
    attr(pkcs11js.CKA_LABEL, label),
    attr(pkcs11js.CKA_ID, id),
  ];
}

function publicTemplate(label: string, id: Buffer): pkcs11js.Template {
  return [
    attr(pkcs11js.CKA_CLASS, pkcs11js.CKO_PUBLIC_KEY),
    attr(pkcs11js.CKA_KEY_TYPE, pkcs11js.CKK_RSA),
    attr(pkcs11js.CKA_TOKEN, true),
    attr(pkcs11js.CKA_PRIVATE, false),
    attr(pkcs11js.CKA_ENCRYPT, true),
    attr(pkcs11js.CKA_VERIFY, false),
    attr(pkcs11js.CKA_WRAP, false),
    attr(pkcs11js.CKA_LABEL, label),
    attr(pkcs11js.CKA_ID, id),
  ];
}

/** A random 8-byte CKA_ID, so two keys with the same label still pair up correctly. */
export function newKeyId(): Buffer {
  return randomBytes(8);
}

export async function generateInToken(
  admin: AdminSession,
  label: string,
  id: Buffer,
  bits: number,
): Promise<void> {
  await admin.lib.C_GenerateKeyPairAsync(
    admin.session,
    { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN },
    [
      ...publicTemplate(label, id),
      attr(pkcs11js.CKA_MODULUS_BITS, bits),
      attr(pkcs11js.CKA_PUBLIC_EXPONENT, Buffer.from([1, 0, 1])),
    ],
    privateTemplate(label, id).filter(
      (a) => a.type !== pkcs11js.CKA_CLASS && a.type !== pkcs11js.CKA_KEY_TYPE,
    ),
  );
}

/**
 * The integers of a DER RSAPrivateKey (RFC 8017 A.1.2: version, n, e, d, p, q, dp, dq, qi), each copied
 * into its own Buffer without its sign byte. Read straight from the DER rather than through a JWK export,
 * which would hand back the private components as base64url JS strings that nothing can wipe.
 */
function rsaPrivateKeyIntegers(der: Buffer): Buffer[] {
  let at = 0;
  const header = (tag: number): number => {
    if (der[at++] !== tag) throw new Error("not a DER RSAPrivateKey");
    let length = der[at++] ?? 0;
    if (length & 0x80) {
      const octets = length & 0x7f;
      if (octets < 1 || octets > 3) throw new Error("not a DER RSAPrivateKey");
      length = der.readUIntBE(at, octets);
      at += octets;
    }
    if (at + length > der.length) throw new Error("not a DER RSAPrivateKey");
    return length;
  };
  header(0x30);
  const integers: Buffer[] = [];
  for (let i = 0; i < 9; i++) {
    const length = header(0x02);
    let start = at;
    while (start < at + length - 1 && der[start] === 0) start++;
    integers.push(Buffer.from(der.subarray(start, at + length)));
    at += length;
  }
  return integers;
}

/** Imports an RSA private key (PKCS#8 or PKCS#1 PEM) and its public half. */
export function importIntoToken(
  admin: AdminSession,
  label: string,
  id: Buffer,
  pem: string | Buffer,
  passphrase?: Buffer,
) {
  const key = createPrivateKey(passphrase === undefined ? { key: pem } : { key: pem, passphrase });
  if (key.asymmetricKeyType !== "rsa") throw new Error("only RSA private keys can be imported");
  const der = key.export({ type: "pkcs1", format: "der" });
  let components: Buffer[] = [];
  try {
    components = rsaPrivateKeyIntegers(der);
    const [, n, e, d, p, q, dp, dq, qi] = components as [
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
      Buffer,
    ];
    admin.lib.C_CreateObject(admin.session, [
      ...publicTemplate(label, id),
      attr(pkcs11js.CKA_MODULUS, n),
      attr(pkcs11js.CKA_PUBLIC_EXPONENT, e),
    ]);
    admin.lib.C_CreateObject(admin.session, [
      ...privateTemplate(label, id),
      attr(pkcs11js.CKA_MODULUS, n),
      attr(pkcs11js.CKA_PUBLIC_EXPONENT, e),
      attr(pkcs11js.CKA_PRIVATE_EXPONENT, d),
      attr(pkcs11js.CKA_PRIME_1, p),
      attr(pkcs11js.CKA_PRIME_2, q),
      attr(pkcs11js.CKA_EXPONENT_1, dp),
      attr(pkcs11js.CKA_EXPONENT_2, dq),
      attr(pkcs11js.CKA_COEFFICIENT, qi),
    ]);
  } finally {
    der.fill(0);
    for (const component of components) component.fill(0);
  }
}

export function listTokenKeys(admin: AdminSession): DiscoveredKey[] {
  return discoverKeys(admin.lib, admin.session, "all").keys;
}

/** Whether the private key object can leave the token: both flags must say no. */
export function privateKeyFlags(
  admin: AdminSession,
  key: DiscoveredKey,
): { sensitive: boolean; extractable: boolean } {
  const [sensitive, extractable] = admin.lib.C_GetAttributeValue(admin.session, key.handle, [
    { type: pkcs11js.CKA_SENSITIVE },
    { type: pkcs11js.CKA_EXTRACTABLE },
  ]);
  return { sensitive: sensitive?.value[0] === 1, extractable: extractable?.value[0] === 1 };
}
