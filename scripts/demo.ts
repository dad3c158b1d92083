/**
 * npm run demo — a local demonstration of the re-encryption core, with no servers: a Dotva-like
 * issuer encrypts a test card to a custody key, custody's core re-encrypts it for a Knot-like
 * recipient, and the recipient decrypts and checks it. Prints each step; never prints card data
 * beyond the last four digits.
 */
import { generateKeyPairSync } from "node:crypto";
import { CompactEncrypt, compactDecrypt } from "jose";
import { fingerprintForms } from "../src/crypto/fingerprint.js";
import { parseCompactJwe } from "../src/crypto/jwe-decrypt.js";
import { parseKnotJwk } from "../src/crypto/knot-jwk.js";
import { parseKnotUser } from "../src/custody/card/knot-user.js";
import { reencryptForKnot } from "../src/custody/reencrypt.js";
import { privateKeyUnwrap } from "../src/keystore/private-key-unwrap.js";

const step = (n: number, text: string) => console.log(`[${n}] ${text}`);

const custodyKey = generateKeyPairSync("rsa", { modulusLength: 2048 });
const { canonical } = fingerprintForms(custodyKey.publicKey);
step(1, `custody key generated; fingerprint ${canonical}`);

const card = { pan: "4242424242424242", cvv: "123", expiry_month: "8", expiry_year: "30" };
const secretsJwe = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(card)))
  .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM" })
  .encrypt(custodyKey.publicKey);
step(2, `Dotva encrypts a test card to that key: secrets_jwe of ${secretsJwe.length} characters`);

const knotKey = generateKeyPairSync("rsa", { modulusLength: 2048 });
const knotJwk = JSON.stringify({
  ...knotKey.publicKey.export({ format: "jwk" }),
  kid: "knot-demo",
  use: "enc",
});
const recipient = parseKnotJwk(knotJwk);
step(3, `Knot publishes its JWE key; RFC 7638 thumbprint ${recipient.thumbprint}`);

const out = await reencryptForKnot({
  jwe: parseCompactJwe(secretsJwe),
  unwrap: privateKeyUnwrap(custodyKey.privateKey),
  recipient,
  user: parseKnotUser({
    name: { first_name: "Ada", last_name: "Lovelace" },
    address: {
      street: "100 Main Street",
      city: "New York",
      region: "NY",
      postal_code: "10001",
      country: "US",
    },
    phone_number: "+14155550123",
  }),
  now: new Date(),
});
step(4, `custody re-encrypts for Knot: card ending ${out.cardLast4}, JWE of ${out.jwe.length} characters`);

const { plaintext } = await compactDecrypt(out.jwe, knotKey.privateKey);
const payload = JSON.parse(new TextDecoder().decode(plaintext));
const ok =
  payload.card.number === card.pan &&
  payload.card.expiration === "08/2030" &&
  payload.user.name.first_name === "Ada";
step(5, `Knot decrypts the payload: ${ok ? "card and cardholder match" : "MISMATCH"}`);
process.exit(ok ? 0 : 1);
