/**
 * TLS posture of the custody port, probed with openssl s_client (another TLS implementation than the
 * server's): TLS 1.3 only (1.0, 1.1 and 1.2 refused), only AEAD cipher suites negotiated, and no
 * service without a client certificate. Each refusal has a control: the same probe against a Node TLS
 * server that allows every version succeeds, so a refusal is the custody server's and not a probe that
 * could not be offered (OpenSSL 3 disables TLS 1.0/1.1 at its default security level).
 *
 * A second, independent scanner, sslscan (Debian package, installed by scripts/provision.sh), enumerates
 * every protocol and suite itself; its verdicts are asserted against the same control server, which it
 * must find permissive, so a scan that saw nothing cannot pass.
 */
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  baseEnv,
  custodyClient,
  healthCheck,
  healthClient,
  startTestCustody,
  testPki,
} from "../tools/testing/custody-harness.js";
import "../tools/docs/measurements.js";
import type { RunningCustody } from "./server.js";

const pki = testPki();
let custody: RunningCustody;
let control: Server;
let controlPort: number;

const LEGACY = ["-tls1", "-tls1_1", "-tls1_2"] as const;
const TLS13_SUITES = [
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
  "TLS_AES_128_CCM_SHA256",
  "TLS_AES_128_CCM_8_SHA256",
];
/** AEAD suites only: GCM, CCM (16-byte tag) and ChaCha20-Poly1305. CCM_8's 8-byte tag is not accepted. */
const AEAD = new Set([
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
  "TLS_AES_128_CCM_SHA256",
]);

/**
 * One s_client handshake, asynchronous: custody runs in this process and must keep answering. Stdin is
 * closed at once, so s_client ends after the handshake (or, with -ign_eof, when the server closes).
 */
function openssl(args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const child = execFile("openssl", ["s_client", ...args], { timeout: 10_000 }, (_err, stdout, stderr) =>
      resolve(`${stdout}${stderr}`),
    );
    child.stdin?.end();
  });
}

async function probe(port: number, args: string[], withCert = true): Promise<{ ok: boolean; out: string }> {
  const out = await openssl([
    "-connect",
    `127.0.0.1:${port}`,
    "-servername",
    "localhost",
    "-CAfile",
    pki.caCert,
    ...(withCert ? ["-cert", pki.gateway.cert, "-key", pki.gateway.key] : []),
    ...args,
  ]);
  const { protocol, cipher } = negotiated(out);
  return {
    ok: protocol !== undefined && cipher !== undefined && cipher !== "0000" && cipher !== "(NONE)",
    out,
  };
}

/**
 * The handshake summary line, "New, TLSv1.3, Cipher is X" ("(NONE)" when none was agreed). The session
 * block below it appears only when a session ticket arrived before the close, which is a race.
 */
function negotiated(out: string): { protocol?: string; cipher?: string } {
  const m = /^New, (\S+), Cipher is (\S+)$/m.exec(out);
  return m ? { protocol: m[1]!, cipher: m[2]! } : {};
}

/**
 * AEAD suites a scan may find: the TLS 1.3 ones custody can negotiate, and the TLS 1.2 ECDHE ones with
 * GCM or ChaCha20-Poly1305 in case TLS 1.2 were ever enabled. An allowlist: anything else is a finding.
 */
const SCAN_AEAD =
  /^(TLS_AES_(128|256)_GCM_SHA(256|384)|TLS_CHACHA20_POLY1305_SHA256|ECDHE-(RSA|ECDSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305))$/;
const SCANNED_PROTOCOLS = ["SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"];

interface Scan {
  /** Every protocol sslscan reported on, with whether it was enabled. */
  protocols: Record<string, boolean>;
  /** "TLSv1.3 TLS_AES_256_GCM_SHA384", one per suite a handshake was accepted with. */
  suites: string[];
  /** The distinguished names of the CertificateRequest's certificate_authorities (--show-client-cas). */
  clientCas: string[];
}

/**
 * sslscan's XML report, read with three regular expressions: its elements are flat, one per line, with
 * attributes in a fixed order, and a parser library for that would be a dependency for three lines.
 */
function scan(port: number): Promise<Scan> {
  return new Promise((resolve, reject) => {
    execFile(
      "sslscan",
      ["--no-colour", "--xml=-", "--show-client-cas", "--timeout=3", `127.0.0.1:${port}`],
      { timeout: 30_000 },
      (err, xml) => {
        if (err) return reject(err);
        const protocols: Record<string, boolean> = {};
        for (const m of xml.matchAll(/<protocol type="(ssl|tls)" version="([\d.]+)" enabled="([01])"/g)) {
          protocols[`${m[1] === "ssl" ? "SSLv" : "TLSv"}${m[2]}`] = m[3] === "1";
        }
        const suites = [
          ...xml.matchAll(/<cipher status="\w+" sslversion="(\S+)" bits="\d+" cipher="(\S+)"/g),
        ].map((m) => `${m[1]} ${m[2]}`);
        const clientCas = [...xml.matchAll(/<ca>\s*([^<]*?)\s*<\/ca>/g)].flatMap((m) => m[1]!.split("\n"));
        resolve({ protocols, suites, clientCas });
      },
    );
  });
}

