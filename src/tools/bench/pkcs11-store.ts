/**
 * bench:custody on the PKCS#11 store: a throwaway SoftHSM2 token in the bench's work directory holding
 * the bench's Dotva key (imported sensitive and non-extractable), the environment that points the
 * custody process at it, and the reference measured in the same run: the bare pkcs11js loop over the
 * same number of sessions on the same token, in a process of its own (pkcs11-bare-child.ts).
 */
import { spawn } from "node:child_process";
import type { KeyObject } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { configFromUris } from "../../custody/keystore/pkcs11/config.js";
import { importIntoToken, withTokenSession } from "../../custody/keystore/pkcs11/token-admin.js";
import { emptySoftHsmToken, SOFTHSM_MODULE } from "../softhsm-token.js";
import type { BareResult } from "./pkcs11-bare.js";

const SESSIONS = 4;

export interface Pkcs11Bench {
  readonly env: Record<string, string>;
  /** Runs the bare loop for `seconds` in a child process; resolves with its rate and CPU per op. */
  bareReference(seconds: number): Promise<BareResult>;
}

export async function pkcs11BenchStore(workDir: string, privateKey: KeyObject): Promise<Pkcs11Bench> {
  const token = emptySoftHsmToken(join(workDir, "softhsm"), "custody-bench");
  const uri = `pkcs11:token=${token.label};object=dotva-bench;type=private?module-path=${SOFTHSM_MODULE}&pin-source=file:${token.pinFile}`;
  await withTokenSession(configFromUris([uri], { sessions: SESSIONS }), (admin) =>
    importIntoToken(
      admin,
      "dotva-bench",
      Buffer.from([1]),
      privateKey.export({ type: "pkcs8", format: "pem" }),
    ),
  );
  const child = fileURLToPath(new URL("./pkcs11-bare-child.ts", import.meta.url));
  return {
    env: {
      SOFTHSM2_CONF: token.conf,
      CUSTODY_KEYSTORE: "pkcs11",
      CUSTODY_PKCS11_URI: uri,
      CUSTODY_PKCS11_SESSIONS: String(SESSIONS),
    },
    bareReference: (seconds) =>
      new Promise((resolve, reject) => {
        const proc = spawn(process.execPath, ["--import", "tsx", child], {
          env: {
            PATH: process.env.PATH ?? "/usr/bin:/bin",
            SOFTHSM2_CONF: token.conf,
            BARE_URI: uri,
            BARE_SESSIONS: String(SESSIONS),
            BARE_SECONDS: String(seconds),
          },
          stdio: ["ignore", "pipe", "inherit"],
        });
        let out = "";
        proc.stdout.on("data", (d) => {
          out += String(d);
        });
        proc.once("error", reject);
        proc.once("exit", (code) =>
          code === 0
            ? resolve(JSON.parse(out) as BareResult)
            : reject(new Error(`bare pkcs11 loop exited ${code}`)),
        );
      }),
  };
}
