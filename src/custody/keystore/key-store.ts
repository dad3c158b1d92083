/**
 * The one key abstraction. The PEM directory store and the PKCS#11 token store implement `KeyStore`:
 * look a key up by fingerprint, get its public metadata and its one private operation, `unwrap` (RSA-OAEP-256 decryption of a JWE encrypted key).
 * No method returns the private key itself, so a caller cannot leak what it never holds. Keys are
 * indexed by the fingerprint computed from their public key at load time (see src/core/crypto/fingerprint.ts),
 * never by a configured name.
 *
 * A `Key` belongs to the key set that was current when it was looked up, and stays usable after a
 * reload: a call looks its key up once and finishes on it.
 */
import type { KeyObject } from "node:crypto";
import type { CanonicalFingerprint } from "../../core/crypto/fingerprint.js";
import type { UnwrapKey } from "../../core/crypto/jwe-decrypt.js";

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

export interface Key {
  readonly info: KeyInfo;
  /** The key set this key was looked up in; increases with every load, so logs show which set served a call. */
  readonly generation: number;
  /**
   * RSA-OAEP-256 (SHA-256, MGF1-SHA-256, empty label). Resolves with a 256-bit content key for every
   * ciphertext: the real one, or a random one when the ciphertext does not decrypt to a 256-bit key,
   * chosen in constant time (the UnwrapKey contract). Rejects only with KeyStoreUnavailableError.
   */
  readonly unwrap: UnwrapKey;
  /**
   * Set when the private key already lives in this process (the file store): a worker thread may then
   * make its own copy and unwrap there. Only the worker pool reads it. Absent for keys that never leave
   * their device (a token), which the main thread unwraps before handing the call to a worker.
   */
  readonly inProcess?: KeyObject;
}

export interface KeyStore {
  /**
   * The key any accepted fingerprint form names, in the current key set, by index lookup; undefined
   * when no key matches. Throws FingerprintError when the text is no fingerprint form at all.
   */
  get(fingerprint: string): Key | undefined;
}

export interface ReloadResult {
  readonly generation: number;
  readonly keys: number;
  /** Things an operator should know that do not make the set unusable. */
  readonly warnings: readonly string[];
}

/** What the service opens: a key store plus its life cycle. */
export interface ManagedKeyStore extends KeyStore {
  list(): readonly KeyInfo[];
  /** Loads the key set again; rejects, keeping the current set, when the new one does not validate. */
  reload(): Promise<ReloadResult>;
  close(): Promise<void>;
  /**
   * Present for stores that can lose their backend (a PKCS#11 token): the current state and a
   * subscription, which the server maps to SERVING / NOT_SERVING on grpc.health.v1.
   */
  readonly health?: {
    healthy(): boolean;
    onChange(listener: (healthy: boolean) => void): () => void;
  };
}
