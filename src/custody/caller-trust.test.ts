/**
 * Who may call custody, over real mTLS: the caller-identity attacks of the security review (a CN that
 * claims the gateway while the URI SAN says intruder; the allowed SPIFFE ID smuggled in as a second URI
 * SAN; no URI SAN at all), a client certificate revoked by the client CA's CRL (also after a SIGHUP-style
 * CRL reload), a certificate that expires while its connection stays open, and the maximum connection age.
 */
import "reflect-metadata";
import { execFileSync } from "node:child_process";
import type { webcrypto } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:http2";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { X509Certificate, X509CrlGenerator } from "@peculiar/x509";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CertPaths,
  GATEWAY_CN,
  GATEWAY_SPIFFE,
  INTRUDER_SPIFFE,
  issueClientFiles,
  makeCa,
} from "../tools/dev-pki.js";
import {
  baseEnv,
  custodyClient,
  healthCheck,
  healthClient,
  type LogCapture,
  reencrypt,
  reencryptRequest,
  rsaKeyPair,
  startTestCustody,
  tempDir,
  testPki,
} from "../tools/testing/custody-harness.js";
import { STORE_FACTORIES } from "../tools/testing/stores.js";
import type { RunningCustody } from "./server.js";

const MINUTE = 60_000;
const DAY = 1440 * MINUTE;

