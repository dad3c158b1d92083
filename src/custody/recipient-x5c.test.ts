/**
 * The x5c recipient policy against the security review's probe: each certificate the probe got accepted
 * under a configured root (a leaf for another name with TLS-server EKU and a signing-only key, a CA:TRUE
 * leaf, a chain that breaks pathLen:0, a SHA-1 leaf) is refused with its own stable reason, the good
 * chain is accepted, and an accepted verdict is cached by JWK thumbprint until the chain expires.
 * Chains are minted with node-forge and, for interop, with the openssl CLI; the validator is
 * @peculiar/x509 + WebCrypto.
 */
import "reflect-metadata";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "@peculiar/x509";
import forge from "node-forge";
import { describe, expect, it } from "vitest";
import { parseKnotJwk } from "../core/crypto/knot-jwk.js";
import {
  type CertShape,
  certificateDer,
  type Issuer,
  issueCertificate,
  makeCa,
  makeIntermediate,
} from "../tools/dev-pki.js";
import { canonicalSubject, RecipientPolicy, type X5cPolicyEntry } from "./recipient-policy.js";

const DAY = 86_400_000;
const now = new Date();
const valid: [Date, Date] = [new Date(now.getTime() - DAY), new Date(now.getTime() + 30 * DAY)];
const KNOT_DNS = "jwe.knot.test";
const KNOT_SUBJECT = "CN=knot encryption, O=card custody dev";

const knot = generateKeyPairSync("rsa", { modulusLength: 2048 });
const root = makeCa("Knot test root", ...valid);
const otherRoot = makeCa("Not Knot", ...valid);
const entry: X5cPolicyEntry = {
  root: new X509Certificate(root.pem),
  label: "knot-root.pem",
  leafDns: KNOT_DNS,
};

function leafShape(overrides: Partial<CertShape> = {}): CertShape {
  return {
    cn: "knot encryption",
    publicKey: knot.publicKey,
    notBefore: valid[0],
    notAfter: valid[1],
    altNames: [{ type: 2, value: KNOT_DNS }],
    ...overrides,
  };
}

const leaf = (overrides: Partial<CertShape> = {}, issuer: Issuer = root) =>
  certificateDer(issueCertificate(issuer, leafShape(overrides)));

function recipient(x5c: string[] | undefined, publicKey: KeyObject = knot.publicKey) {
  return parseKnotJwk(JSON.stringify({ ...publicKey.export({ format: "jwk" }), ...(x5c ? { x5c } : {}) }));
}

const policy = (entries: X5cPolicyEntry[] = [entry], capacity?: number) =>
  new RecipientPolicy({ pinnedThumbprints: new Set(), x5c: entries, allowAny: false }, capacity);

/** An end-entity certificate (CA:FALSE) used as if it were an intermediate. */
function endEntityIssuer(): Issuer {
  const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const cert = issueCertificate(root, leafShape({ cn: "not a CA", publicKey: pair.publicKey }));
  const key = forge.pki.privateKeyFromPem(
    pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  );
  return { cert, key };
}

