/**
 * bench:custody --store pkcs11 runs the bare pkcs11js loop (pkcs11-bare.ts) in a process of its own, as
 * it runs custody, so the loop's CPU is not mixed with the load generator's. Environment: BARE_URI (the
 * key's PKCS#11 URI), BARE_SESSIONS, BARE_SECONDS, SOFTHSM2_CONF. Prints one JSON line.
 */
import { configFromUris } from "../../custody/keystore/pkcs11/config.js";
import { barePkcs11Rate } from "./pkcs11-bare.js";

const config = configFromUris([process.env.BARE_URI!], { sessions: Number(process.env.BARE_SESSIONS) });
const result = await barePkcs11Rate(config, Number(process.env.BARE_SECONDS));
process.stdout.write(`${JSON.stringify(result)}\n`);
