/**
 * Recipient policy through the service (x5c chains bound by CUSTODY_RECIPIENT_X5C_POLICY to Knot's leaf;
 * the development allow-any mode, logged on every call) and per-caller overload.
 */

import type { KeyObject } from "node:crypto";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { credentials, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadCustodyProto, loadHealthProto } from "../contract/proto.js";
import { certificateDer, type Issuer, issueCertificate, makeCa } from "../tools/dev-pki.js";
import {
  baseEnv,
  custodyClient,
  dotvaJwe,
  type LogCapture,
  reencrypt,
  reencryptRequest,
  rsaKeyPair,
  startTestCustody,
  tempDir,
  testPki,
} from "../tools/testing/custody-harness.js";
import { STORE_FACTORIES } from "../tools/testing/stores.js";
import { generateKeyFile } from "./keytool/key-files.js";
import type { RunningCustody } from "./server.js";

const DAY = 86_400_000;
const now = Date.now();
const valid: [Date, Date] = [new Date(now - DAY), new Date(now + 30 * DAY)];
const KNOT_DNS = "jwe.knot.test";

/** A Knot encryption leaf as base64 DER; `keyUsage` overrides digitalSignature + keyEncipherment. */
function knotLeaf(
  issuer: Issuer,
  publicKey: KeyObject,
  [notBefore, notAfter]: [Date, Date] = valid,
  keyUsage?: { digitalSignature?: boolean; keyEncipherment?: boolean },
): string {
  return certificateDer(
    issueCertificate(issuer, {
      cn: "knot encryption",
      publicKey,
      notBefore,
      notAfter,
      altNames: [{ type: 2, value: KNOT_DNS }],
      ...(keyUsage ? { keyUsage } : {}),
    }),
  );
}

