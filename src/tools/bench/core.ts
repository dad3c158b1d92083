/**
 * npm run bench:core — single-thread throughput (per CPU-second) of the re-encryption core, against references
 * measured in the same run on the same machine:
 *   - openssl speed rsa2048 private ops/s on one core (the physical floor: one RSA private op per call);
 *   - a plain jose compactDecrypt + CompactEncrypt loop (what a naive implementation does);
 *   - the node:crypto floor: only the node:crypto calls a re-encryption cannot do without, on the same
 *     inputs (RSA-OAEP-256 private decrypt with OpenSSL's own padding check, AES-256-GCM decrypt,
 *     key and IV from the CSPRNG, RSA-OAEP-256 public encrypt, AES-256-GCM encrypt): no JWE parsing,
 *     card mapping, constant-time padding decode or zeroisation. Its rate over openssl's bounds
 *     core_vs_openssl_1core from above for any core written on node:crypto; the core's rate over it is
 *     what the core's own work leaves.
 * Ends with one line holding a JSON object of figures and ratios.
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
} from "node:crypto";
import { loadavg } from "node:os";
import { CompactEncrypt, compactDecrypt } from "jose";
import { parseKnotUser } from "../../core/card/knot-user.js";
import { parseCompactJwe } from "../../core/crypto/jwe-decrypt.js";
import { parseKnotJwk } from "../../core/crypto/knot-jwk.js";
import { reencryptForKnot } from "../../core/reencrypt.js";
import { privateKeyUnwrap } from "../../custody/keystore/private-key-unwrap.js";
import { SAMPLE_CARDHOLDER } from "../simulators/sample-cardholder.js";
import { opensslRsa2048PrivateOpsPerSecond } from "./openssl-speed.js";

// As in custody's re-encryption worker, where the core runs (src/custody/worker/reencrypt-worker.ts): no
// stack traces, which Node 24's key checks would otherwise capture for errors they throw and catch inside
// every cipher and RSA call. The jose baseline runs under the same setting.
Error.stackTraceLimit = 0;

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

const dotva = generateKeyPairSync("rsa", { modulusLength: 2048 });
const knot = generateKeyPairSync("rsa", { modulusLength: 2048 });
const knotJwkText = JSON.stringify({ ...knot.publicKey.export({ format: "jwk" }), kid: "bench" });
const user = parseKnotUser(SAMPLE_CARDHOLDER);
const secrets = new TextEncoder().encode(
  JSON.stringify({
    pan: "4242424242424242",
    cvv: "123",
    expiry_month: 8,
    expiry_year: new Date().getUTCFullYear() + 3,
  }),
);
const dotvaJwe = await new CompactEncrypt(secrets)
  .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM" })
  .encrypt(dotva.publicKey);

/**
 * Calls per second of this process's CPU time (all threads: V8's GC helpers, and libuv's pool where
 * jose's WebCrypto runs its RSA), not of wall time: `openssl speed` divides by its own CPU time too, so
 * the ratio holds when other processes share the cores (wall-clock rates then measure the scheduler).
 */
async function rate(once: () => unknown): Promise<number> {
  let count = 0;
  const cpuBefore = process.cpuUsage();
  const deadline = performance.now() + SECONDS * 1000;
  while (performance.now() < deadline) {
    await once();
    count++;
  }
  const cpu = process.cpuUsage(cpuBefore);
  return count / ((cpu.user + cpu.system) / 1e6);
}

// The core as custody runs it: the JWE parsed per call, a key-store unwrap, re-encryption. Knot's key is
// parsed once, as custody does (it caches parsed recipients by JWK text: Knot rotates rarely).
const recipient = parseKnotJwk(knotJwkText);
const core = () =>
  reencryptForKnot({
    jwe: parseCompactJwe(dotvaJwe),
    unwrap: privateKeyUnwrap(dotva.privateKey),
    recipient,
    user,
    now: new Date(),
  });

const joseBaseline = async () => {
  const { plaintext } = await compactDecrypt(dotvaJwe, dotva.privateKey);
  return new CompactEncrypt(plaintext)
    .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM" })
    .encrypt(knot.publicKey);
};

