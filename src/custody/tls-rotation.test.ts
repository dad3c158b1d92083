/**
 * Certificate rotation without restarts: custody's server certificate and key, then the gateway custody
 * client's certificate and key, are replaced on disk (new keys, new certificates from the same CA) while
 * calls run in a loop. No call fails; new handshakes present the new certificates on both sides.
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fingerprintForms } from "../core/crypto/fingerprint.js";
import { type CustodyCaller, custodyClient } from "../gateway/custody-client.js";
import {
  certificatePem,
  GATEWAY_CN,
  GATEWAY_SPIFFE,
  type Issuer,
  issueCertificate,
  issueClientFiles,
  makeCa,
} from "../tools/dev-pki.js";
import {
  baseEnv,
  dotvaJwe,
  type LogCapture,
  rsaKeyPair,
  startTestCustody,
  tempDir,
  testPki,
} from "../tools/testing/custody-harness.js";
import { USER } from "../tools/testing/profile.js";
import { STORE_FACTORIES } from "../tools/testing/stores.js";
import type { RunningCustody } from "./server.js";

const HOUR = 3_600_000;

/** Serial numbers compared as numbers: forge writes a leading zero, Node prints uppercase hex. */
const sameSerial = (a: string, b: string) => BigInt(`0x${a}`) === BigInt(`0x${b}`);

function writeServerPair(dir: string, ca: Issuer): string {
  const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const now = Date.now();
  const cert = issueCertificate(ca, {
    cn: "localhost",
    publicKey: pair.publicKey,
    notBefore: new Date(now - HOUR),
    notAfter: new Date(now + 2 * HOUR),
    usage: "server",
    altNames: [{ type: 2, value: "localhost" }],
  });
  // Certificate first, then the key: the reload must wait for a matching pair.
  writeFileSync(join(dir, "server.pem"), certificatePem(cert));
  writeFileSync(join(dir, "server.key"), pair.privateKey.export({ type: "pkcs8", format: "pem" }), {
    mode: 0o600,
  });
  return cert.serialNumber;
}

function writeClientPair(dir: string, ca: Issuer): string {
  const now = Date.now();
  return issueClientFiles(dir, "client", ca, {
    cn: GATEWAY_CN,
    uris: [GATEWAY_SPIFFE],
    notBefore: new Date(now - HOUR),
    notAfter: new Date(now + 2 * HOUR),
  }).serialNumber;
}

