/**
 * npm run dev:keys — the development PKI and Dotva key under keys/dev/ (see src/tools/dev-pki.ts).
 * Idempotent: an existing complete set is kept; `--force` makes a new one.
 */
import { fileURLToPath } from "node:url";
import { makeDevPki } from "./dev-pki.js";

const dir = fileURLToPath(new URL("../../keys/dev/", import.meta.url));
const pki = makeDevPki(dir, { force: process.argv.includes("--force") });
console.log(`dev PKI and Dotva key in ${pki.dir}`);
console.log(`  CA ${pki.caCert}; server ${pki.server.cert}; gateway client ${pki.gateway.cert}`);
console.log(`  Dotva key directory ${pki.dotvaKeyDir}; Knot dev JWK ${pki.knotJwk}`);
