/**
 * Development PKI for custody's mTLS and a development Dotva key, made with node-forge (certificates)
 * and node:crypto (RSA key generation, which forge does in slow pure JavaScript).
 *
 * `npm run dev:keys` writes it under keys/dev/ (ignored by git); tests call `makeDevPki(tempDir)`.
 * Everything here is for local use only: a production deployment brings its own CA and certificates.
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import forge from "node-forge";
import { rsaJwkThumbprint } from "../core/crypto/fingerprint.js";
import { generateKeyFile } from "../custody/keytool/key-files.js";

export const DEV_TRUST_DOMAIN = "spiffe://card-custody.dev";
export const GATEWAY_CN = "card-gateway";
export const GATEWAY_SPIFFE = `${DEV_TRUST_DOMAIN}/gateway`;
export const INTRUDER_CN = "intruder";
export const INTRUDER_SPIFFE = `${DEV_TRUST_DOMAIN}/intruder`;

export interface CertPaths {
  readonly cert: string;
  readonly key: string;
}

export interface DevPki {
  readonly dir: string;
  readonly caCert: string;
  readonly server: CertPaths;
  /** Allowed caller: CN card-gateway, SAN URI spiffe://card-custody.dev/gateway. */
  readonly gateway: CertPaths;
  /** Same CA, an identity no allowlist names. */
  readonly intruder: CertPaths;
  /** The gateway identity, but the certificate expired yesterday. */
  readonly expired: CertPaths;
  /** The gateway identity signed by a CA custody does not trust. */
  readonly wrongCa: CertPaths;
  /** Directory holding the dev Dotva private key and its manifest (the file key store). */
  readonly dotvaKeyDir: string;
  /** Public JWK (JSON text) and private PEM of a dev Knot recipient key, and its RFC 7638 thumbprint. */
  readonly knotJwk: string;
  readonly knotPrivateKey: string;
  readonly knotThumbprint: string;
}

const DAY = 24 * 60 * 60 * 1000;

function toForgeKey(key: KeyObject): forge.pki.rsa.PrivateKey {
  return forge.pki.privateKeyFromPem(key.export({ type: "pkcs8", format: "pem" }).toString());
}

function rsaPair() {
  const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return { ...pair, forgePrivate: toForgeKey(pair.privateKey) };
}

export interface Issuer {
  readonly cert: forge.pki.Certificate;
  readonly key: forge.pki.rsa.PrivateKey;
}

let serial = 1;

/** What a test certificate looks like; the defaults give the well-formed dev certificates. */
export interface CertShape {
  readonly cn: string;
  readonly publicKey: KeyObject;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly altNames?: object[];
  /** CA:TRUE with keyCertSign (and this pathLen), instead of an end-entity certificate. */
  readonly ca?: boolean;
  readonly pathLen?: number;
  readonly usage?: "server" | "client";
  /** Replaces the end-entity key usage (digitalSignature + keyEncipherment). */
  readonly keyUsage?: { digitalSignature?: boolean; keyEncipherment?: boolean; keyCertSign?: boolean };
  /** Puts basicConstraints cA:TRUE on an otherwise end-entity certificate (a malformed leaf). */
  readonly leafClaimsCa?: boolean;
  readonly digest?: "sha256" | "sha1";
}

