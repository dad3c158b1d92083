/**
 * The two ways a token can perform RSA-OAEP-256 decryption, and the start-up probe that picks one.
 *
 * CKM_RSA_PKCS_OAEP with SHA-256/MGF1-SHA-256 keeps the padding check inside the token. Tokens that
 * only do OAEP with SHA-1 (SoftHSM2 2.6 answers CKR_ARGUMENTS_BAD to SHA-256 parameters) get
 * CKM_RSA_X_509, the raw private operation, and the padding is removed here in constant time
 * (src/core/crypto/oaep-decode.ts). Either way the private key stays in the token.
 *
 * The probe is a real round trip (encrypt a random value to the public key, decrypt in the token,
 * compare) because C_DecryptInit succeeding proves nothing about C_Decrypt's result.
 */
import { constants, publicEncrypt, randomBytes } from "node:crypto";
import { GCM_KEY_BYTES } from "../../../core/crypto/aes-gcm.js";
import { oaepSha256DecodeInto } from "../../../core/crypto/oaep-decode.js";
import { KeyStoreError } from "../errors.js";
import type { KeyMechanism, MechanismChoice } from "./config.js";
import type { DiscoveredKey } from "./discovery.js";
import { type PKCS11, pkcs11js } from "./module.js";

/** CKZ_DATA_SPECIFIED (PKCS#11 2.40 section 2.1.8); pkcs11js does not export it. */
const CKZ_DATA_SPECIFIED = 1;

const OAEP_SHA256: pkcs11js.Mechanism = {
  mechanism: pkcs11js.CKM_RSA_PKCS_OAEP,
  parameter: {
    type: pkcs11js.CK_PARAMS_RSA_OAEP,
    hashAlg: pkcs11js.CKM_SHA256,
    mgf: pkcs11js.CKG_MGF1_SHA256,
    source: CKZ_DATA_SPECIFIED,
  } as pkcs11js.RsaOAEP,
};
const RAW_RSA: pkcs11js.Mechanism = { mechanism: pkcs11js.CKM_RSA_X_509 };

/**
 * One private operation on the token, off the event loop (pkcs11js queues C_Decrypt on the libuv pool).
 * Returns the token's output: the message for OAEP, the k-byte encoded block for raw RSA.
 */
export function tokenDecrypt(
  lib: PKCS11,
  session: Buffer,
  key: Pick<DiscoveredKey, "handle" | "modulusBytes">,
  mechanism: KeyMechanism,
  input: Buffer,
): Promise<Buffer> {
  try {
    lib.C_DecryptInit(session, mechanism === "rsa-pkcs-oaep" ? OAEP_SHA256 : RAW_RSA, key.handle);
  } catch (err) {
    return Promise.reject(err);
  }
  return lib.C_DecryptAsync(session, input, Buffer.alloc(key.modulusBytes));
}

/**
 * The content key from the token's output for `mechanism`, into `cek`, which holds a random substitute
 * on entry and keeps it unless the output is a 256-bit key (see oaepSha256DecodeInto). The token's
 * output is overwritten.
 */
export function finishOaep(
  output: Buffer,
  mechanism: KeyMechanism,
  modulusBytes: number,
  cek: Buffer,
): Buffer {
  try {
    if (mechanism === "rsa-x509") oaepSha256DecodeInto(output, modulusBytes, cek);
    // The token checked the padding; the length of the message it returns is not secret.
    else if (output.length === cek.length) output.copy(cek);
  } finally {
    output.fill(0);
  }
  return cek;
}

async function roundTrip(lib: PKCS11, session: Buffer, key: DiscoveredKey, mechanism: KeyMechanism) {
  const sample = randomBytes(GCM_KEY_BYTES);
  const ciphertext = publicEncrypt(
    { key: key.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
    sample,
  );
  const output = await tokenDecrypt(lib, session, key, mechanism, ciphertext);
  if (!finishOaep(output, mechanism, key.modulusBytes, randomBytes(GCM_KEY_BYTES)).equals(sample)) {
    throw new Error("the token's result does not match the value encrypted to its public key");
  }
}

export interface ProbeResult {
  readonly mechanism: KeyMechanism;
  /** Why the token's own OAEP was not used, when it was tried; a CKR_ name or a mismatch, never key material. */
  readonly oaepRefused?: string;
}

export class MechanismError extends KeyStoreError {
  readonly code = "PKCS11_MECHANISM_UNUSABLE";
}

export async function probeMechanism(
  lib: PKCS11,
  session: Buffer,
  key: DiscoveredKey,
  choice: MechanismChoice,
): Promise<ProbeResult> {
  const attempt = async (mechanism: KeyMechanism): Promise<string | undefined> => {
    try {
      await roundTrip(lib, session, key, mechanism);
      return undefined;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  };
  if (choice !== "rsa-x509") {
    const refused = await attempt("rsa-pkcs-oaep");
    if (refused === undefined) return { mechanism: "rsa-pkcs-oaep" };
    if (choice === "rsa-pkcs-oaep") {
      throw new MechanismError(`mechanism pinned to rsa-pkcs-oaep but the token refuses it: ${refused}`);
    }
    const failed = await attempt("rsa-x509");
    if (failed !== undefined) {
      throw new MechanismError(`neither CKM_RSA_PKCS_OAEP (${refused}) nor CKM_RSA_X_509 (${failed}) works`);
    }
    return { mechanism: "rsa-x509", oaepRefused: refused };
  }
  const failed = await attempt("rsa-x509");
  if (failed !== undefined) throw new MechanismError(`mechanism pinned to rsa-x509 but it fails: ${failed}`);
  return { mechanism: "rsa-x509" };
}
