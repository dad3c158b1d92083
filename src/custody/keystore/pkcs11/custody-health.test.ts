/**
 * The custody service configured for a token the way an operator does it (CUSTODY_KEYSTORE=pkcs11 and
 * a key URI), with the key generated non-extractable inside the token: it re-encrypts, and when the
 * token disappears grpc.health.v1 says NOT_SERVING and calls get UNAVAILABLE, then both recover alone.
 */
import { createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { CardCustodyClient } from "../../../contract/generated/custody/v1/CardCustody.js";
import {
  baseEnv,
  custodyClient,
  dotvaJwe,
  healthCheck,
  healthClient,
  reencrypt,
  startTestCustody,
  testPki,
} from "../../../tools/testing/custody-harness.js";
import { USER } from "../../../tools/testing/profile.js";
import { createTestToken, SOFTHSM_MODULE } from "../../../tools/testing/softhsm.js";
import type { RunningCustody } from "../../server.js";

const token = createTestToken("custody-svc");
const pki = testPki();
let custody: RunningCustody;
let client: CardCustodyClient;
let health: ReturnType<typeof healthClient>;

beforeAll(async () => {
  token.generateWithPkcs11Tool("dotva-svc", "5e");
  ({ custody } = await startTestCustody(
    baseEnv(pki, {
      CUSTODY_KEYSTORE: "pkcs11",
      CUSTODY_PKCS11_URI: `pkcs11:token=${token.label};object=dotva-svc;type=private?module-path=${SOFTHSM_MODULE}&pin-source=file:${token.pinFile}`,
      CUSTODY_PKCS11_SESSIONS: "2",
      CUSTODY_PKCS11_HEALTH_INTERVAL_MS: "100",
      CUSTODY_PKCS11_TIMEOUT_MS: "2000",
    }),
  ));
  client = custodyClient(custody.port, pki);
  health = healthClient(custody.port, pki);
});

afterAll(async () => {
  client?.close();
  health?.close();
  await custody?.shutdown(2000);
  token.remove();
});

describe("custody on a PKCS#11 token", () => {
  const knotJwk = () => readFileSync(pki.knotJwk, "utf8").trim();
  const call = async () => {
    const key = custody.keys.list()[0]!;
    return reencrypt(client, {
      secrets_jwe: await dotvaJwe(createPublicKey({ key: key.spki, format: "der", type: "spki" })),
      key_fingerprint: key.fingerprint,
      knot_jwk: knotJwk(),
      user: USER,
      request_id: "hsm-1",
    });
  };

  it("re-encrypts with a key that never left the token", async () => {
    expect(custody.keys.list()).toHaveLength(1);
    expect(custody.keys.list()[0]!.source).toMatch(/^pkcs11:token=custody-svc;object=dotva-svc;id=%5E/);
    const out = await call();
    expect(out.ok ? out.value.card_last4 : out).toBe("4242");
    expect(await healthCheck(health)).toEqual({ status: "SERVING" });
  });

  it("goes NOT_SERVING with UNAVAILABLE calls while the token is gone, and back to SERVING after", async () => {
    token.hide();
    try {
      await vi.waitFor(async () => expect((await healthCheck(health)).status).toBe("NOT_SERVING"), {
        timeout: 3_000,
        interval: 50,
      });
      expect(await healthCheck(health, "custody.v1.CardCustody")).toEqual({ status: "NOT_SERVING" });
      const out = await call();
      expect(out.ok).toBe(false);
      if (!out.ok) {
        expect(out.code).toBe(status.UNAVAILABLE);
        expect(out.reason).toBe("KEYSTORE_UNAVAILABLE");
      }
    } finally {
      token.restore();
    }
    await vi.waitFor(async () => expect((await healthCheck(health)).status).toBe("SERVING"), {
      timeout: 5_000,
      interval: 50,
    });
    const out = await call();
    expect(out.ok).toBe(true);
  });
});