describe("x5c recipient policy", () => {
  it.each([
    { what: "the leaf alone", x5c: () => [leaf()] },
    { what: "leaf and root", x5c: () => [leaf(), certificateDer(root.cert)] },
    {
      what: "leaf and an intermediate with pathLen:0",
      x5c: () => {
        const intermediate = makeIntermediate(root, "Knot issuing CA", ...valid, 0);
        return [leaf({}, intermediate), certificateDer(intermediate.cert)];
      },
    },
  ])("accepts Knot's leaf bound to the configured root: $what", async ({ x5c }) => {
    const decision = await policy().decide(recipient(x5c()), now);
    expect(decision).toEqual({ allowed: true, basis: "x5c", rule: `knot-root.pem -> dns:${KNOT_DNS}` });
  });

  it.each([
    [
      "the probe's leaf: attacker.example, TLS-server EKU, signing-only key usage",
      () => [
        leaf({
          altNames: [{ type: 2, value: "attacker.example" }],
          usage: "server",
          keyUsage: { digitalSignature: true },
        }),
      ],
      "LEAF_KEY_USAGE",
    ],
    [
      "Knot's name but a signing-only key usage",
      () => [leaf({ keyUsage: { digitalSignature: true } })],
      "LEAF_KEY_USAGE",
    ],
    [
      "a well-formed leaf for another name under the same root",
      () => [leaf({ altNames: [{ type: 2, value: "attacker.example" }] })],
      "LEAF_NAME_MISMATCH",
    ],
    ["a CA:TRUE leaf", () => [leaf({ leafClaimsCa: true })], "LEAF_IS_CA"],
    [
      "a chain that breaks an intermediate's pathLen:0",
      () => {
        const first = makeIntermediate(root, "Knot CA pathLen 0", ...valid, 0);
        const second = makeIntermediate(first, "Knot sub CA", ...valid);
        return [leaf({}, second), certificateDer(second.cert), certificateDer(first.cert)];
      },
      "PATH_LENGTH_EXCEEDED",
    ],
    ["a SHA-1 signed leaf", () => [leaf({ digest: "sha1" })], "WEAK_SIGNATURE_ALGORITHM"],
    [
      "a leaf signed by an end-entity certificate",
      () => {
        const fake = endEntityIssuer();
        return [leaf({}, fake), certificateDer(fake.cert)];
      },
      "INTERMEDIATE_NOT_CA",
    ],
    [
      "a leaf for another key",
      () => [leaf({ publicKey: generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey })],
      "LEAF_KEY_MISMATCH",
    ],
    [
      "an expired leaf",
      () => [
        leaf({ notBefore: new Date(now.getTime() - 10 * DAY), notAfter: new Date(now.getTime() - DAY) }),
      ],
      "CERTIFICATE_NOT_VALID_NOW",
    ],
    ["a leaf from another root", () => [leaf({}, otherRoot)], "UNTRUSTED_ROOT"],
    [
      "intermediates in the wrong order",
      () => {
        const first = makeIntermediate(root, "Knot CA 1", ...valid);
        const second = makeIntermediate(first, "Knot CA 2", ...valid);
        return [leaf({}, second), certificateDer(first.cert), certificateDer(second.cert)];
      },
      "CHAIN_BROKEN",
    ],
    [
      "a certificate that is not DER",
      () => [Buffer.from("not a certificate").toString("base64")],
      "X5C_MALFORMED",
    ],
  ])("refuses %s", async (_what, x5c, reason) => {
    expect(await policy().decide(recipient(x5c()), now)).toEqual({ allowed: false, reason });
  });

  it("counts the root's own pathLen: a root with pathLen:0 certifies no intermediate", async () => {
    const strictRoot = makeCa("Knot root pathLen 0", ...valid, 0);
    const intermediate = makeIntermediate(strictRoot, "Knot issuing CA", ...valid);
    const strictEntry = { ...entry, root: new X509Certificate(strictRoot.pem) };
    const x5c = [leaf({}, intermediate), certificateDer(intermediate.cert)];
    expect(await policy([strictEntry]).decide(recipient(x5c), now)).toEqual({
      allowed: false,
      reason: "PATH_LENGTH_EXCEEDED",
    });
    const direct = [leaf({}, strictRoot)];
    expect((await policy([strictEntry]).decide(recipient(direct), now)).allowed).toBe(true);
  });

  it("binds by subject when the entry names leaf_subject", async () => {
    const bySubject = {
      root: entry.root,
      label: "knot-root.pem",
      leafSubject: canonicalSubject(KNOT_SUBJECT),
    };
    expect((await policy([bySubject]).decide(recipient([leaf()]), now)).allowed).toBe(true);
    const other = [leaf({ cn: "someone else" })];
    expect(await policy([bySubject]).decide(recipient(other), now)).toEqual({
      allowed: false,
      reason: "LEAF_NAME_MISMATCH",
    });
  });

  it("caches an accepted chain by thumbprint until the chain's earliest notAfter, never a refusal", async () => {
    const p = policy();
    const good = recipient([leaf()]);
    await p.decide(good, now);
    await p.decide(good, now);
    expect(p.counters).toEqual({ chainValidations: 1, cacheHits: 1 });

    // The same key with another chain is validated on its own merits, not waved through.
    const bad = recipient([leaf({ keyUsage: { digitalSignature: true } })]);
    expect((await p.decide(bad, now)).allowed).toBe(false);
    expect(p.counters.chainValidations).toBe(2);
    // The refusal did not replace or poison the cached acceptance.
    expect((await p.decide(good, now)).allowed).toBe(true);
    expect(p.counters).toEqual({ chainValidations: 2, cacheHits: 2 });

    // Past the leaf's notAfter the entry is not used: the chain is checked again, and now fails.
    const later = new Date(valid[1].getTime() + 1000);
    expect(await p.decide(good, later)).toEqual({ allowed: false, reason: "CERTIFICATE_NOT_VALID_NOW" });
    expect(p.counters.chainValidations).toBe(3);
  });

  it("keeps at most its capacity of verdicts, dropping the oldest", async () => {
    const p = policy([entry], 2);
    const keys = [knot, ...[0, 1].map(() => generateKeyPairSync("rsa", { modulusLength: 2048 }))];
    const recipients = keys.map((k) => recipient([leaf({ publicKey: k.publicKey })], k.publicKey));
    for (const r of recipients) await p.decide(r, now);
    await p.decide(recipients[2]!, now);
    expect(p.counters).toEqual({ chainValidations: 3, cacheHits: 1 });
    await p.decide(recipients[0]!, now);
    expect(p.counters).toEqual({ chainValidations: 4, cacheHits: 1 });
  });

  it("judges chains made by the openssl CLI the same way (good chain accepted, SHA-1 leaf refused)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "custody-openssl-x5c-"));
    const sh = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
    writeFileSync(join(dir, "root.key"), root.privateKey.export({ type: "pkcs8", format: "pem" }));
    writeFileSync(join(dir, "root.pem"), root.pem);
    writeFileSync(join(dir, "knot.key"), knot.privateKey.export({ type: "pkcs8", format: "pem" }));
    writeFileSync(
      join(dir, "leaf.ext"),
      `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyEncipherment\nsubjectAltName=DNS:${KNOT_DNS}\n`,
    );
    sh(["req", "-new", "-key", "knot.key", "-subj", "/CN=knot encryption", "-out", "leaf.csr"]);
    const sign = (digest: string, out: string) => {
      sh(
        [
          "x509",
          "-req",
          "-in",
          "leaf.csr",
          "-CA",
          "root.pem",
          "-CAkey",
          "root.key",
          "-set_serial",
          "7",
        ].concat(["-days", "2", `-${digest}`, "-extfile", "leaf.ext", "-out", out]),
      );
      return new X509Certificate(readFileSync(join(dir, out), "ascii")).toString("base64");
    };
    // openssl starts validity at the moment of signing, after this file's `now`.
    const good = recipient([sign("sha256", "leaf.pem")]);
    expect(await policy().decide(good, new Date(Date.now() + 1000))).toMatchObject({ allowed: true });
    const sha1 = recipient([sign("sha1", "leaf-sha1.pem")]);
    expect(await policy().decide(sha1, new Date(Date.now() + 1000))).toEqual({
      allowed: false,
      reason: "WEAK_SIGNATURE_ALGORITHM",
    });
  });
});
