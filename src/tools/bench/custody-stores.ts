/**
 * Key stores bench:custody can run the service on (`--store NAME`). Each entry prepares a store holding
 * `privateKey` and returns the environment variables that point custody at it, and, for a store whose
 * private operation is not OpenSSL's (PKCS#11), the reference for that operation.
 */
import type { KeyObject } from "node:crypto";
import { createPublicKey } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fingerprintForms } from "../../core/crypto/fingerprint.js";
import { writeManifest } from "../../custody/keystore/file/manifest.js";
import { SOFTHSM_MODULE } from "../softhsm-token.js";
import type { BareResult } from "./pkcs11-bare.js";
import { pkcs11BenchStore } from "./pkcs11-store.js";

export interface BenchStore {
  readonly env: Record<string, string>;
  readonly bareReference?: (seconds: number) => Promise<BareResult>;
}

export interface BenchStoreEntry {
  /** What the store needs on this machine beyond npm packages; undefined when all is there. */
  missing(): string | undefined;
  setup(workDir: string, privateKey: KeyObject): Promise<BenchStore>;
}

export const BENCH_STORES: Record<string, BenchStoreEntry> = {
  file: {
    missing: () => undefined,
    async setup(workDir, privateKey) {
      const dir = join(workDir, "bench-keys");
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(join(dir, "bench.pem"), privateKey.export({ type: "pkcs8", format: "pem" }), {
        mode: 0o600,
      });
      const fingerprint = fingerprintForms(createPublicKey(privateKey)).canonical;
      writeManifest(dir, { version: 1, keys: { [fingerprint]: { state: "active", file: "bench.pem" } } });
      return { env: { CUSTODY_KEYSTORE: "file", CUSTODY_KEY_DIR: dir } };
    },
  },
  pkcs11: {
    missing: () => (existsSync(SOFTHSM_MODULE) ? undefined : `SoftHSM2 (${SOFTHSM_MODULE}, Debian softhsm2)`),
    setup: pkcs11BenchStore,
  },
};
