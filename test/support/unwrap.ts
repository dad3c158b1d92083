/** A test key store's unwrap over an in-memory private key, with the contract of UnwrapKey. */
import { constants, type KeyObject, privateDecrypt } from "node:crypto";
import { JweDecryptError } from "../../src/crypto/errors.js";
import type { UnwrapKey } from "../../src/crypto/jwe-decrypt.js";

export function unwrapWith(privateKey: KeyObject): UnwrapKey {
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