describe("caller trust over mTLS", () => {
  const pki = testPki();
  const dir = tempDir("caller-trust");
  const now = Date.now();
  const valid = { notBefore: new Date(now - DAY), notAfter: new Date(now + 30 * DAY) };
  const clientCa = makeCa("custody client CA", valid.notBefore, valid.notAfter);
  const clientCaFile = join(dir, "client-ca.pem");
  const crlFile = join(dir, "client-ca.crl");
  const dotva = rsaKeyPair();
  const knotJwk = readFileSync(pki.knotJwk, "utf8").trim();
  const client = (name: string, uris: string[], cn = GATEWAY_CN, validity = valid) =>
    issueClientFiles(dir, name, clientCa, { cn, uris, ...validity });

  const certs = {
    gateway: client("gateway", [GATEWAY_SPIFFE]),
    cnSpoof: client("cn-spoof", [INTRUDER_SPIFFE]),
    twoUris: client("two-uris", [INTRUDER_SPIFFE, GATEWAY_SPIFFE]),
    noUri: client("no-uri", []),
    revoked: client("revoked", [GATEWAY_SPIFFE]),
    revokedLater: client("revoked-later", [GATEWAY_SPIFFE]),
  };

  let production: { custody: RunningCustody; log: LogCapture };
  let development: { custody: RunningCustody; log: LogCapture };
  const closers: { close(): void }[] = [];

  async function writeCrl(revoked: { serialNumber: string }[]) {
    const signingKey = clientCa.privateKey.toCryptoKey(
      { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
      false,
      ["sign"],
    ) as webcrypto.CryptoKey;
    const crl = await X509CrlGenerator.create({
      issuer: new X509Certificate(clientCa.pem).subject,
      thisUpdate: new Date(Date.now() - MINUTE),
      nextUpdate: new Date(Date.now() + DAY),
      entries: revoked.map((c) => ({
        serialNumber: c.serialNumber,
        revocationDate: new Date(Date.now() - MINUTE),
      })),
      signingAlgorithm: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
      signingKey,
    });
    // @peculiar/x509 writes PEM as "BEGIN CRL"; openssl writes the "X509 CRL" form OpenSSL and Node read.
    writeFileSync(`${crlFile}.der`, Buffer.from(crl.rawData));
    execFileSync("openssl", ["crl", "-inform", "DER", "-in", `${crlFile}.der`, "-out", crlFile]);
  }

  const request = (requestId: string) => reencryptRequest(dotva.publicKey, knotJwk, requestId);

  const callAs = async (port: number, who: CertPaths, request_id: string) => {
    const c = custodyClient(port, pki, who);
    closers.push(c);
    return reencrypt(c, await request(request_id), 5000);
  };

  beforeAll(async () => {
    writeFileSync(clientCaFile, clientCa.pem);
    await writeCrl([certs.revoked]);
    const keys = async () =>
      (
        await STORE_FACTORIES[0]!.create(tempDir("caller-trust-keys"), [
          { name: "d", privateKey: dotva.privateKey, state: "active" },
        ])
      ).source;
    production = await startTestCustody(
      baseEnv(pki, { CUSTODY_TLS_CLIENT_CA: clientCaFile, CUSTODY_TLS_CLIENT_CRL: crlFile }),
      await keys(),
    );
    development = await startTestCustody(
      baseEnv(pki, {
        CUSTODY_ENV: "development",
        CUSTODY_TLS_CLIENT_CA: clientCaFile,
        CUSTODY_ALLOW_REENCRYPT: `cn:${GATEWAY_CN}`,
      }),
      await keys(),
    );
  });

  afterAll(async () => {
    for (const c of closers) c.close();
    await Promise.all([production?.custody.shutdown(2000), development?.custody.shutdown(2000)]);
  });

  it("does not let cn:card-gateway admit a certificate whose URI SAN says intruder (development)", async () => {
    const out = await callAs(development.custody.port, certs.cnSpoof, "cn-spoof");
    expect(out.ok ? "ok" : [out.code, out.reason]).toEqual([status.PERMISSION_DENIED, "CALLER_NOT_ALLOWED"]);
    // A refused caller's request is not read, so the audit line has no request_id.
    expect(development.log.audits().filter((a) => a.caller === INTRUDER_SPIFFE)).toEqual([
      expect.objectContaining({ outcome: "CALLER_NOT_ALLOWED", grpc_status: status.PERMISSION_DENIED }),
    ]);
    // The same entry does name a certificate that carries no URI SAN, and the audit line says so.
    const byCn = await callAs(development.custody.port, certs.noUri, "by-cn");
    expect(byCn.ok ? "ok" : byCn.reason).toBe("ok");
    expect(development.log.audits().find((a) => a.request_id === "by-cn")).toMatchObject({
      caller: `cn:${GATEWAY_CN}`,
      caller_rule: `cn:${GATEWAY_CN}`,
      outcome: "OK",
    });
  });

  it.each([
    ["the allowed SPIFFE ID smuggled in as a second URI SAN", "twoUris"],
    ["no URI SAN (CN=card-gateway only)", "noUri"],
  ] as const)("in production refuses a certificate with %s: CALLER_IDENTITY_INVALID", async (what, name) => {
    const id = `identity-${name}`;
    const out = await callAs(production.custody.port, certs[name], id);
    expect(out.ok ? "ok" : [out.code, out.reason], what).toEqual([
      status.PERMISSION_DENIED,
      "CALLER_IDENTITY_INVALID",
    ]);
    const refusals = production.log.audits().filter((a) => a.outcome === "CALLER_IDENTITY_INVALID");
    expect(refusals.at(-1)).toMatchObject({
      caller: "(invalid identity)",
      grpc_status: status.PERMISSION_DENIED,
    });
    const health = healthClient(production.custody.port, pki, certs[name]);
    closers.push(health);
    expect(await healthCheck(health)).toEqual({ code: status.PERMISSION_DENIED });
  });

  it("audits which allowlist entry admitted the caller", async () => {
    const out = await callAs(production.custody.port, certs.gateway, "rule");
    expect(out.ok ? "ok" : out.reason).toBe("ok");
    expect(production.log.audits().find((a) => a.request_id === "rule")).toMatchObject({
      caller: GATEWAY_SPIFFE,
      caller_rule: `uri:${GATEWAY_SPIFFE}`,
    });
  });

  it("refuses a client certificate the CRL revokes at the handshake, and one revoked later after a CRL reload", async () => {
    const audits = production.log.audits().length;
    const revoked = await callAs(production.custody.port, certs.revoked, "revoked");
    expect(revoked.ok ? "ok" : revoked.code).toBe(status.UNAVAILABLE);
    const health = healthClient(production.custody.port, pki, certs.revoked);
    closers.push(health);
    expect(await healthCheck(health)).toEqual({ code: status.UNAVAILABLE });
    expect(production.log.audits().length).toBe(audits);

    const before = await callAs(production.custody.port, certs.revokedLater, "before-reload");
    expect(before.ok ? "ok" : before.code).toBe("ok");
    await writeCrl([certs.revoked, certs.revokedLater]);
    expect(production.custody.reloadTls()).toBe(true);
    expect(production.log.lines().some((l) => l.msg === "TLS material reloaded")).toBe(true);
    const after = await callAs(production.custody.port, certs.revokedLater, "after-reload");
    expect(after.ok ? "ok" : after.code).toBe(status.UNAVAILABLE);
    // Unrevoked certificates of the same CA still connect.
    const good = await callAs(production.custody.port, certs.gateway, "good-after-reload");
    expect(good.ok ? "ok" : good.reason).toBe("ok");
  });

  it("refuses the next call on an open connection once the client certificate has expired", async () => {
    const shortLived = client("short-lived", [GATEWAY_SPIFFE], GATEWAY_CN, {
      notBefore: new Date(Date.now() - MINUTE),
      notAfter: new Date(Date.now() + 4000),
    });
    const notAfter = new X509Certificate(readFileSync(shortLived.cert, "ascii")).notAfter.getTime();
    const c = custodyClient(production.custody.port, pki, shortLived);
    closers.push(c);
    const first = await reencrypt(c, await request("short-1"), 3000);
    expect(first.ok ? "ok" : first.reason).toBe("ok");
    // Wait (bounded) for the certificate's notAfter to pass, then call on the same channel.
    while (Date.now() <= notAfter + 1000) await new Promise((r) => setTimeout(r, 100));
    const second = await reencrypt(c, await request("short-2"), 3000);
    expect(second.ok ? "ok" : [second.code, second.reason]).toEqual([
      status.UNAUTHENTICATED,
      "CALLER_CERTIFICATE_EXPIRED",
    ]);
    expect(production.log.audits().filter((a) => a.outcome === "CALLER_CERTIFICATE_EXPIRED")).toEqual([
      expect.objectContaining({ caller: GATEWAY_SPIFFE, grpc_status: status.UNAUTHENTICATED }),
    ]);
  });

  it("closes connections older than CUSTODY_MAX_CONNECTION_AGE_MS with a GOAWAY", async () => {
    const aged = await startTestCustody(
      baseEnv(pki, {
        CUSTODY_WORKERS: "1",
        CUSTODY_MAX_CONNECTION_AGE_MS: "300",
        CUSTODY_MAX_CONNECTION_AGE_GRACE_MS: "200",
      }),
    );
    try {
      const session = connect(`https://127.0.0.1:${aged.custody.port}`, {
        ca: readFileSync(pki.caCert),
        cert: readFileSync(pki.gateway.cert),
        key: readFileSync(pki.gateway.key),
        servername: "localhost",
      });
      const started = Date.now();
      const event = await new Promise<string>((resolve) => {
        const bound = setTimeout(() => resolve("nothing within 10 s"), 10_000);
        session.on("goaway", () => {
          clearTimeout(bound);
          resolve("goaway");
        });
        session.on("error", () => undefined);
      });
      session.destroy();
      expect(event).toBe("goaway");
      expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    } finally {
      await aged.custody.shutdown(2000);
    }
  });
});
