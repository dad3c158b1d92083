/**
 * Builds the plaintext of Knot's POST /card JWE:
 * {"user":{...},"card":{"number":"<pan>","expiration":"MM/YYYY","cvv":"<cvv>"}}
 *
 * The result is written into one freshly allocated (unpooled) buffer, with the PAN and CVV copied byte
 * by byte from the decrypted Dotva plaintext, so no string ever holds card data and the caller can
 * overwrite the whole buffer once the JWE exists.
 */

import type { DotvaSecrets } from "./dotva-secrets.js";
import { CardExpiredError } from "./errors.js";
import type { KnotUser } from "./knot-user.js";

/** Throws CardExpiredError when the card's expiry month ended before `now` (UTC). */
export function assertNotExpired(secrets: DotvaSecrets, now: Date): void {
  const currentMonths = now.getUTCFullYear() * 12 + now.getUTCMonth();
  const expiryMonths = secrets.expiryYear * 12 + (secrets.expiryMonth - 1);
  if (expiryMonths < currentMonths) throw new CardExpiredError("the card's expiry date has passed");
}

export function buildKnotPayload(user: KnotUser, secrets: DotvaSecrets): Buffer {
  // Member order follows Knot's documentation; JSON.stringify escapes the profile's text safely.
  const head = Buffer.from(`{"user":${JSON.stringify(user)},"card":{"number":"`, "utf8");
  const middle1 = Buffer.from(`","expiration":"`, "ascii");
  const middle2 = Buffer.from(`","cvv":"`, "ascii");
  const tail = Buffer.from(`"}}`, "ascii");
  const expiryLength = 7; // MM/YYYY
  const out = Buffer.alloc(
    head.length +
      secrets.pan.length +
      middle1.length +
      expiryLength +
      middle2.length +
      secrets.cvv.length +
      tail.length,
  );
  let at = head.copy(out, 0);
  at += secrets.pan.copy(out, at);
  at += middle1.copy(out, at);
  at = writeDigits(out, at, secrets.expiryMonth, 2);
  out[at++] = 0x2f; // "/"
  at = writeDigits(out, at, secrets.expiryYear, 4);
  at += middle2.copy(out, at);
  at += secrets.cvv.copy(out, at);
  tail.copy(out, at);
  return out;
}

/** Writes `value` as exactly `width` zero-padded ASCII digits without formatting it into a string. */
function writeDigits(out: Buffer, at: number, value: number, width: number): number {
  let rest = value;
  for (let i = width - 1; i >= 0; i--) {
    out[at + i] = 0x30 + (rest % 10);
    rest = Math.floor(rest / 10);
  }
  return at + width;
}
