/**
 * Opens the key store the configuration names. This is the only place custody knows which store it
 * runs on; everything after it sees the KeyStore interface (src/custody/keystore/key-store.ts).
 */
import type { Logger } from "pino";
import type { KeyStoreConfig } from "./config.js";
import { FileKeyStore } from "./keystore/file/file-key-store.js";
import type { ManagedKeyStore } from "./keystore/key-store.js";
import { Pkcs11KeyStore } from "./keystore/pkcs11/pkcs11-key-store.js";

export async function openKeyStore(config: KeyStoreConfig, logger?: Logger): Promise<ManagedKeyStore> {
  switch (config.kind) {
    case "pkcs11":
      return Pkcs11KeyStore.open(config.pkcs11, logger);
    case "file":
      return FileKeyStore.open({
        dir: config.dir,
        ...(config.passphraseFile ? { passphraseFile: config.passphraseFile } : {}),
      });
  }
}
