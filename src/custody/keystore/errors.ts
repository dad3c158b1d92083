/**
 * Failures of the key stores. Like the crypto core's errors they know nothing of any transport: each has
 * a stable `code`, and the service's edge maps the codes a caller can meet to statuses
 * (src/custody/errors.ts). Only KeyStoreUnavailableError and KeyStoreOverloadedError happen while
 * serving; the others (in the modules that raise them) stop a start-up, a reload or a key CLI command. Messages name the file, the
 * variable or the rule, never key material, a PIN or ciphertext.
 */
export abstract class KeyStoreError extends Error {
  abstract readonly code: string;
  override readonly name = this.constructor.name;
}

/** The store's backend (a PKCS#11 token) cannot serve right now; the call may be retried later. */
export class KeyStoreUnavailableError extends KeyStoreError {
  readonly code = "KEYSTORE_UNAVAILABLE";
}

/**
 * Every token session stayed busy for the whole wait: the store is saturated, not broken, so this is
 * the service's OVERLOADED (RESOURCE_EXHAUSTED, retry with backoff) and says nothing about the token's
 * health.
 */
export class KeyStoreOverloadedError extends KeyStoreError {
  readonly code = "OVERLOADED";
}