function makeCert(
  opts: CertShape & { issuer?: Issuer; signingKey: forge.pki.rsa.PrivateKey },
): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(
    opts.publicKey.export({ type: "spki", format: "pem" }).toString(),
  );
  cert.serialNumber = `0${(Date.now() * 1000 + serial++).toString(16)}`;
  cert.validity.notBefore = opts.notBefore;
  cert.validity.notAfter = opts.notAfter;
  const subject = [
    { name: "commonName", value: opts.cn },
    { name: "organizationName", value: "card custody dev" },
  ];
  cert.setSubject(subject);
  cert.setIssuer(opts.issuer ? opts.issuer.cert.subject.attributes : subject);
  const extensions: object[] = opts.ca
    ? [
        {
          name: "basicConstraints",
          cA: true,
          critical: true,
          ...(opts.pathLen !== undefined ? { pathLenConstraint: opts.pathLen } : {}),
        },
        { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
      ]
    : [
        { name: "basicConstraints", cA: opts.leafClaimsCa === true },
        {
          name: "keyUsage",
          ...(opts.keyUsage ?? { digitalSignature: true, keyEncipherment: true }),
          critical: true,
        },
        {
          name: "extKeyUsage",
          serverAuth: opts.usage === "server",
          clientAuth: opts.usage === "client",
        },
      ];
  if (opts.altNames) extensions.push({ name: "subjectAltName", altNames: opts.altNames });
  cert.setExtensions(extensions);
  cert.sign(opts.signingKey, (opts.digest === "sha1" ? forge.md.sha1 : forge.md.sha256).create());
  return cert;
}

function writeKeyPair(dir: string, name: string, cert: forge.pki.Certificate, key: KeyObject): CertPaths {
  const paths = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  writeFileSync(paths.cert, forge.pki.certificateToPem(cert));
  writeFileSync(paths.key, key.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  chmodSync(paths.key, 0o600);
  return paths;
}

/** A CA (self-signed) for tests that need their own chain, e.g. Knot's x5c. */
export function makeCa(
  cn: string,
  notBefore: Date,
  notAfter: Date,
  pathLen?: number,
): Issuer & { pem: string; privateKey: KeyObject } {
  const pair = rsaPair();
  const cert = makeCert({
    cn,
    publicKey: pair.publicKey,
    signingKey: pair.forgePrivate,
    ca: true,
    notBefore,
    notAfter,
    ...(pathLen !== undefined ? { pathLen } : {}),
  });
  return {
    cert,
    key: pair.forgePrivate,
    pem: forge.pki.certificateToPem(cert),
    privateKey: pair.privateKey,
  };
}

/** An intermediate CA under `issuer`, optionally with a pathLen constraint. */
export function makeIntermediate(
  issuer: Issuer,
  cn: string,
  notBefore: Date,
  notAfter: Date,
  pathLen?: number,
): Issuer {
  const pair = rsaPair();
  const cert = makeCert({
    cn,
    publicKey: pair.publicKey,
    issuer,
    signingKey: issuer.key,
    ca: true,
    notBefore,
    notAfter,
    ...(pathLen !== undefined ? { pathLen } : {}),
  });
  return { cert, key: pair.forgePrivate };
}

/** Any certificate under `issuer`, shaped by `shape` (tests mint well-formed and malformed ones). */
export function issueCertificate(issuer: Issuer, shape: CertShape): forge.pki.Certificate {
  return makeCert({ ...shape, issuer, signingKey: issuer.key });
}

/** A client certificate and its new key under `issuer`, written as `<name>.pem` / `<name>.key` in `dir`. */
export function issueClientFiles(
  dir: string,
  name: string,
  issuer: Issuer,
  shape: { cn: string; uris: readonly string[]; notBefore: Date; notAfter: Date },
): CertPaths & { serialNumber: string } {
  const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const cert = issueCertificate(issuer, {
    cn: shape.cn,
    publicKey: pair.publicKey,
    notBefore: shape.notBefore,
    notAfter: shape.notAfter,
    usage: "client",
    ...(shape.uris.length > 0 ? { altNames: shape.uris.map((value) => ({ type: 6, value })) } : {}),
  });
  return { ...writeKeyPair(dir, name, cert, pair.privateKey), serialNumber: cert.serialNumber };
}

export function certificatePem(cert: forge.pki.Certificate): string {
  return forge.pki.certificateToPem(cert);
}

export function certificateDer(cert: forge.pki.Certificate): string {
  return forge.util.encode64(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes());
}

export function devPkiPaths(dir: string): DevPki {
  const pair = (name: string) => ({ cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) });
  return {
    dir,
    caCert: join(dir, "ca.pem"),
    server: pair("server"),
    gateway: pair("gateway"),
    intruder: pair("intruder"),
    expired: pair("expired"),
    wrongCa: pair("wrong-ca-client"),
    dotvaKeyDir: join(dir, "dotva-keys"),
    knotJwk: join(dir, "knot-public.jwk"),
    knotPrivateKey: join(dir, "knot-private.key"),
    knotThumbprint: join(dir, "knot-thumbprint.txt"),
  };
}

