/**
 * Encryption of Knot's /card payload: compact JWE, RSA-OAEP-256 + A256GCM, with the recipient's
 * precomputed protected header (`kid` copied from Knot's JWK when it has one).
 *
 * Written on node:crypto rather than jose: jose v6 goes through WebCrypto, which costs about ten times
 * the RSA public operation itself, and this runs once per card on the hot path. Interop is not taken on
 * trust: the tests decrypt this output with jose and with Python's jwcrypto.
 */
import { constants, createCipheriv, publicEncrypt, randomBytes } from "node:crypto";
import { GCM_IV_BYTES, GCM_KEY_BYTES, GCM_TAG_BYTES } from "./aes-gcm.js";
import type { KnotRecipient } from "./knot-jwk.js";

export function encryptForRecipient(plaintext: Uint8Array, recipient: KnotRecipient): string {
  // One call to the CSPRNG for key and IV: it is on the hot path.
  const random = randomBytes(GCM_KEY_BYTES + GCM_IV_BYTES);
  const cek = random.subarray(0, GCM_KEY_BYTES);
  const iv = random.subarray(GCM_KEY_BYTES);
  try {
    const encryptedKey = publicEncrypt(
      { key: recipient.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
      cek,
    );
    const cipher = createCipheriv("aes-256-gcm", cek, iv, { authTagLength: GCM_TAG_BYTES });
    cipher.setAAD(recipient.aad);
    // GCM is a stream mode: final() emits nothing, so update()'s output is the whole ciphertext.
    const ciphertext = cipher.update(plaintext);
    cipher.final();
    return [
      recipient.protectedHeader,
      encryptedKey.toString("base64url"),
      iv.toString("base64url"),
      ciphertext.toString("base64url"),
      cipher.getAuthTag().toString("base64url"),
    ].join(".");
  } finally {
    random.fill(0);
  }
}
