/**
 * Two-sided authorization (CUSTODY_CALLER_POLICY_FILE): each caller decrypts only with the Dotva keys
 * its grant names and encrypts only to its own recipients; a denial says which side; the file reloads on
 * change without a restart, and a malformed file keeps the previous grants.
 */
import type { KeyObject } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fingerprintForms, rsaJwkThumbprint } from "../core/crypto/fingerprint.js";
import { GATEWAY_SPIFFE, INTRUDER_SPIFFE } from "../tools/dev-pki.js";
import {
  baseEnv,
  custodyClient,
  type LogCapture,
  reencrypt,
  reencryptRequest,
  rsaKeyPair,
  startTestCustody,
  tempDir,
  testPki,
} from "../tools/testing/custody-harness.js";
import { STORE_FACTORIES } from "../tools/testing/stores.js";
import { loadConfig } from "./config.js";
import type { RunningCustody } from "./server.js";

function thumbprint(key: KeyObject): string {
  const jwk = key.export({ format: "jwk" });
  return rsaJwkThumbprint({ n: jwk.n!, e: jwk.e! });
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("per-caller two-sided authorization", () => {
  const pki = testPki();
  const keyA = rsaKeyPair();
  const keyB = rsaKeyPair();
  const knot = rsaKeyPair();
  const otherKnot = rsaKeyPair();
  const knotJwk = JSON.stringify(knot.publicKey.export({ format: "jwk" }));
  const fpA = fingerprintForms(keyA.publicKey);
  const fpB = fingerprintForms(keyB.publicKey);
  const dir = tempDir("caller-policy");
  const policyFile = join(dir, "callers.json");
  let server: { custody: RunningCustody; log: LogCapture };

  const policy = (gatewayKeys: object) => ({
    callers: [
      {
        caller: `uri:${GATEWAY_SPIFFE}`,
        source_keys: gatewayKeys,
        recipients: { pins: [thumbprint(knot.publicKey)] },
      },
      {
        caller: `uri:${INTRUDER_SPIFFE}`,
        source_keys: { labels: ["b.pem"] },
        recipients: { pins: [thumbprint(otherKnot.publicKey)] },
      },
    ],
  });
  // Colon hex: any spelling custody accepts names the key.
  const gatewayOnlyA = { fingerprints: [fpA.aliases.find((a) => a.includes(":"))!] };

  const request = (key: { publicKey: KeyObject }, requestId: string) =>
    reencryptRequest(key.publicKey, knotJwk, requestId);
  const call = async (who: "gateway" | "intruder", key: { publicKey: KeyObject }, id: string) => {
    const client = custodyClient(server.custody.port, pki, who);
    const out = await reencrypt(client, await request(key, id));
    client.close();
    return out;
  };

  beforeAll(async () => {
    writeFileSync(policyFile, JSON.stringify(policy(gatewayOnlyA)));
    const store = await STORE_FACTORIES[0]!.create(tempDir("caller-policy-keys"), [
      { name: "a", privateKey: keyA.privateKey, state: "active" },
      { name: "b", privateKey: keyB.privateKey, state: "active" },
    ]);
    server = await startTestCustody(
      baseEnv(pki, {
        CUSTODY_ALLOW_REENCRYPT: "",
        CUSTODY_RECIPIENT_PINS: "",
        CUSTODY_CALLER_POLICY_FILE: policyFile,
      }),
      store.source,
    );
  });
  afterAll(async () => {
    await server.custody.shutdown(2000);
  });

  it("lets the gateway decrypt with key A (granted by fingerprint) and audits both sides", async () => {
    const out = await call("gateway", keyA, "grant-a");
    expect(out.ok ? "ok" : out.reason).toBe("ok");
    expect(server.log.audits().at(-1)).toMatchObject({
      outcome: "OK",
      caller_rule: `uri:${GATEWAY_SPIFFE}`,
      policy_version: expect.stringMatching(/^file:[0-9a-f]{12}$/),
      source_key_basis: "fingerprint",
      recipient_basis: "pinned",
      key_fingerprint: fpA.canonical,
    });
  });

  it("refuses key B to a caller granted only key A: PERMISSION_DENIED SOURCE_KEY_NOT_ALLOWED, no values named", async () => {
    const out = await call("gateway", keyB, "deny-b");
    expect(out.ok).toBe(false);
    if (out.ok) return;
    expect([out.code, out.reason]).toEqual([status.PERMISSION_DENIED, "SOURCE_KEY_NOT_ALLOWED"]);
    for (const form of [fpB.canonical, ...fpB.aliases]) expect(out.details).not.toContain(form);
    expect(server.log.audits().at(-1)).toMatchObject({
      outcome: "SOURCE_KEY_NOT_ALLOWED",
      source_key_basis: "denied",
    });
    expect(server.log.audits().at(-1)!.key_fingerprint).toBeUndefined();
  });

  it("answers a key that does not exist as SOURCE_KEY_NOT_ALLOWED too, so a caller cannot probe the store", async () => {
    const out = await call("gateway", rsaKeyPair(), "deny-unknown");
    expect(out.ok ? "ok" : out.reason).toBe("SOURCE_KEY_NOT_ALLOWED");
  });

  it("refuses a caller whose recipient set lacks Knot's key: RECIPIENT_NOT_ALLOWED, though the gateway may send there", async () => {
    const out = await call("intruder", keyB, "deny-recipient");
    expect(out.ok).toBe(false);
    if (out.ok) return;
    expect([out.code, out.reason]).toEqual([status.PERMISSION_DENIED, "RECIPIENT_NOT_ALLOWED"]);
    expect(server.log.audits().at(-1)).toMatchObject({
      caller: INTRUDER_SPIFFE,
      outcome: "RECIPIENT_NOT_ALLOWED",
      recipient_refusal: "NOT_PINNED",
    });
  });

  it("picks up a changed file without a restart, and keeps the previous grants when the new file is malformed", async () => {
    const before = server.log.audits().at(-1)!.policy_version;
    // The gateway is now granted key B by its label.
    writeFileSync(policyFile, JSON.stringify(policy({ labels: ["b.pem"] })));
    await until(async () => (await call("gateway", keyB, "reload-b")).ok, "the new grant");
    expect(server.log.audits().at(-1)!.policy_version).not.toBe(before);
    expect(server.log.audits().at(-1)!.source_key_basis).toBe("label");
    expect((await call("gateway", keyA, "reload-a")).ok ? "ok" : "denied").toBe("denied");

    const good = server.log.audits().at(-1)!.policy_version;
    writeFileSync(policyFile, JSON.stringify({ callers: [{ caller: `uri:${GATEWAY_SPIFFE}` }] }));
    await until(
      async () => server.log.text.includes("caller policy reload failed; keeping the previous policy"),
      "the failed reload",
    );
    const failure = server.log
      .lines()
      .find((l) => l.msg === "caller policy reload failed; keeping the previous policy");
    expect(failure!.reason).toMatch(/^CUSTODY_CALLER_POLICY_FILE: callers\.0\.source_keys /);
    expect(server.custody.reloadCallerPolicy()).toBe(false);
    const out = await call("gateway", keyB, "after-bad-reload");
    expect(out.ok ? "ok" : out.reason).toBe("ok");
    expect(server.log.audits().at(-1)!.policy_version).toBe(good);
  });

  it("refuses at start-up a policy file that does not validate, or one beside the global lists", async () => {
    const bad = join(dir, "bad.json");
    writeFileSync(
      bad,
      JSON.stringify({
        callers: [
          {
            caller: "cn:gateway",
            source_keys: { labels: ["a.pem"] },
            recipients: { pins: [thumbprint(knot.publicKey)] },
          },
        ],
      }),
    );
    const env = (extra: Record<string, string>) =>
      baseEnv(pki, { CUSTODY_ALLOW_REENCRYPT: "", CUSTODY_RECIPIENT_PINS: "", ...extra });
    await expect(startTestCustody(env({ CUSTODY_CALLER_POLICY_FILE: bad }))).rejects.toThrow(
      /^CUSTODY_CALLER_POLICY_FILE: callers\.0\.caller must be uri:spiffe/,
    );
    expect(() =>
      loadConfig(
        env({ CUSTODY_CALLER_POLICY_FILE: policyFile, CUSTODY_ALLOW_REENCRYPT: `uri:${GATEWAY_SPIFFE}` }),
      ),
    ).toThrow(/^CUSTODY_ALLOW_REENCRYPT: not used with CUSTODY_CALLER_POLICY_FILE/);
  });
});
