/**
 * The key stores the custody service suite runs against: one suite, parametrized over this list. Each
 * factory makes an empty store in a fresh directory; keys added become visible at the next reload, as
 * for an operator adding a key and sending SIGHUP. The PKCS#11 store adds its entry here.
 */
import type { KeyObject } from "node:crypto";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { chmodSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fingerprintForms } from "../../core/crypto/fingerprint.js";
import { FileKeyStore } from "../../custody/keystore/file/file-key-store.js";
import { readManifest, writeManifest } from "../../custody/keystore/file/manifest.js";
import type { KeyState, KeyStore, ManagedKeyStore } from "../../custody/keystore/key-store.js";
import { pkcs11StoreFactory } from "./pkcs11-store-factory.js";

export interface TestKeyStore {
  readonly source: ManagedKeyStore;
  /** Adds a private key with a state; visible after `source.reload()`. */
  add(name: string, privateKey: KeyObject, state: KeyState): void;
  setState(privateKey: KeyObject, state: KeyState): void;
  /** Removes the key; gone after the next reload. */
  remove(privateKey: KeyObject): void;
  /**
   * Puts something in the store that must make the next reload fail validation (and leave the old set
   * in place); returns the undo. Undefined for stores that have no such failure mode.
   */
  readonly breakReload?: () => { expectedError: RegExp; undo: () => void };
}

export interface StoreFactory {
  readonly name: string;
  /** `initial` keys are present when the store opens. */
  create(
    dir: string,
    initial: { name: string; privateKey: KeyObject; state: KeyState }[],
  ): Promise<TestKeyStore>;
}

const fileStore: StoreFactory = {
  name: "file",
  async create(dir, initial) {
    const add = (name: string, privateKey: KeyObject, state: KeyState) => {
      writeFileSync(join(dir, `${name}.pem`), privateKey.export({ type: "pkcs8", format: "pem" }), {
        mode: 0o600,
      });
      const manifest = readManifest(dir);
      manifest.keys[fingerprintForms(createPublicKey(privateKey)).canonical] = { state, file: `${name}.pem` };
      writeManifest(dir, manifest);
    };
    for (const key of initial) add(key.name, key.privateKey, key.state);
    return {
      source: FileKeyStore.open({ dir }),
      add,
      remove(privateKey) {
        const manifest = readManifest(dir);
        const fp = fingerprintForms(createPublicKey(privateKey)).canonical;
        unlinkSync(join(dir, manifest.keys[fp]!.file!));
        delete manifest.keys[fp];
        writeManifest(dir, manifest);
      },
      breakReload() {
        // A key file readable by others: the file store must refuse it.
        const path = join(dir, "zz-readable-by-others.pem");
        writeFileSync(
          path,
          generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({
            type: "pkcs8",
            format: "pem",
          }),
        );
        chmodSync(path, 0o644);
        return { expectedError: /group or others/, undo: () => unlinkSync(path) };
      },
      setState(privateKey, state) {
        const manifest = readManifest(dir);
        const fp = fingerprintForms(createPublicKey(privateKey)).canonical;
        manifest.keys[fp] = { ...manifest.keys[fp], state };
        writeManifest(dir, manifest);
      },
    };
  },
};

/** `store` with its `get` replaced (stores are classes: a spread would lose their methods). */
export function withGet(store: ManagedKeyStore, get: KeyStore["get"]): ManagedKeyStore {
  return {
    get,
    list: () => store.list(),
    reload: () => store.reload(),
    close: () => store.close(),
    ...(store.health ? { health: store.health } : {}),
  };
}

/**
 * The file store's keys, but without `inProcess`, so they are unwrapped on the main thread through the
 * MessagePort path a PKCS#11 token uses: proves that path (and its key-set semantics) end to end
 * without a token.
 */
const fileStoreMainThreadUnwrap: StoreFactory = {
  name: "file, main-thread unwrap",
  async create(dir, initial) {
    const inner = await fileStore.create(dir, initial);
    const source = withGet(inner.source, (fingerprint) => {
      const key = inner.source.get(fingerprint);
      return key && { info: key.info, generation: key.generation, unwrap: key.unwrap };
    });
    return { ...inner, source };
  },
};

export const STORE_FACTORIES: StoreFactory[] = [fileStore, fileStoreMainThreadUnwrap, pkcs11StoreFactory];
