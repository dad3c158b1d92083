/**
 * Knot webhook verification as Knot documents it: `Knot-Signature` is base64(HMAC-SHA256(client
 * secret, "Content-Length|<n>|Content-Type|<type>|Encryption-Type|<value>|event|<event>|session_id|<id>")),
 * the session_id pair left out when the body has none (MERCHANT_STATUS_UPDATE).
 *
 * The signed string does not cover task_id, external_user_id, merchant, data or timestamp: a replayed
 * signature with an edited body of the same length verifies. The route and the send-card job bound what
 * that allows (source allow-list, timestamp window, one body per event and session_id, cards bound to
 * their user); docs/gateway.md, "Replayed Knot signatures".
 */
import { createHmac } from "node:crypto";
import { bytesEqual } from "../http/constant-time.js";

export interface SignedFacts {
  readonly contentLength: string;
  readonly contentType: string;
  readonly encryptionType: string;
  readonly event: string;
  readonly sessionId?: string;
}

export function signatureBase(f: SignedFacts): string {
  const pairs = [
    ["Content-Length", f.contentLength],
    ["Content-Type", f.contentType],
    ["Encryption-Type", f.encryptionType],
    ["event", f.event],
  ];
  if (f.sessionId !== undefined) pairs.push(["session_id", f.sessionId]);
  return pairs.map(([k, v]) => `${k}|${v}`).join("|");
}

export function knotSignature(secret: string, f: SignedFacts): string {
  return createHmac("sha256", secret).update(signatureBase(f), "utf8").digest("base64");
}

export function verifyKnotSignature(secret: string, f: SignedFacts, presented: string | undefined): boolean {
  if (presented === undefined || !/^[A-Za-z0-9+/]{43}=$/.test(presented.trim())) return false;
  const expected = createHmac("sha256", secret).update(signatureBase(f), "utf8").digest();
  return bytesEqual(Buffer.from(presented.trim(), "base64"), expected);
}
