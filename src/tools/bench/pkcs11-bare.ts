/**
 * The reference for the PKCS#11 store: a bare pkcs11js loop, no gRPC, no JWE, no store, doing the same
 * private operation the store does (the probed mechanism; CKM_RSA_X_509 on SoftHSM2, without the
 * in-process OAEP decode) over the same number of sessions, each session one asynchronous
 * C_DecryptInit + C_Decrypt at a time. Its CPU per operation (this process, all threads: SoftHSM2 runs
 * on libuv's pool) is what the token's work costs before anything custody adds.
 */
import { constants, publicEncrypt } from "node:crypto";
import type { Pkcs11StoreConfig } from "../../custody/keystore/pkcs11/config.js";
import { discoverKeys } from "../../custody/keystore/pkcs11/discovery.js";
import { probeMechanism, tokenDecrypt } from "../../custody/keystore/pkcs11/mechanism.js";
import {
  acquireModule,
  findSlot,
  login,
  pkcs11js,
  releaseModule,
} from "../../custody/keystore/pkcs11/module.js";
import { readPin } from "../../custody/keystore/pkcs11/pin.js";

export interface BareResult {
  readonly opsPerSecond: number;
  readonly cpuMicrosPerOp: number;
  readonly sessions: number;
  readonly mechanism: string;
}

export async function barePkcs11Rate(config: Pkcs11StoreConfig, seconds: number): Promise<BareResult> {
  const lib = acquireModule(config.modulePath);
  const sessions: Buffer[] = [];
  try {
    const slot = findSlot(lib, config.token);
    if (slot === undefined) throw new Error("bench token not found");
    for (let i = 0; i < config.sessions; i++)
      sessions.push(lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION));
    login(lib, sessions[0]!, readPin(config.pin));
    const key = discoverKeys(lib, sessions[0]!, config.keys).keys[0]!;
    const { mechanism } = await probeMechanism(lib, sessions[0]!, key, config.mechanism);
    const ciphertext = publicEncrypt(
      { key: key.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
      Buffer.alloc(32, 7),
    );
    const loop = async (forSeconds: number) => {
      let count = 0;
      const deadline = performance.now() + forSeconds * 1000;
      await Promise.all(
        sessions.map(async (session) => {
          while (performance.now() < deadline) {
            await tokenDecrypt(lib, session, key, mechanism, ciphertext);
            count++;
          }
        }),
      );
      return count;
    };
    await loop(0.5); // warm-up: JIT, the token's key cache
    const cpuBefore = process.cpuUsage();
    const start = performance.now();
    const count = await loop(seconds);
    const cpu = process.cpuUsage(cpuBefore);
    return {
      opsPerSecond: count / ((performance.now() - start) / 1000),
      cpuMicrosPerOp: (cpu.user + cpu.system) / count,
      sessions: sessions.length,
      mechanism,
    };
  } finally {
    for (const session of sessions) lib.C_CloseSession(session);
    releaseModule(config.modulePath);
  }
}
