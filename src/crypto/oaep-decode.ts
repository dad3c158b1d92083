/**
 * EME-OAEP decoding (RFC 8017 section 7.1.2, step 3) for SHA-256 with MGF1-SHA-256 and an empty label:
 * what RSA-OAEP-256 needs when a token can only do the raw RSA operation (CKM_RSA_X_509) and the
 * padding has to be removed in this process.
 *
 * Manger's attack recovers a plaintext from a decryptor that tells "first byte not zero" apart from
 * other padding failures, by answer or by timing. So every check here runs over every byte whatever
 * the earlier checks found, the results are combined with bit operations, and there is one branch, at
 * the end, that throws the one JweDecryptError. Only the length of a valid message is visible, as it
 * is for OpenSSL's decoder.
 */
import { createHash } from "node:crypto";
import { JweDecryptError } from "./errors.js";

const HASH_BYTES = 32;
/** SHA-256 of the empty label: JWE RSA-OAEP-256 never uses a label. */
const EMPTY_LABEL_HASH = createHash("sha256").digest();

/** 1 when `byte` (0..255) is zero, else 0, without a data-dependent branch. */
function isZero(byte: number): number {
  return ((byte | -byte) >>> 31) ^ 1;
}

function mgf1Sha256Xor(seed: Uint8Array, target: Uint8Array): void {
  const counter = Buffer.alloc(4);
  for (let done = 0, round = 0; done < target.length; round++) {
    counter.writeUInt32BE(round, 0);
    const block = createHash("sha256").update(seed).update(counter).digest();
    const n = Math.min(HASH_BYTES, target.length - done);
    for (let i = 0; i < n; i++) target[done + i]! ^= block[i]!;
    block.fill(0);
    done += n;
  }
}

/**
 * Decodes `em`, the raw RSA output for a modulus of `modulusBytes` bytes (shorter input is left-padded
 * with zeros, as some tokens strip leading zero bytes). Returns the message; throws JweDecryptError
 * for every kind of failure.
 */
export function oaepSha256Decode(em: Uint8Array, modulusBytes: number): Buffer {
  // Public facts (the key size and the output length the token chose), so an early exit is safe here.
  if (modulusBytes < 2 * HASH_BYTES + 2 || em.length > modulusBytes) throw new JweDecryptError();
  const block = Buffer.alloc(modulusBytes);
  block.set(em, modulusBytes - em.length);
  try {
    const seed = block.subarray(1, 1 + HASH_BYTES);
    const db = block.subarray(1 + HASH_BYTES);
    mgf1Sha256Xor(db, seed);
    mgf1Sha256Xor(seed, db);

    let bad = block[0]!;
    for (let i = 0; i < HASH_BYTES; i++) bad |= db[i]! ^ EMPTY_LABEL_HASH[i]!;

    // PS is zero bytes, then one 0x01, then the message. `looking` stays 1 until the 0x01 is seen.
    let looking = 1;
    let separator = 0;
    for (let i = HASH_BYTES; i < db.length; i++) {
      const byte = db[i]!;
      const zero = isZero(byte);
      const one = isZero(byte ^ 1);
      const found = looking & one;
      separator |= -found & i;
      bad |= looking & ((zero | one) ^ 1);
      looking &= found ^ 1;
    }
    bad |= looking;

    if (bad !== 0) throw new JweDecryptError();
    return Buffer.from(db.subarray(separator + 1));
  } finally {
    block.fill(0);
  }
}