let custodyScan: Scan;
let controlScan: Scan;

beforeAll(async () => {
  ({ custody } = await startTestCustody(baseEnv(pki)));
  control = createServer({
    cert: readFileSync(pki.server.cert),
    key: readFileSync(pki.server.key),
    minVersion: "TLSv1",
    ciphers: "DEFAULT:@SECLEVEL=0",
  });
  control.on("secureConnection", (s) => s.end());
  await new Promise<void>((r) => control.listen(0, "127.0.0.1", r));
  controlPort = (control.address() as { port: number }).port;
  [custodyScan, controlScan] = await Promise.all([scan(custody.port), scan(controlPort)]);
}, 60_000);

afterAll(async () => {
  await custody?.shutdown(0);
  control?.close();
});

describe("custody TLS", () => {
  // Each test records what it observed in task.meta.tls, for docs/assurance.md (src/tools/docs/measurements.ts).
  it.for(LEGACY)(
    "refuses %s (the probe succeeds against a server that allows it)",
    async (flag, { task }) => {
      const args = [flag, "-cipher", "DEFAULT:@SECLEVEL=0"];
      expect((await probe(controlPort, args)).ok).toBe(true);
      const result = await probe(custody.port, args);
      expect(result.ok).toBe(false);
      expect(result.out).toMatch(
        /alert protocol version|no protocols available|wrong version number|unsupported protocol/i,
      );
      task.meta.tls = { refusedProtocol: flag };
    },
  );

  it("negotiates TLS 1.3 and only AEAD suites", async ({ task }) => {
    const accepted: string[] = [];
    for (const suite of TLS13_SUITES) {
      const r = await probe(custody.port, ["-tls1_3", "-ciphersuites", suite]);
      if (r.ok) {
        const n = negotiated(r.out);
        expect(n.protocol).toBe("TLSv1.3");
        expect(n.cipher).toBe(suite);
        accepted.push(suite);
      }
    }
    expect(accepted.length).toBeGreaterThan(0);
    for (const suite of accepted) expect(AEAD.has(suite)).toBe(true);
    task.meta.tls = { acceptedSuites: accepted };
  });

  it("ends a handshake without a client certificate with the certificate-required alert", async ({
    task,
  }) => {
    const out = await openssl([
      "-connect",
      `127.0.0.1:${custody.port}`,
      "-servername",
      "localhost",
      "-CAfile",
      pki.caCert,
      "-tls1_3",
      "-ign_eof",
    ]);
    expect(out).toMatch(/alert certificate required/i);
    task.meta.tls = { withoutClientCertificate: /alert certificate required/i.exec(out)![0] };
  });

  it("answers no RPC to a client without a certificate; the same RPC with one succeeds", async () => {
    expect((await healthCheck(healthClient(custody.port, pki, "gateway"))).status).toBe("SERVING");
    const none = await healthCheck(healthClient(custody.port, pki, "none"));
    expect(none.status).toBeUndefined();
    expect(none.code).toBe(14);
    custodyClient(custody.port, pki, "none").close();
  });
});

describe("sslscan of the custody port", () => {
  it("finds every protocol below TLS 1.3 disabled, SSLv2 to TLS 1.2 (enabled on the control server)", ({
    task,
  }) => {
    expect(Object.keys(custodyScan.protocols).sort()).toEqual(SCANNED_PROTOCOLS);
    const enabled = (s: Scan) => SCANNED_PROTOCOLS.filter((p) => s.protocols[p]);
    expect(enabled(controlScan)).toEqual(expect.arrayContaining(["TLSv1.0", "TLSv1.1", "TLSv1.2"]));
    expect(enabled(custodyScan)).toEqual(["TLSv1.3"]);
    task.meta.tls = { sslscanEnabledProtocols: enabled(custodyScan) };
  });

  it("finds only AEAD suites accepted (the control server accepts CBC ones)", ({ task }) => {
    const notAead = (s: Scan) => s.suites.filter((suite) => !SCAN_AEAD.test(suite.split(" ")[1]!));
    expect(notAead(controlScan)).toContain("TLSv1.2 ECDHE-RSA-AES128-SHA");
    expect(custodyScan.suites.length).toBeGreaterThan(0);
    expect(notAead(custodyScan)).toEqual([]);
    task.meta.tls = { sslscanAcceptedSuites: custodyScan.suites };
  });

  // sslscan sees that a client certificate is requested (the CertificateRequest's CA list), not that it is
  // required: the handshake without one ending in "alert certificate required" above is that proof.
  it("finds a client certificate requested from the custody CA only (the control server requests none)", ({
    task,
  }) => {
    expect(controlScan.clientCas).toEqual([]);
    const ca = new X509Certificate(readFileSync(pki.caCert)).subject;
    expect(custodyScan.clientCas).toEqual([`/${ca.split("\n").join("/")}`]);
    task.meta.tls = { sslscanClientCas: custodyScan.clientCas };
  });
});
