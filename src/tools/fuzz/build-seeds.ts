/**
 * Builds fuzz/corpus/<target>/ from the vendored Wycheproof vectors and the partner example bodies
 * (testdata/fixtures/partners/), plus a few hand-made shapes per target. Run with
 * `tsx src/tools/fuzz/build-seeds.ts`; the output is committed (tens of KB) so the regression run needs no
 * generation step. Files already there are kept: crashes copied in as regression cases live alongside. Seeds carry test PANs only; RSA private members of Wycheproof keys are stripped.
 */
import { createHash, generateKeyPairSync } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fingerprintForms } from "../../core/crypto/fingerprint.js";
import { knotSignature } from "../../gateway/knot/signature.js";
import type { TargetName } from "./targets.js";

const ROOT = new URL("../../../", import.meta.url).pathname;
const CORPUS = join(ROOT, "fuzz/corpus");
const PARTNERS = join(ROOT, "testdata/fixtures/partners");
const WYCHEPROOF = join(ROOT, "testdata/vectors/wycheproof");

const seeds = new Map<TargetName, Buffer[]>();
function add(target: TargetName, value: string | Buffer): void {
  const list = seeds.get(target) ?? [];
  list.push(typeof value === "string" ? Buffer.from(value, "utf8") : value);
  seeds.set(target, list);
}

interface JweGroup {
  private: Record<string, unknown>;
  tests: { jwe: unknown }[];
}
const jweVectors = JSON.parse(readFileSync(join(WYCHEPROOF, "json_web_encryption_test.json"), "utf8")) as {
  testGroups: JweGroup[];
};
const RSA_PRIVATE = ["d", "p", "q", "dp", "dq", "qi"];
for (const group of jweVectors.testGroups) {
  for (const t of group.tests) {
    if (typeof t.jwe !== "string") continue;
    add("jwe-parse", t.jwe);
    const header = t.jwe.split(".")[0]!;
    add("json-members", Buffer.from(header, "base64url"));
  }
  if (group.private.kty === "RSA") {
    const pub = Object.fromEntries(Object.entries(group.private).filter(([k]) => !RSA_PRIVATE.includes(k)));
    add("knot-jwk", JSON.stringify(pub));
    add("knot-jwk", JSON.stringify({ ...pub, alg: "RSA-OAEP-256", use: "enc" }));
  }
}

for (const file of readdirSync(PARTNERS).filter((f) => f.endsWith(".json"))) {
  const body = readFileSync(join(PARTNERS, file));
  add("json-members", body);
  if (file.startsWith("dotva-")) add("dotva-webhook", body);
  if (file.startsWith("knot-")) add("knot-webhook", body);
  const parsed = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
  const jwe = (parsed.jwe ?? (parsed.data as Record<string, unknown> | undefined)?.secrets_jwe) as unknown;
  if (typeof jwe === "string") add("jwe-parse", jwe);
  const fp = (parsed.data as Record<string, unknown> | undefined)?.key_fingerprint;
  if (typeof fp === "string") add("fingerprint", fp);
  if (file === "knot-jwe-plaintext.json") add("dotva-secrets", JSON.stringify(parsed.card));
}

for (const shape of [
  { pan: "4242424242424242", cvv: "123", expiry_month: 8, expiry_year: 2031 },
  { card: { number: 4242424242424242, cvc: 1234, expiry: "08/31" } },
  { card_number: "4000056655665556", security_code: "999", expiration: "2031-08" },
  { pan: "4242424242424242", cvv: "123", exp_month: "08", exp_year: "31", extra: [1, { a: null }] },
]) {
  add("dotva-secrets", JSON.stringify(shape));
}

const { publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const forms = fingerprintForms(publicKey);
for (const form of [forms.canonical, ...forms.aliases, `SHA-256:${forms.canonical.slice(7).toUpperCase()}`]) {
  add("fingerprint", form);
}
add("knot-jwk", JSON.stringify({ ...publicKey.export({ format: "jwk" }), use: "enc", kid: "k1" }));

add(
  "san-uris",
  Buffer.from([0, 30, ...Buffer.from("spiffe://example.org/ns/gateway"), 1, 9, ...Buffer.from('a, URI:b"')]),
);
add("san-uris", Buffer.from([2, 4, 127, 0, 0, 1, 0, 3, 0xe2, 0x82, 0xac]));

const facts = {
  contentLength: "233",
  contentType: "application/json",
  encryptionType: "HMAC-SHA256",
  event: "CARD_UPDATED",
  sessionId: "915efe72-5136-4652-z91q-d9d48003c102",
};
const fields = [facts.contentLength, facts.contentType, facts.encryptionType, facts.event, facts.sessionId];
add("knot-signature", [...fields, knotSignature("fuzz-client-secret", facts)].join("\u0000"));
add("knot-signature", [...fields.slice(0, 4)].join("\u0000"));

// Leading byte, message length, seed and message, then (position, mask) damage in DB: a valid block
// holding a content key, one with a damaged label hash, padding and separator, a 16-byte message.
const oaepValid = Buffer.concat([Buffer.from([0, 0]), Buffer.alloc(32, 7), Buffer.alloc(32, 0x41)]);
add("oaep-decode", oaepValid);
add("oaep-decode", Buffer.concat([oaepValid, Buffer.from([31, 0x80])]));
add("oaep-decode", Buffer.concat([oaepValid, Buffer.from([40, 0x01])]));
add("oaep-decode", Buffer.concat([oaepValid, Buffer.from([190, 0x03])]));
add("oaep-decode", Buffer.concat([Buffer.from([0, 144]), Buffer.alloc(32, 9), Buffer.alloc(16, 0x42)]));

let total = 0;
for (const [target, list] of seeds) {
  const dir = join(CORPUS, target);
  mkdirSync(dir, { recursive: true });
  for (const seed of list) {
    writeFileSync(join(dir, createHash("sha1").update(seed).digest("hex")), seed);
    total += seed.length;
  }
  console.log(`${target}: ${list.length} seeds`);
}
console.log(`total ${total} bytes`);