// The floor's inputs: the JWE's parts as bytes, the protected header as its AAD, and a payload of the
// size the core sends to Knot.
const [headerB64, encryptedKeyB64, ivB64, ciphertextB64, tagB64] = dotvaJwe.split(".") as [
  string,
  string,
  string,
  string,
  string,
];
const floorInput = {
  aad: Buffer.from(headerB64, "ascii"),
  encryptedKey: Buffer.from(encryptedKeyB64, "base64url"),
  iv: Buffer.from(ivB64, "base64url"),
  ciphertext: Buffer.from(ciphertextB64, "base64url"),
  tag: Buffer.from(tagB64, "base64url"),
  payload: Buffer.from((await core()).jwe.split(".")[3]!, "base64url"),
};
const nodeCryptoFloor = () => {
  const cek = privateDecrypt(
    { key: dotva.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
    floorInput.encryptedKey,
  );
  const decipher = createDecipheriv("aes-256-gcm", cek, floorInput.iv, { authTagLength: 16 });
  decipher.setAAD(floorInput.aad);
  decipher.setAuthTag(floorInput.tag);
  decipher.update(floorInput.ciphertext);
  decipher.final();
  const random = randomBytes(44);
  publicEncrypt(
    { key: knot.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
    random.subarray(0, 32),
  );
  const cipher = createCipheriv("aes-256-gcm", random.subarray(0, 32), random.subarray(32), {
    authTagLength: 16,
  });
  cipher.setAAD(recipient.aad);
  cipher.update(floorInput.payload);
  cipher.final();
  return cipher.getAuthTag();
};

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number, digits = 3) => Number(x.toFixed(digits));

console.log(
  `bench:core on ${process.version}, load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`,
);
for (let i = 0; i < 50; i++) {
  await core(); // warm-up: JIT and OpenSSL's per-key caches
  await joseBaseline();
  nodeCryptoFloor();
}
// Rounds interleave the three measures, so a change in machine load (two shared cores) hits all alike;
// the ratios are taken within each round and the median round is reported.
const rounds: { openssl: number; core: number; jose: number; floor: number }[] = [];
for (let r = 1; r <= ROUNDS; r++) {
  const openssl = opensslRsa2048PrivateOpsPerSecond({ seconds: SECONDS });
  const coreRate = await rate(core);
  const joseRate = await rate(joseBaseline);
  const floorRate = await rate(nodeCryptoFloor);
  rounds.push({ openssl, core: coreRate, jose: joseRate, floor: floorRate });
  console.log(
    `round ${r}: openssl rsa2048 ${openssl.toFixed(0)}/s  core ${coreRate.toFixed(0)}/s  jose ${joseRate.toFixed(0)}/s  node:crypto floor ${floorRate.toFixed(0)}/s  core/openssl ${(coreRate / openssl).toFixed(3)}  floor/openssl ${(floorRate / openssl).toFixed(3)}`,
  );
}

console.log(
  JSON.stringify({
    bench: "core",
    rounds: ROUNDS,
    seconds_per_measure: SECONDS,
    core_per_s: round(median(rounds.map((x) => x.core)), 1),
    jose_baseline_per_s: round(median(rounds.map((x) => x.jose)), 1),
    openssl_rsa2048_sign_per_s_1core: round(median(rounds.map((x) => x.openssl)), 1),
    core_vs_openssl_1core: round(median(rounds.map((x) => x.core / x.openssl))),
    core_vs_jose: round(median(rounds.map((x) => x.core / x.jose))),
    jose_vs_openssl_1core: round(median(rounds.map((x) => x.jose / x.openssl))),
    nodecrypto_floor_per_s: round(median(rounds.map((x) => x.floor)), 1),
    nodecrypto_floor_vs_openssl_1core: round(median(rounds.map((x) => x.floor / x.openssl))),
    core_vs_nodecrypto_floor: round(median(rounds.map((x) => x.core / x.floor))),
    load_average_1m: round(loadavg()[0]!, 2),
  }),
);
