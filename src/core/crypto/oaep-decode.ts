/**
 * EME-OAEP decoding (RFC 8017 section 7.1.2, step 3) for SHA-256 with MGF1-SHA-256 and an empty label,
 * of a message whose length the caller knows (a JWE content key): what RSA-OAEP-256 needs after a raw
 * RSA private operation, in the file store (OpenSSL's RSA_NO_PADDING) and in a token that only offers
 * CKM_RSA_X_509.
 *
 * Manger's attack recovers a plaintext from a decryptor that tells "first byte not zero" apart from
 * other padding failures, by answer or by timing; any "valid or not" timing signal is a weaker form of
 * the same oracle. So nothing here branches on, throws on or sizes anything by a secret byte: every check
 * runs over every byte whatever the earlier checks found, the results are combined into one mask with
 * bit operations, and the output is chosen by that mask, byte by byte, between the decoded message and
 * a random substitute. A valid and an invalid block take the same work and give the same kind of result.
 */
import { createHash, hash } from "node:crypto";

const HASH_BYTES = 32;
/** SHA-256 of the empty label: JWE RSA-OAEP-256 never uses a label. */
const EMPTY_LABEL_HASH = createHash("sha256").digest();

/** 1 when `value` (an integer in 0..2^31-1) is zero, else 0, without a data-dependent branch. */
function isZero(value: number): number {
  return ((value | -value) >>> 31) ^ 1;
}

function mgf1Sha256Xor(seed: Uint8Array, target: Uint8Array): void {
  // seed || 32-bit counter, hashed in one call per block: the one-shot hash costs a fraction of a
  // createHash() object per block.
  const input = Buffer.alloc(seed.length + 4);
  input.set(seed);
  try {
    for (let done = 0, round = 0; done < target.length; round++) {
      input.writeUInt32BE(round, seed.length);
      const block = hash("sha256", input, "buffer");
      const n = Math.min(HASH_BYTES, target.length - done);
      for (let i = 0; i < n; i++) target[done + i]! ^= block[i]!;
      block.fill(0);
      done += n;
    }
  } finally {
    input.fill(0);
  }
}

/**
 * Decodes `em`, the raw RSA output for a modulus of `modulusBytes` bytes (shorter input is left-padded
 * with zeros, as some tokens strip leading zero bytes), into `out`.
 *
 * `out` holds a random substitute on entry. When `em` is a valid encoding of a message of exactly
 * `out.length` bytes, `out` holds that message on return; otherwise it keeps the substitute. Which of
 * the two happened is not reported, and costs the same: the caller carries on with `out` either way and
 * learns the answer where AES-GCM checks its tag.
 */
export function oaepSha256DecodeInto(em: Uint8Array, modulusBytes: number, out: Buffer): void {
  // Public facts (the key size, the output length the token chose, the message length the caller
  // expects), so an early return is safe here; it leaves the substitute in `out`.
  if (out.length > modulusBytes - 2 * HASH_BYTES - 2 || em.length > modulusBytes) return;
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
    // A message of the expected length ends the block, so it is read from a fixed position, and its
    // length check is one more term of the mask rather than a secret-sized copy.
    const messageStart = db.length - out.length;
    bad |= isZero(separator ^ (messageStart - 1)) ^ 1;

    const keep = -isZero(bad) & 0xff;
    for (let i = 0; i < out.length; i++) {
      out[i] = (db[messageStart + i]! & keep) | (out[i]! & ~keep);
    }
  } finally {
    block.fill(0);
  }
}
