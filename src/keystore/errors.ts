/**
 * Failures a key store reports to its callers while serving. Like the crypto core's errors they know
 * nothing of any transport: each has a stable `code`, and the service's edge maps codes to statuses
 * (src/custody/errors.ts). Messages never contain key material or ciphertext.
 */
export abstract class KeyStoreError extends Error {
  abstract readonly code: string;
  override readonly name = this.constructor.name;
}

/** The store's backend (a PKCS#11 token) cannot serve right now; the call may be retried later. */
export class KeyStoreUnavailableError extends KeyStoreError {
  readonly code = "KEYSTORE_UNAVAILABLE";
}
