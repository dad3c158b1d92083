/** Runs src/tools/testing/jwcrypto_peer.py with Debian's Python, where python3-jwcrypto is installed. */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("./jwcrypto_peer.py", import.meta.url));
// Debian's interpreter, not one a version manager may put first on PATH: the package lives there.
const PYTHON = "/usr/bin/python3";

export function jwcrypto(mode: "encrypt" | "decrypt" | "pem2jwk", request: object): string {
  return execFileSync(PYTHON, [SCRIPT, mode], {
    input: JSON.stringify(request),
    encoding: "utf8",
    timeout: 20_000,
  });
}
