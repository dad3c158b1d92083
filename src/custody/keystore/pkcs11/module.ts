/**
 * The PKCS#11 library as a process-wide resource. A module is one shared library with one global
 * state: loading it twice in a process yields the same state, C_Initialize a second time answers
 * CKR_CRYPTOKI_ALREADY_INITIALIZED and a C_Finalize by one user ends every user's sessions. So each
 * module path is loaded once and reference-counted, and re-initialisation (the only way SoftHSM2
 * forgets a token that vanished and came back) goes through here.
 */
import pkcs11js from "pkcs11js";

export type { PKCS11 } from "pkcs11js";
export { pkcs11js };

interface Loaded {
  readonly lib: pkcs11js.PKCS11;
  users: number;
}

const loaded = new Map<string, Loaded>();

export function isPkcs11Error(err: unknown, ...names: string[]): boolean {
  return (
    err instanceof Error && err.name === "Pkcs11Error" && (names.length === 0 || names.includes(err.message))
  );
}

function initialize(lib: pkcs11js.PKCS11): void {
  try {
    // OS locking: the asynchronous C_Decrypt runs on libuv worker threads, several at once.
    lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (err) {
    if (!isPkcs11Error(err, "CKR_CRYPTOKI_ALREADY_INITIALIZED")) throw err;
  }
}

export function acquireModule(modulePath: string): pkcs11js.PKCS11 {
  let entry = loaded.get(modulePath);
  if (entry === undefined) {
    const lib = new pkcs11js.PKCS11();
    lib.load(modulePath);
    initialize(lib);
    entry = { lib, users: 0 };
    loaded.set(modulePath, entry);
  }
  entry.users++;
  return entry.lib;
}

export function releaseModule(modulePath: string): void {
  const entry = loaded.get(modulePath);
  if (entry === undefined || --entry.users > 0) return;
  loaded.delete(modulePath);
  try {
    entry.lib.C_Finalize();
  } catch {
    // Already finalised or the device is gone: either way nothing is left to release.
  }
  entry.lib.close();
}

/** C_Finalize + C_Initialize: the library rereads its slots and tokens from scratch. */
export function reinitializeModule(lib: pkcs11js.PKCS11): void {
  try {
    lib.C_Finalize();
  } catch {
    // A library that lost its device may refuse to finalise cleanly; initialising again is what counts.
  }
  initialize(lib);
}

export interface TokenSelector {
  readonly label?: string;
  readonly serial?: string;
  readonly slotId?: number;
}

/** PKCS#11 pads labels and serials with spaces to a fixed width. */
function trimPadded(text: string): string {
  return text.replace(/[\s\0]+$/, "");
}

/** The slot holding the token, or undefined when no present token matches. */
export function findSlot(lib: pkcs11js.PKCS11, want: TokenSelector): Buffer | undefined {
  for (const slot of lib.C_GetSlotList(true)) {
    if (want.slotId !== undefined && slot.readBigUInt64LE(0) !== BigInt(want.slotId)) continue;
    const info = lib.C_GetTokenInfo(slot);
    if (want.label !== undefined && trimPadded(info.label) !== want.label) continue;
    if (want.serial !== undefined && trimPadded(info.serialNumber) !== want.serial) continue;
    return slot;
  }
  return undefined;
}

export function tokenLabel(lib: pkcs11js.PKCS11, slot: Buffer): string {
  return trimPadded(lib.C_GetTokenInfo(slot).label);
}

export function login(lib: pkcs11js.PKCS11, session: Buffer, pin: string): void {
  try {
    lib.C_Login(session, pkcs11js.CKU_USER, pin);
  } catch (err) {
    // Login state belongs to the application, not the session: a second session is already in.
    if (!isPkcs11Error(err, "CKR_USER_ALREADY_LOGGED_IN")) throw err;
  }
}

export function findObjects(lib: pkcs11js.PKCS11, session: Buffer, template: pkcs11js.Template): Buffer[] {
  lib.C_FindObjectsInit(session, template);
  try {
    const found: Buffer[] = [];
    for (;;) {
      const batch = lib.C_FindObjects(session, 64);
      if (batch.length === 0) return found;
      found.push(...batch);
    }
  } finally {
    lib.C_FindObjectsFinal(session);
  }
}

export function readAttributes(
  lib: pkcs11js.PKCS11,
  session: Buffer,
  object: Buffer,
  types: readonly number[],
): Buffer[] {
  const result = lib.C_GetAttributeValue(
    session,
    object,
    types.map((type) => ({ type })),
  );
  return result.map((attribute) => attribute.value);
}