describe("recipient policy and limits", () => {
  const pki = testPki();
  const dotva = rsaKeyPair();
  const knot = rsaKeyPair();
  const root = makeCa("Knot test root", ...valid);
  const otherRoot = makeCa("Not Knot", ...valid);
  const servers: RunningCustody[] = [];
  let x5cServer: { custody: RunningCustody; log: LogCapture };
  let devServer: { custody: RunningCustody; log: LogCapture };

  const jwkWith = (x5c?: string[]) =>
    JSON.stringify({ ...knot.publicKey.export({ format: "jwk" }), ...(x5c ? { x5c } : {}) });
  const request = (recipientJwk: string, requestId = "policy") =>
    reencryptRequest(dotva.publicKey, recipientJwk, requestId);

  beforeAll(async () => {
    const dir = tempDir("policy");
    writeFileSync(join(dir, "knot-root.pem"), root.pem);
    const policyFile = join(dir, "x5c-policy.json");
    writeFileSync(policyFile, JSON.stringify({ entries: [{ root: "knot-root.pem", leaf_dns: KNOT_DNS }] }));
    const keys = () =>
      STORE_FACTORIES[0]!.create(tempDir("policy-keys"), [
        { name: "d", privateKey: dotva.privateKey, state: "active" },
      ]);
    x5cServer = await startTestCustody(
      baseEnv(pki, { CUSTODY_RECIPIENT_PINS: "", CUSTODY_RECIPIENT_X5C_POLICY: policyFile }),
      (await keys()).source,
    );
    devServer = await startTestCustody(
      baseEnv(pki, {
        CUSTODY_ENV: "development",
        CUSTODY_RECIPIENT_PINS: "",
        CUSTODY_DEV_ALLOW_ANY_RECIPIENT: "1",
        CUSTODY_RATE_PER_SECOND: "1",
        CUSTODY_RATE_BURST: "3",
      }),
      (await keys()).source,
    );
    servers.push(x5cServer.custody, devServer.custody);
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.shutdown(2000)));
  });

  it("accepts a Knot key whose x5c is Knot's leaf under the configured root, with or without the root in the chain", async () => {
    const client = custodyClient(x5cServer.custody.port, pki);
    const leaf = knotLeaf(root, knot.publicKey);
    for (const x5c of [[leaf], [leaf, certificateDer(root.cert)]]) {
      const out = await reencrypt(client, await request(jwkWith(x5c), "x5c-ok"));
      expect(out.ok ? "ok" : out.reason).toBe("ok");
    }
    expect(x5cServer.log.audits().at(-1)).toMatchObject({
      outcome: "OK",
      recipient_basis: "x5c",
      recipient_rule: `knot-root.pem -> dns:${KNOT_DNS}`,
    });
    client.close();
  });

  it.each([
    ["has no x5c", () => undefined, "NOT_PINNED"],
    ["has an x5c leaf for another key", () => [knotLeaf(root, rsaKeyPair().publicKey)], "LEAF_KEY_MISMATCH"],
    [
      "has an expired leaf",
      () => [knotLeaf(root, knot.publicKey, [new Date(now - 10 * DAY), new Date(now - DAY)])],
      "CERTIFICATE_NOT_VALID_NOW",
    ],
    ["has a leaf from another root", () => [knotLeaf(otherRoot, knot.publicKey)], "UNTRUSTED_ROOT"],
    ["claims the root itself as its chain", () => [certificateDer(root.cert)], "LEAF_KEY_MISMATCH"],
    [
      "has a signing-only leaf under the root (the review's probe)",
      () => [knotLeaf(root, knot.publicKey, valid, { digitalSignature: true })],
      "LEAF_KEY_USAGE",
    ],
  ])(
    "refuses a Knot key that %s: PERMISSION_DENIED RECIPIENT_NOT_ALLOWED, the audit line says why",
    async (what, x5c, why) => {
      const client = custodyClient(x5cServer.custody.port, pki);
      const id = `x5c-${what.replace(/[^a-z]+/g, "-").slice(0, 100)}`;
      const out = await reencrypt(client, await request(jwkWith(x5c()), id));
      client.close();
      expect(out.ok ? "ok" : [out.code, out.reason]).toEqual([
        status.PERMISSION_DENIED,
        "RECIPIENT_NOT_ALLOWED",
      ]);
      expect(out.ok ? "" : out.details).toContain(`(${why})`);
      expect(x5cServer.log.audits().find((a) => a.request_id === id)).toMatchObject({
        outcome: "RECIPIENT_NOT_ALLOWED",
        recipient_refusal: why,
      });
    },
  );

  it("in the development allow-any mode, accepts any key and logs a warning on every call; overload is RESOURCE_EXHAUSTED", async () => {
    const client = custodyClient(devServer.custody.port, pki);
    const outs = [];
    for (let i = 0; i < 4; i++) outs.push(await reencrypt(client, await request(jwkWith(), `dev-${i}`)));
    client.close();
    expect(outs.map((o) => (o.ok ? "ok" : `${o.code}:${o.reason}`))).toEqual([
      "ok",
      "ok",
      "ok",
      `${status.RESOURCE_EXHAUSTED}:OVERLOADED`,
    ]);
    const lines = devServer.log.lines();
    expect(lines.filter((l) => l.msg === "DEV MODE: recipient allowed without policy")).toHaveLength(3);
    expect(lines.some((l) => String(l.msg).startsWith("DEV MODE: CUSTODY_DEV_ALLOW_ANY_RECIPIENT"))).toBe(
      true,
    );
  });

  it("serves plaintext only behind the dev flag, says so loudly, and ends health watches on shutdown", async () => {
    const { CUSTODY_TLS_CERT: _c, CUSTODY_TLS_KEY: _k, CUSTODY_TLS_CLIENT_CA: _a, ...noTls } = baseEnv(pki);
    const keys = await STORE_FACTORIES[0]!.create(tempDir("plain-keys"), [
      { name: "d", privateKey: dotva.privateKey, state: "active" },
    ]);
    const plain = await startTestCustody(
      { ...noTls, CUSTODY_ENV: "development", CUSTODY_DEV_PLAINTEXT: "1" },
      keys.source,
    );
    const target = `127.0.0.1:${plain.custody.port}`;
    const client = new (loadCustodyProto().custody.v1.CardCustody)(target, credentials.createInsecure());
    const knotJwk = readFileSync(pki.knotJwk, "utf8");
    const out = await reencrypt(client, await request(knotJwk, "plain-1"));
    expect(out.ok ? "ok" : out.reason).toBe("ok");
    expect(plain.log.audits().at(-1)).toMatchObject({ caller: "(dev plaintext)", outcome: "OK" });
    expect(plain.log.lines().some((l) => String(l.msg).startsWith("DEV MODE: CUSTODY_DEV_PLAINTEXT"))).toBe(
      true,
    );

    const health = new (loadHealthProto().grpc.health.v1.Health)(target, credentials.createInsecure());
    const statuses: string[] = [];
    const watch = health.Watch({ service: "custody.v1.CardCustody" });
    const ended = new Promise<void>((resolve) => {
      watch.on("data", (m: { status: string }) => statuses.push(m.status));
      watch.on("end", () => resolve());
      watch.on("error", () => resolve());
    });
    while (statuses.length === 0) await new Promise((r) => setTimeout(r, 10));
    await plain.custody.shutdown(2000);
    await ended;
    expect(statuses).toEqual(["SERVING", "NOT_SERVING"]);
    client.close();
    health.close();
  });

  it("with CUSTODY_KEY_WATCH=1, reloads by itself when a key is added to the directory", async () => {
    const dir = tempDir("watched-keys");
    generateKeyFile({ dir, name: "first", bits: 2048, state: "active" });
    const watched = await startTestCustody(
      baseEnv(pki, {
        CUSTODY_ENV: "development",
        CUSTODY_KEY_DIR: dir,
        CUSTODY_KEY_WATCH: "1",
        CUSTODY_DEV_ALLOW_ANY_RECIPIENT: "1",
      }),
    );
    servers.push(watched.custody);
    const added = generateKeyFile({ dir, name: "second", bits: 2048, state: "active" });
    const start = Date.now();
    while (watched.custody.keys.list().length < 2 && Date.now() - start < 10_000) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(watched.log.lines().some((l) => l.msg === "key set reloaded" && l.keys === 2)).toBe(true);
    const client = custodyClient(watched.custody.port, pki);
    const publicKey = createPublicKey(createPrivateKey(readFileSync(added.file)));
    const out = await reencrypt(client, {
      ...(await request(jwkWith(), "watched")),
      secrets_jwe: await dotvaJwe(publicKey),
      key_fingerprint: added.fingerprint,
    });
    client.close();
    expect(out.ok ? "ok" : out.reason).toBe("ok");
  });
});
