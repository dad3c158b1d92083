/**
 * Strict base64url (RFC 7515 section 2): the URL-safe alphabet, no padding, no whitespace, and
 * canonical trailing bits. Node's decoder silently skips characters it does not know, which would let
 * two different strings decode to the same bytes; a JWE part must have exactly one spelling.
 */
const ALPHABET = /^[A-Za-z0-9_-]*$/;

/** Returns the decoded bytes, or undefined when `text` is not canonical base64url. */
export function decodeBase64url(text: string): Buffer | undefined {
  if (!ALPHABET.test(text) || text.length % 4 === 1) return undefined;
  const bytes = Buffer.from(text, "base64url");
  // Non-zero unused bits in the last character decode fine but do not re-encode to the same text.
  if (bytes.toString("base64url") !== text) return undefined;
  return bytes;
}
