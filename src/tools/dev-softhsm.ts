/**
 * npm run dev:softhsm — a development SoftHSM2 token under keys/softhsm/ with a Dotva key generated
 * inside it, and the environment that points custody at it. Idempotent: an existing token is kept.
 */
import { fileURLToPath } from "node:url";
import { softHsmToken } from "./softhsm-token.js";

const dir = fileURLToPath(new URL("../../keys/softhsm/", import.meta.url));
const token = await softHsmToken(dir);
console.log(`SoftHSM2 token "${token.label}" in ${dir} (PIN in ${token.pinFile}, mode 600)`);
console.log("Run custody on it with:");
console.log(`  export SOFTHSM2_CONF=${token.conf}`);
console.log("  export CUSTODY_KEYSTORE=pkcs11");
console.log(`  export CUSTODY_PKCS11_URI='${token.uri}'`);
