/**
 * The RSA-OAEP-256 unwrap for a private key held in this process (the PEM file store, and each
 * re-encryption worker's own copy of it).
 *
 * OpenSSL's OAEP decoding is constant-time, but Node reports its failure by throwing, and building and
 * catching that error is tens of microseconds a valid block does not spend: a timing signal of exactly
 * the kind Manger's attack needs. So OpenSSL does only the raw private operation (RSA_NO_PADDING, still
 * blinded) and the padding is removed by the constant-time decoder that also serves tokens without
 * OAEP-SHA-256, which selects the content key or a random one without branching.
 */
import { constants, type KeyObject, privateDecrypt, randomBytes } from "node:crypto";
import { GCM_KEY_BYTES } from "../../core/crypto/aes-gcm.js";
import type { UnwrapKey } from "../../core/crypto/jwe-decrypt.js";
import { oaepSha256DecodeInto } from "../../core/crypto/oaep-decode.js";

export function privateKeyUnwrap(privateKey: KeyObject): UnwrapKey {
  const modulusBytes = Math.ceil((privateKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
  return async (encryptedKey) => {
    const cek = randomBytes(GCM_KEY_BYTES);
    // Public facts about the ciphertext: its length, and (the only way the raw operation fails) a value
    // not below the modulus. Leaving early on them tells an attacker nothing they did not know.
    if (encryptedKey.length !== modulusBytes) return cek;
    let em: Buffer;
    try {
      em = privateDecrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, encryptedKey);
    } catch {
      return cek;
    }
    try {
      oaepSha256DecodeInto(em, modulusBytes, cek);
    } finally {
      em.fill(0);
    }
    return cek;
  };
}
