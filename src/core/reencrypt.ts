/**
 * The heart of custody: Dotva's JWE in, Knot's JWE out, with the card data in plaintext only between
 * the two and overwritten before this function returns, on every path.
 *
 * Pure apart from `unwrap` (the key store's private-key operation): inputs were validated at the
 * service boundary (parsed JWE, Knot recipient, cardholder profile), so nothing is re-checked here.
 */

import { parseDotvaSecrets } from "./card/dotva-secrets.js";
import { assertNotExpired, buildKnotPayload } from "./card/knot-payload.js";
import type { KnotUser } from "./card/knot-user.js";
import { decryptJwe, type ParsedJwe, type UnwrapKey } from "./crypto/jwe-decrypt.js";
import { encryptForRecipient } from "./crypto/jwe-encrypt.js";
import type { KnotRecipient } from "./crypto/knot-jwk.js";

export interface ReencryptInput {
  readonly jwe: ParsedJwe;
  readonly unwrap: UnwrapKey;
  readonly recipient: KnotRecipient;
  readonly user: KnotUser;
  readonly now: Date;
}

export interface ReencryptOutput {
  /** Compact JWE for Knot's POST /card. */
  readonly jwe: string;
  readonly cardLast4: string;
  /** The first six digits, so the caller can check the decrypted card is the one it stored. */
  readonly cardBin: string;
}

export async function reencryptForKnot(input: ReencryptInput): Promise<ReencryptOutput> {
  const plaintext = await decryptJwe(input.jwe, input.unwrap);
  let payload: Buffer | undefined;
  try {
    const secrets = parseDotvaSecrets(plaintext);
    assertNotExpired(secrets, input.now);
    payload = buildKnotPayload(input.user, secrets);
    const jwe = encryptForRecipient(payload, input.recipient);
    // The first six and last four digits are not secret (PCI DSS allows showing them together): the
    // gateway compares them with the card it stored, and the last four identify the card in logs.
    return {
      jwe,
      cardLast4: secrets.pan.subarray(secrets.pan.length - 4).toString("ascii"),
      cardBin: secrets.pan.subarray(0, 6).toString("ascii"),
    };
  } finally {
    plaintext.fill(0);
    payload?.fill(0);
  }
}
