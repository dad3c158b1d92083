/** AES-256-GCM with a 96-bit IV and a 128-bit tag: the only content encryption this service accepts. */
import { createDecipheriv } from "node:crypto";

export const GCM_KEY_BYTES = 32;
export const GCM_IV_BYTES = 12;
export const GCM_TAG_BYTES = 16;

/**
 * Authenticated decryption. Returns undefined when the tag does not verify; the unauthenticated bytes
 * that OpenSSL produced before the check are overwritten first, so they cannot leak to a caller.
 */
export function aes256GcmDecrypt(
  key: Uint8Array,
  iv: Uint8Array,
  aad: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
): Buffer | undefined {
  const decipher = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: GCM_TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  const plaintext = decipher.update(ciphertext);
  try {
    decipher.final();
  } catch {
    plaintext.fill(0);
    return undefined;
  }
  return plaintext;
}
