/**
 * The PEM directory key store. It holds one immutable key set at a time; `reload()` builds a new one
 * and swaps it in only when the whole directory validated, so a bad file dropped in during rotation
 * leaves the service on its previous keys. A Key looked up before a reload keeps its private key, which
 * is how in-flight calls finish on the key set they started with.
 */
import { readFileSync, statSync } from "node:fs";
import type { CanonicalFingerprint } from "../../../core/crypto/fingerprint.js";
import type { Key, KeyInfo, ManagedKeyStore, ReloadResult } from "../key-store.js";
import { privateKeyUnwrap } from "../private-key-unwrap.js";
import { type KeyDirectorySnapshot, loadKeyDirectory } from "./key-directory.js";
import { KeyFileError, type PemReader } from "./pem-key.js";

export interface FileKeyStoreOptions {
  readonly dir: string;
  /** File holding the passphrase of encrypted PKCS#8 keys; a trailing newline is ignored. */
  readonly passphraseFile?: string;
  /** How a key file's bytes are read (default: readFileSync); the store wipes what it returns. */
  readonly readPem?: PemReader;
}

interface KeySet {
  readonly directory: KeyDirectorySnapshot;
  readonly keys: ReadonlyMap<CanonicalFingerprint, Key>;
}

export class FileKeyStore implements ManagedKeyStore {
  private current: KeySet;

  private constructor(private readonly options: FileKeyStoreOptions) {
    this.current = this.load(1);
  }

  /** Throws when the directory does not validate: a service must not start without a usable key set. */
  static open(options: FileKeyStoreOptions): FileKeyStore {
    return new FileKeyStore(options);
  }

  get(fingerprint: string): Key | undefined {
    const set = this.current;
    const info = set.directory.index.lookup(fingerprint);
    return info && set.keys.get(info.fingerprint);
  }

  list(): readonly KeyInfo[] {
    return this.current.directory.index.list();
  }

  /** Loads the directory again; on any error rejects and keeps the previous key set. */
  async reload(): Promise<ReloadResult> {
    const next = this.load(this.current.directory.generation + 1);
    this.current = next;
    const { generation, index, warnings } = next.directory;
    return { generation, keys: index.list().length, warnings };
  }

  async close(): Promise<void> {}

  private load(generation: number): KeySet {
    const passphrase = this.readPassphrase();
    let directory: KeyDirectorySnapshot;
    try {
      directory = loadKeyDirectory(this.options.dir, passphrase, generation, this.options.readPem);
    } finally {
      passphrase?.fill(0);
    }
    const keys = new Map<CanonicalFingerprint, Key>();
    for (const info of directory.index.list()) {
      const privateKey = directory.privateKeys.get(info.fingerprint)!;
      keys.set(info.fingerprint, {
        info,
        generation,
        unwrap: privateKeyUnwrap(privateKey),
        inProcess: privateKey,
      });
    }
    return { directory, keys };
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
