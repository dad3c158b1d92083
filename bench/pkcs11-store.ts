/**
 * bench:custody on the PKCS#11 store: a throwaway SoftHSM2 token in the bench's work directory holding
 * the bench's Dotva key (imported sensitive and non-extractable), the environment that points the
 * custody process at it, and the reference measured in the same run: the bare pkcs11js loop over the
 * same number of sessions the service uses.
 */
import type { KeyObject } from "node:crypto";
import { join } from "node:path";
import { emptySoftHsmToken, SOFTHSM_MODULE } from "../scripts/softhsm-token.js";
import { configFromUris, type Pkcs11StoreConfig } from "../src/keystore/pkcs11/config.js";
import { importIntoToken, withTokenSession } from "../src/keystore/pkcs11/token-admin.js";
import { barePkcs11Rate } from "./pkcs11-bare.js";

const SESSIONS = 4;
let prepared: Pkcs11StoreConfig | undefined;

export async function pkcs11BenchStore(
  workDir: string,
  privateKey: KeyObject,
): Promise<Record<string, string>> {
  const token = emptySoftHsmToken(join(workDir, "softhsm"), "custody-bench");
  const uri = `pkcs11:token=${token.label};object=dotva-bench;type=private?module-path=${SOFTHSM_MODULE}&pin-source=file:${token.pinFile}`;
  prepared = configFromUris([uri], { sessions: SESSIONS });
  await withTokenSession(prepared, (admin) =>
    importIntoToken(
      admin,
      "dotva-bench",
      Buffer.from([1]),
      privateKey.export({ type: "pkcs8", format: "pem" }),
    ),
  );
  return {
    SOFTHSM2_CONF: token.conf,
    CUSTODY_KEYSTORE: "pkcs11",
    CUSTODY_PKCS11_URI: uri,
    CUSTODY_PKCS11_SESSIONS: String(SESSIONS),
  };
}

/** The bare loop in this (the bench) process; the custody process is idle meanwhile. */
export async function pkcs11BenchReference(seconds: number) {
  if (prepared === undefined) throw new Error("pkcs11BenchStore must run first");
  const bare = await barePkcs11Rate(prepared, seconds);
  return {
    line: `bare pkcs11js ${bare.mechanism} loop, ${bare.sessions} sessions: ${bare.opsPerSecond.toFixed(0)} private ops/s`,
    rate: bare.opsPerSecond,
    rateName: "bare_pkcs11_ops_per_s",
    ratioName: "grpc_vs_bare_pkcs11",
    fields: { pkcs11_sessions: bare.sessions },
  };
}
