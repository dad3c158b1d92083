/**
 * A SoftHSM2 token of its own in a directory (never the system token directory), with a key pair
 * generated inside it: for local development (`npm run dev:softhsm`, under keys/softhsm/) and for the
 * PKCS#11 benchmark (a temporary directory). Prints nothing; returns what the service needs.
 *
 * SoftHSM2 reads SOFTHSM2_CONF when the library initialises, so the returned `env` must be in the
 * environment of the process that opens the store (this function sets it for the current process).
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { acquireModule, findSlot, pkcs11js, releaseModule } from "../custody/keystore/pkcs11/module.js";
import { readPin } from "../custody/keystore/pkcs11/pin.js";
import { generateInToken, withTokenSession } from "../custody/keystore/pkcs11/token-admin.js";

export const SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so";

export interface SoftHsmToken {
  readonly conf: string;
  readonly pinFile: string;
  readonly label: string;
  /** Key URI for CUSTODY_PKCS11_URI: the generated key, the module and the PIN file. */
  readonly uri: string;
}

export async function softHsmToken(
  dir: string,
  label = "custody-dev",
  keyLabel = "dotva-dev",
): Promise<SoftHsmToken> {
  const tokens = join(dir, "tokens");
  const conf = join(dir, "softhsm2.conf");
  const pinFile = join(dir, "user.pin");
  const uri = `pkcs11:token=${label};object=${keyLabel};type=private?module-path=${SOFTHSM_MODULE}&pin-source=file:${pinFile}`;
  process.env.SOFTHSM2_CONF = conf;
  if (existsSync(pinFile) && existsSync(tokens)) return { conf, pinFile, label, uri };

  initToken(tokens, conf, pinFile, label);
  await withTokenSession({ modulePath: SOFTHSM_MODULE, token: { label }, pin: { file: pinFile } }, (admin) =>
    generateInToken(admin, keyLabel, Buffer.from([1]), 2048),
  );
  return { conf, pinFile, label, uri };
}

/** An empty token (no keys) in `dir`, for callers that import their own. */
export function emptySoftHsmToken(dir: string, label: string): Omit<SoftHsmToken, "uri"> {
  const tokens = join(dir, "tokens");
  const conf = join(dir, "softhsm2.conf");
  const pinFile = join(dir, "user.pin");
  process.env.SOFTHSM2_CONF = conf;
  initToken(tokens, conf, pinFile, label);
  return { conf, pinFile, label };
}

function initToken(tokens: string, conf: string, pinFile: string, label: string): void {
  mkdirSync(tokens, { recursive: true, mode: 0o700 });
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  writeFileSync(pinFile, `${randomBytes(12).toString("hex")}\n`, { mode: 0o600 });
  // In process rather than softhsm2-util/pkcs11-tool, so no PIN is ever on a command line.
  initTokenOnFreeSlot(label, randomBytes(12).toString("hex"), readPin({ file: pinFile }));
}

/**
 * Initialises SoftHSM2's free slot as token `label` with these PINs (SoftHSM2 then offers a new free
 * slot, so a process can make several tokens after one C_Initialize).
 */
export function initTokenOnFreeSlot(label: string, soPin: string, userPin: string): void {
  const lib = acquireModule(SOFTHSM_MODULE);
  try {
    const free = lib
      .C_GetSlotList(true)
      .find((slot) => (lib.C_GetTokenInfo(slot).flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0);
    if (free === undefined) throw new Error("SoftHSM2 offers no free slot");
    lib.C_InitToken(free, soPin, label);
    const slot = findSlot(lib, { label })!;
    const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    try {
      lib.C_Login(session, pkcs11js.CKU_SO, soPin);
      lib.C_InitPIN(session, userPin);
      lib.C_Logout(session);
    } finally {
      lib.C_CloseSession(session);
    }
  } finally {
    releaseModule(SOFTHSM_MODULE);
  }
}
