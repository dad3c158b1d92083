/**
 * The PKCS#11 entry of the custody suite's store list (src/tools/testing/stores.ts): each `create` makes a
 * fresh SoftHSM2 token, imports the keys into it (sensitive, non-extractable) and opens the store on it.
 *
 * SoftHSM2 reads its configuration once per process, at C_Initialize, and only sees tokens that exist
 * then; so one temporary token directory serves the process and every further token is initialised
 * in-process on the library's free slot (C_InitToken), which SoftHSM2 replaces with a new free slot.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fingerprintForms } from "../../core/crypto/fingerprint.js";
import { MANIFEST_FILE, readManifest, writeManifest } from "../../custody/keystore/file/manifest.js";
import type { KeyState } from "../../custody/keystore/key-store.js";
import { parsePkcs11Config } from "../../custody/keystore/pkcs11/config.js";
import {
  acquireModule,
  findObjects,
  findSlot,
  pkcs11js,
  releaseModule,
} from "../../custody/keystore/pkcs11/module.js";
import { Pkcs11KeyStore } from "../../custody/keystore/pkcs11/pkcs11-key-store.js";
import { importIntoToken, newKeyId } from "../../custody/keystore/pkcs11/token-admin.js";
import { initTokenOnFreeSlot } from "../softhsm-token.js";
import { SOFTHSM_MODULE } from "./softhsm.js";
import type { StoreFactory } from "./stores.js";

const SO_PIN = "so-test-pin";
let tokens = 0;

function softhsmForThisProcess(): void {
  if (process.env.SOFTHSM2_CONF?.includes("softhsm-suite-")) return;
  const dir = mkdtempSync(join(tmpdir(), "softhsm-suite-"));
  mkdirSync(join(dir, "tokens"));
  writeFileSync(
    join(dir, "softhsm2.conf"),
    `directories.tokendir = ${join(dir, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\n`,
  );
  process.env.SOFTHSM2_CONF = join(dir, "softhsm2.conf");
}

/** Runs `fn` in a logged-in read-write session on the token, synchronously (the suite's add/remove are). */
function onToken<T>(
  label: string,
  pin: string,
  userType: number,
  fn: (lib: pkcs11js.PKCS11, session: Buffer) => T,
): T {
  const lib = acquireModule(SOFTHSM_MODULE);
  try {
    const slot = findSlot(lib, { label });
    if (slot === undefined) throw new Error(`test token ${label} not found`);
    const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      try {
        lib.C_Login(session, userType, pin);
      } catch (err) {
        if (!(err instanceof Error && err.message === "CKR_USER_ALREADY_LOGGED_IN")) throw err;
      }
      return fn(lib, session);
    } finally {
      lib.C_CloseSession(session);
    }
  } finally {
    releaseModule(SOFTHSM_MODULE);
  }
}

export const pkcs11StoreFactory: StoreFactory = {
  name: "pkcs11",
  async create(dir, initial) {
    softhsmForThisProcess();
    const label = `custody-suite-${++tokens}`;
    const pin = `user-${process.pid}-${tokens}`;
    const pinFile = join(dir, "pin");
    writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 });
    initTokenOnFreeSlot(label, SO_PIN, pin);

    const setState = (privateKey: KeyObject, state: KeyState) => {
      const manifest = readManifest(dir);
      const fp = fingerprintForms(createPublicKey(privateKey)).canonical;
      manifest.keys[fp] = { ...manifest.keys[fp], state };
      writeManifest(dir, manifest);
    };
    const add = (name: string, privateKey: KeyObject, state: KeyState) => {
      onToken(label, pin, pkcs11js.CKU_USER, (lib, session) =>
        importIntoToken(
          { lib, session },
          name,
          newKeyId(),
          privateKey.export({ type: "pkcs8", format: "pem" }),
        ),
      );
      setState(privateKey, state);
    };
    for (const key of initial) add(key.name, key.privateKey, key.state);

    const source = await Pkcs11KeyStore.open(
      parsePkcs11Config({
        modulePath: SOFTHSM_MODULE,
        token: { label },
        pin: { file: pinFile },
        keys: "all",
        manifestDir: dir,
        sessions: 2,
      }),
    );
    return {
      source,
      add,
      setState,
      // Only the public object goes: the next reload leaves the key out (no public twin), while calls
      // already running on the current key set still reach the private key, as with a file removed
      // from the directory. Destroying the private object would fail those calls in the token itself.
      remove(privateKey) {
        const { n } = createPublicKey(privateKey).export({ format: "jwk" });
        onToken(label, pin, pkcs11js.CKU_USER, (lib, session) => {
          const template = [
            { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
            { type: pkcs11js.CKA_MODULUS, value: Buffer.from(n!, "base64url") },
          ];
          for (const object of findObjects(lib, session, template)) lib.C_DestroyObject(session, object);
        });
      },
      // A manifest that does not parse must fail the reload and keep the previous key set.
      breakReload() {
        const path = join(dir, MANIFEST_FILE);
        const good = readFileSync(path);
        writeFileSync(path, "{ not json", { mode: 0o600 });
        return { expectedError: /not JSON/, undo: () => writeFileSync(path, good, { mode: 0o600 }) };
      },
    };
  },
};
