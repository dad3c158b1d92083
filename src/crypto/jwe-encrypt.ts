/**
 * Encryption of Knot's /card payload: compact JWE, RSA-OAEP-256 + A256GCM, `kid` copied from Knot's JWK
 * when it has one. jose does the work: it is the reference implementation Knot-side tooling is
 * commonly built on, and our own decryptor is tested against it.
 */
import { CompactEncrypt } from "jose";
import { JWE_ALG, JWE_ENC } from "./jwe-decrypt.js";
import type { KnotRecipient } from "./knot-jwk.js";

export async function encryptForRecipient(plaintext: Uint8Array, recipient: KnotRecipient): Promise<string> {
  return new CompactEncrypt(plaintext)
    .setProtectedHeader(
      recipient.kid === undefined
        ? { alg: JWE_ALG, enc: JWE_ENC }
        : { alg: JWE_ALG, enc: JWE_ENC, kid: recipient.kid },
    )
    .encrypt(recipient.publicKey);
}
