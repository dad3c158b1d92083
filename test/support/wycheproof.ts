/**
 * Reads the Wycheproof vectors where the project keeps them (../shared/vectors/wycheproof, Apache-2.0,
 * LICENSE beside them). They are read in place, never copied into this repository.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const WYCHEPROOF_DIR = fileURLToPath(new URL("../../../shared/vectors/wycheproof/", import.meta.url));

export function readWycheproof<T>(file: string): T {
  return JSON.parse(readFileSync(`${WYCHEPROOF_DIR}${file}`, "utf8")) as T;
}
