/**
 * Key stores bench:custody can run the service on (`--store NAME`). Each entry prepares a store holding
 * `privateKey` and returns the environment variables that point custody at it. The PKCS#11 store adds
 * its entry here.
 */
import type { KeyObject } from "node:crypto";
import { createPublicKey } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fingerprintForms } from "../src/crypto/fingerprint.js";
import { writeManifest } from "../src/keystore/file/manifest.js";
import { pkcs11BenchReference, pkcs11BenchStore } from "./pkcs11-store.js";

export type BenchStoreSetup = (workDir: string, privateKey: KeyObject) => Promise<Record<string, string>>;

export const BENCH_STORES: Record<string, BenchStoreSetup> = {
  async file(workDir, privateKey) {
    const dir = join(workDir, "bench-keys");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, "bench.pem"), privateKey.export({ type: "pkcs8", format: "pem" }), {
      mode: 0o600,
    });
    const fingerprint = fingerprintForms(createPublicKey(privateKey)).canonical;
    writeManifest(dir, { version: 1, keys: { [fingerprint]: { state: "active", file: "bench.pem" } } });
    return { CUSTODY_KEYSTORE: "file", CUSTODY_KEY_DIR: dir };
  },
  pkcs11: pkcs11BenchStore,
};

/**
 * A store's own reference, measured in the same run (before and after the gRPC phase, averaged); the
 * JSON line gets `rateName` and `ratioName` = gRPC calls/s over the reference rate.
 */
export const BENCH_STORE_REFERENCES: Record<
  string,
  (seconds: number) => Promise<{
    line: string;
    rate: number;
    rateName: string;
    ratioName: string;
    fields: Record<string, number>;
  }>
> = {
  pkcs11: pkcs11BenchReference,
};
