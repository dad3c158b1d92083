/**
 * The RSA-OAEP-256 unwrap for a private key held in this process (the PEM file store). Every
 * cryptographic failure becomes the one JweDecryptError, as the UnwrapKey contract requires; OpenSSL's
 * OAEP decoding is itself constant-time.
 */
import { constants, type KeyObject, privateDecrypt } from "node:crypto";
import { JweDecryptError } from "../crypto/errors.js";
import type { UnwrapKey } from "../crypto/jwe-decrypt.js";

export function privateKeyUnwrap(privateKey: KeyObject): UnwrapKey {
  return async (encryptedKey) => {
    try {
      return privateDecrypt(
        { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
        encryptedKey,
      );
    } catch {
      throw new JweDecryptError();
    }
  };
}
