/**
 * The one interface both key stores (PEM directory, PKCS#11 token) implement.
 *
 * It exposes public metadata and a single private operation, `unwrap`: RSA-OAEP-256 decryption of a
 * JWE encrypted key. The private key itself is never returned, so a caller cannot leak what it never
 * holds. Keys are indexed by the fingerprint computed from their public key at load time (see
 * src/crypto/fingerprint.ts), never by a configured name.
 */
import type { CanonicalFingerprint } from "../crypto/fingerprint.js";

/** active: used for new secrets; decrypt-only: rotated out but still decrypts stored secrets; disabled: refuses. */
export const KEY_STATES = ["active", "decrypt-only", "disabled"] as const;
export type KeyState = (typeof KEY_STATES)[number];

export interface KeyInfo {
  /** `sha256:<hex>` of the DER SubjectPublicKeyInfo. */
  readonly fingerprint: CanonicalFingerprint;
  /** Every other string a partner may use to name this key (base64, base64url, colon hex, RFC 7638 thumbprint). */
  readonly aliases: readonly string[];
  readonly state: KeyState;
  readonly modulusBits: number;
  /** DER SubjectPublicKeyInfo, for export to Dotva and for verification. */
  readonly spki: Buffer;
  /** Human label: file name or PKCS#11 object label. */
  readonly label: string;
  /** Where the key lives: a file path or a PKCS#11 URI (without PIN). */
  readonly source: string;
  readonly createdAt?: Date;
}

export interface KeyStore {
  /** Resolves any accepted fingerprint form by index lookup; undefined when no key matches. */
  lookup(fingerprint: string): KeyInfo | undefined;
  list(): readonly KeyInfo[];
  /**
   * RSA-OAEP-256 (SHA-256, MGF1-SHA-256, empty label) decryption of `encryptedKey` with the private key
   * named by `fingerprint`. Any failure rejects with the same error, whatever its cause, so a caller
   * cannot tell padding errors apart (docs/design.md invariant 2).
   */
  unwrap(fingerprint: CanonicalFingerprint, encryptedKey: Uint8Array): Promise<Buffer>;
  close(): Promise<void>;
}
