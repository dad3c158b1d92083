/**
 * The PEM directory key store. It holds one immutable snapshot of the directory at a time; `reload()`
 * builds a new one and swaps it in only when the whole directory validated, so a bad file dropped in
 * during rotation leaves the service on its previous keys. A caller that took a snapshot keeps using
 * it, which is how in-flight calls finish on the key set they started with.
 */
import { readFileSync, statSync } from "node:fs";
import { JweDecryptError } from "../../crypto/errors.js";
import type { CanonicalFingerprint } from "../../crypto/fingerprint.js";
import type { KeyInfo, KeyStore } from "../key-store.js";
import { privateKeyUnwrap } from "../private-key-unwrap.js";
import { type KeyDirectorySnapshot, loadKeyDirectory } from "./key-directory.js";
import { KeyFileError } from "./pem-key.js";

export interface FileKeyStoreOptions {
  readonly dir: string;
  /** File holding the passphrase of encrypted PKCS#8 keys; a trailing newline is ignored. */
  readonly passphraseFile?: string;
}

export class FileKeyStore implements KeyStore {
  private current: KeyDirectorySnapshot;

  private constructor(private readonly options: FileKeyStoreOptions) {
    this.current = this.load(1);
  }

  /** Throws when the directory does not validate: a service must not start without a usable key set. */
  static open(options: FileKeyStoreOptions): FileKeyStore {
    return new FileKeyStore(options);
  }

  snapshot(): KeyDirectorySnapshot {
    return this.current;
  }

  /** Loads the directory again; on any error throws and keeps the previous snapshot. */
  reload(): KeyDirectorySnapshot {
    const next = this.load(this.current.generation + 1);
    this.current = next;
    return next;
  }

  lookup(fingerprint: string): KeyInfo | undefined {
    return this.current.index.lookup(fingerprint);
  }

  list(): readonly KeyInfo[] {
    return this.current.index.list();
  }

  async unwrap(fingerprint: CanonicalFingerprint, encryptedKey: Uint8Array): Promise<Buffer> {
    const key = this.current.privateKeys.get(fingerprint);
    if (key === undefined) throw new JweDecryptError();
    return privateKeyUnwrap(key)(
      Buffer.from(encryptedKey.buffer, encryptedKey.byteOffset, encryptedKey.length),
    );
  }

  async close(): Promise<void> {}

  private load(generation: number): KeyDirectorySnapshot {
    const passphrase = this.readPassphrase();
    try {
      return loadKeyDirectory(this.options.dir, passphrase, generation);
    } finally {
      passphrase?.fill(0);
    }
  }

  private readPassphrase(): Buffer | undefined {
    const file = this.options.passphraseFile;
    if (file === undefined) return undefined;
    if ((statSync(file).mode & 0o077) !== 0) {
      throw new KeyFileError(`passphrase file ${file} is accessible to group or others; chmod 600 it`);
    }
    const bytes = readFileSync(file);
    let end = bytes.length;
    while (end > 0 && (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d)) end--;
    return bytes.subarray(0, end);
  }
}
