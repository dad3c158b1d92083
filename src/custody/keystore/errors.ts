/**
 * Failures of the key stores. Like the crypto core's errors they know nothing of any transport: each has
 * a stable `code`, and the service's edge maps the codes a caller can meet to statuses
 * (src/custody/errors.ts). Only KeyStoreUnavailableError happens while serving; the others (in the
 * modules that raise them) stop a start-up, a reload or a key CLI command. Messages name the file, the
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
