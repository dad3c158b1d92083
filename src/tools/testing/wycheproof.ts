/**
 * Reads the Wycheproof vectors vendored in testdata/vectors/wycheproof (Apache-2.0; LICENSE and the upstream
 * commit beside them), so a fresh clone needs nothing outside its own tree.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const WYCHEPROOF_DIR = fileURLToPath(new URL("../../../testdata/vectors/wycheproof/", import.meta.url));

export function readWycheproof<T>(file: string): T {
  return JSON.parse(readFileSync(`${WYCHEPROOF_DIR}${file}`, "utf8")) as T;
}

export interface OaepCase {
  tcId: number;
  comment: string;
  msg: string;
  ct: string;
  label: string;
  result: "valid" | "invalid" | "acceptable";
  flags: string[];
}

export interface OaepGroup {
  keySize: number;
  privateKeyPem: string;
  sha: string;
  mgfSha: string;
  tests: OaepCase[];
}

/** rsa_oaep_2048_sha256_mgf1sha256_test.json: RSA-OAEP with SHA-256 and MGF1-SHA-256, 2048-bit keys. */
export function readOaepSha256Vectors(): OaepGroup[] {
  return readWycheproof<{ testGroups: OaepGroup[] }>("rsa_oaep_2048_sha256_mgf1sha256_test.json").testGroups;
}