/** The serial of the certificate custody presents to a new handshake. */
function serverSerial(port: number, dir: string, clientDir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: "127.0.0.1",
      port,
      servername: "localhost",
      ca: readFileSync(join(dir, "ca.pem")),
      cert: readFileSync(join(clientDir, "client.pem")),
      key: readFileSync(join(clientDir, "client.key")),
      ALPNProtocols: ["h2"],
    });
    socket.once("secureConnect", () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.destroy();
    });
    socket.once("error", reject);
  });
}

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("certificate rotation under load", () => {
  const pki = testPki();
  const ca = makeCa("rotation CA", new Date(Date.now() - HOUR), new Date(Date.now() + 24 * HOUR));
  const serverDir = tempDir("rotation-server");
  const clientDir = tempDir("rotation-client");
  const dotva = rsaKeyPair();
  const clientLog: { msg: string; fields: Record<string, unknown> }[] = [];
  let server: { custody: RunningCustody; log: LogCapture };
  let client: CustodyCaller;
  let firstServerSerial: string;
  let firstClientSerial: string;

  const request = async (i: number) => ({
    secrets_jwe: await dotvaJwe(dotva.publicKey as KeyObject),
    key_fingerprint: fingerprintForms(dotva.publicKey).canonical,
    knot_jwk: readFileSync(pki.knotJwk, "utf8"),
    user: USER,
    request_id: `rotation-${i}`,
  });

  beforeAll(async () => {
    for (const dir of [serverDir, clientDir]) writeFileSync(join(dir, "ca.pem"), ca.pem);
    firstServerSerial = writeServerPair(serverDir, ca);
    firstClientSerial = writeClientPair(clientDir, ca);
    const store = await STORE_FACTORIES[0]!.create(tempDir("rotation-keys"), [
      { name: "d", privateKey: dotva.privateKey, state: "active" },
    ]);
    server = await startTestCustody(
      baseEnv(pki, {
        CUSTODY_TLS_CERT: join(serverDir, "server.pem"),
        CUSTODY_TLS_KEY: join(serverDir, "server.key"),
        CUSTODY_TLS_CLIENT_CA: join(serverDir, "ca.pem"),
      }),
      store.source,
    );
    const files = {
      ca: join(clientDir, "ca.pem"),
      cert: join(clientDir, "client.pem"),
      key: join(clientDir, "client.key"),
    };
    client = custodyClient(
      {
        address: `127.0.0.1:${server.custody.port}`,
        tls: {
          ca: readFileSync(files.ca),
          cert: readFileSync(files.cert),
          key: readFileSync(files.key),
          serverName: "localhost",
          files,
        },
      },
      30_000,
      {
        info: (fields, msg) => clientLog.push({ msg, fields: fields as Record<string, unknown> }),
        error: (fields, msg) => clientLog.push({ msg, fields: fields as Record<string, unknown> }),
      },
    );
  });
  afterAll(async () => {
    client?.close();
    await server?.custody.shutdown(2000);
  });

  it("rotates custody's and the client's certificates with calls in flight: no failed call, new serials in use", async () => {
    const failures: string[] = [];
    let calls = 0;
    let running = true;
    const loop = async (worker: number) => {
      for (let i = 0; running; i++) {
        try {
          await client.reencrypt(await request(worker * 100_000 + i), 5000);
          calls++;
        } catch (err) {
          failures.push(err instanceof Error ? err.message : String(err));
        }
      }
    };
    const loops = [0, 1, 2, 3].map(loop);
    const callsAfter = async (what: string) => {
      const at = calls;
      await until(() => calls >= at + 20, `calls after ${what}`);
    };

    await callsAfter("start");
    expect(sameSerial(await serverSerial(server.custody.port, serverDir, clientDir), firstServerSerial)).toBe(
      true,
    );

    const newServerSerial = writeServerPair(serverDir, ca);
    await until(
      () =>
        server.log
          .lines()
          .some((l) => l.msg === "TLS material reloaded" && sameSerial(String(l.serial), newServerSerial)),
      "custody's reload",
    );
    await callsAfter("the server rotation");
    expect(sameSerial(await serverSerial(server.custody.port, serverDir, clientDir), newServerSerial)).toBe(
      true,
    );

    const newClientSerial = writeClientPair(clientDir, ca);
    await until(
      () =>
        clientLog.some(
          (l) =>
            l.msg === "custody client certificate reloaded" &&
            sameSerial(String(l.fields.serial), newClientSerial),
        ),
      "the client's reload",
    );
    await callsAfter("the client rotation");
    await until(
      () =>
        server.log
          .lines()
          .some((l) => l.msg === "caller connection" && sameSerial(String(l.serial ?? "0"), newClientSerial)),
      "a connection with the new client certificate",
    );
    running = false;
    await Promise.all(loops);

    expect(failures).toEqual([]);
    const connectionSerials = server.log
      .lines()
      .filter((l) => l.msg === "caller connection")
      .map((l) => String(l.serial));
    expect(connectionSerials.some((s) => sameSerial(s, firstClientSerial))).toBe(true);
    expect(calls).toBeGreaterThan(60);
  });

  it("keeps the current certificate when the key on disk is not the certificate's", () => {
    const before = server.log.lines().filter((l) => l.msg === "TLS material reloaded").length;
    copyFileSync(join(clientDir, "client.key"), join(serverDir, "server.key"));
    expect(server.custody.reloadTls()).toBe(false);
    expect(server.log.text).toContain(
      "CUSTODY_TLS_KEY: is not the key of the certificate in CUSTODY_TLS_CERT",
    );
    expect(server.log.lines().filter((l) => l.msg === "TLS material reloaded").length).toBe(before);
  });
});
