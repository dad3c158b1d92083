/**
 * Custody's Prometheus listener (CUSTODY_METRICS_LISTEN): off by default, and when on, the series an
 * operator needs after a few calls, with no card data, JWE or request text in the exposition.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fingerprintForms } from "../core/crypto/fingerprint.js";
import { GATEWAY_SPIFFE } from "../tools/dev-pki.js";
import {
  baseEnv,
  custodyClient,
  dotvaJwe,
  type LogCapture,
  reencrypt,
  rsaKeyPair,
  standalone,
  startTestCustody,
  TEST_SECRETS,
  tempDir,
  testPki,
} from "../tools/testing/custody-harness.js";
import { USER } from "../tools/testing/profile.js";
import { STORE_FACTORIES } from "../tools/testing/stores.js";
import { loadConfig } from "./config.js";
import type { RunningCustody } from "./server.js";

describe("custody metrics", () => {
  const pki = testPki();
  const dotva = rsaKeyPair();
  const fingerprint = fingerprintForms(dotva.publicKey).canonical;
  let server: { custody: RunningCustody; log: LogCapture };

  beforeAll(async () => {
    const store = await STORE_FACTORIES[0]!.create(tempDir("metrics-keys"), [
      { name: "d", privateKey: dotva.privateKey, state: "active" },
    ]);
    server = await startTestCustody(baseEnv(pki, { CUSTODY_METRICS_LISTEN: "127.0.0.1:0" }), store.source);
  });
  afterAll(async () => {
    await server?.custody.shutdown(2000);
  });

  it("is off unless CUSTODY_METRICS_LISTEN is set, loopback when given a port, and refuses a malformed value", () => {
    expect(loadConfig(baseEnv(pki)).metricsListen).toBeUndefined();
    expect(loadConfig(baseEnv(pki, { CUSTODY_METRICS_LISTEN: "9464" })).metricsListen).toEqual({
      host: "127.0.0.1",
      port: 9464,
    });
    expect(() => loadConfig(baseEnv(pki, { CUSTODY_METRICS_LISTEN: "http://0.0.0.0:9464" }))).toThrow(
      /^CUSTODY_METRICS_LISTEN: /,
    );
  });

  it("exposes calls by method, outcome and caller, latency, queue depth, key uses and certificate expiry, and nothing secret", async () => {
    const jwe = await dotvaJwe(dotva.publicKey);
    const knotJwk = readFileSync(pki.knotJwk, "utf8");
    const gateway = custodyClient(server.custody.port, pki);
    const intruder = custodyClient(server.custody.port, pki, "intruder");
    const base = { secrets_jwe: jwe, key_fingerprint: fingerprint, knot_jwk: knotJwk, user: USER };
    for (let i = 0; i < 3; i++) {
      const out = await reencrypt(gateway, { ...base, request_id: `metrics-${i}` });
      expect(out.ok ? "ok" : out.reason).toBe("ok");
    }
    const refused = await reencrypt(intruder, { ...base, request_id: "metrics-intruder" });
    expect(refused.ok ? "ok" : refused.reason).toBe("CALLER_NOT_ALLOWED");
    const unknownKey = await reencrypt(gateway, {
      ...base,
      key_fingerprint: fingerprintForms(rsaKeyPair().publicKey).canonical,
    });
    expect(unknownKey.ok ? "ok" : unknownKey.reason).toBe("KEY_NOT_FOUND");
    gateway.close();
    intruder.close();

    const res = await fetch(`http://127.0.0.1:${server.custody.metricsPort}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain(
      `custody_calls_total{method="ReencryptForKnot",outcome="OK",caller="${GATEWAY_SPIFFE}"} 3`,
    );
    expect(text).toContain(
      'custody_calls_total{method="ReencryptForKnot",outcome="CALLER_NOT_ALLOWED",caller="(not admitted)"} 1',
    );
    expect(text).toContain(
      `custody_calls_total{method="ReencryptForKnot",outcome="KEY_NOT_FOUND",caller="${GATEWAY_SPIFFE}"} 1`,
    );
    expect(text).toMatch(/custody_call_duration_seconds_count\{method="ReencryptForKnot"\} 5/);
    expect(text).toMatch(/^custody_worker_queue_depth 0$/m);
    expect(text).toContain(`custody_key_uses_total{fingerprint="${fingerprint}",state="active"} 3`);
    const serverCert = new X509Certificate(readFileSync(pki.server.cert));
    expect(text).toContain(
      `custody_certificate_expiry_timestamp_seconds{certificate="server"} ${Date.parse(serverCert.validTo) / 1000}`,
    );
    expect(text).toMatch(/custody_certificate_expiry_timestamp_seconds\{certificate="client_ca"\} \d+/);

    for (const secret of [TEST_SECRETS.pan, jwe.split(".")[0]!, "eyJ", USER.name.first_name]) {
      expect(text).not.toContain(secret);
    }
    // Heap sizes, lag figures and the per-run fingerprint hold four-digit runs by chance.
    expect(text).not.toMatch(standalone(TEST_SECRETS.cvv));
    expect((await fetch(`http://127.0.0.1:${server.custody.metricsPort}/`)).status).toBe(404);
  });
});