/** Makes the whole set in `dir` unless it is already complete there (idempotent). */
export function makeDevPki(dir: string, opts: { force?: boolean } = {}): DevPki {
  const paths = devPkiPaths(dir);
  if (!opts.force && existsSync(paths.knotThumbprint)) return paths;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const now = Date.now();
  const validFrom = new Date(now - DAY);
  const validTo = new Date(now + 365 * DAY);

  const ca = rsaPair();
  const caCert = makeCert({
    cn: "card custody dev CA",
    publicKey: ca.publicKey,
    signingKey: ca.forgePrivate,
    ca: true,
    notBefore: validFrom,
    notAfter: validTo,
  });
  const issuer = { cert: caCert, key: ca.forgePrivate };
  writeFileSync(paths.caCert, forge.pki.certificateToPem(caCert));

  const leaf = (
    name: string,
    cn: string,
    usage: "server" | "client",
    altNames: object[],
    from = validFrom,
    to = validTo,
    by: Issuer = issuer,
  ) => {
    const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const cert = makeCert({
      cn,
      publicKey: pair.publicKey,
      issuer: by,
      signingKey: by.key,
      notBefore: from,
      notAfter: to,
      altNames,
      usage,
    });
    return writeKeyPair(dir, name, cert, pair.privateKey);
  };
  leaf("server", "localhost", "server", [
    { type: 2, value: "localhost" },
    { type: 7, ip: "127.0.0.1" },
  ]);
  leaf("gateway", GATEWAY_CN, "client", [{ type: 6, value: GATEWAY_SPIFFE }]);
  leaf("intruder", INTRUDER_CN, "client", [{ type: 6, value: INTRUDER_SPIFFE }]);
  leaf(
    "expired",
    GATEWAY_CN,
    "client",
    [{ type: 6, value: GATEWAY_SPIFFE }],
    new Date(now - 30 * DAY),
    new Date(now - DAY),
  );

  const otherCa = rsaPair();
  const otherCaCert = makeCert({
    cn: "card custody dev CA",
    publicKey: otherCa.publicKey,
    signingKey: otherCa.forgePrivate,
    ca: true,
    notBefore: validFrom,
    notAfter: validTo,
  });
  leaf("wrong-ca-client", GATEWAY_CN, "client", [{ type: 6, value: GATEWAY_SPIFFE }], validFrom, validTo, {
    cert: otherCaCert,
    key: otherCa.forgePrivate,
  });

  mkdirSync(paths.dotvaKeyDir, { recursive: true, mode: 0o700 });
  generateKeyFile({ dir: paths.dotvaKeyDir, name: "dotva-dev", bits: 2048, state: "active" });

  const knot = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = {
    ...knot.publicKey.export({ format: "jwk" }),
    kid: "knot-dev",
    use: "enc",
    alg: "RSA-OAEP-256",
  };
  writeFileSync(paths.knotJwk, `${JSON.stringify(jwk)}\n`);
  writeFileSync(paths.knotPrivateKey, knot.privateKey.export({ type: "pkcs8", format: "pem" }), {
    mode: 0o600,
  });
  // Written last: its presence marks a complete set (see the idempotence check above).
  writeFileSync(paths.knotThumbprint, `${rsaJwkThumbprint({ n: jwk.n!, e: jwk.e! })}\n`);
  return paths;
}
