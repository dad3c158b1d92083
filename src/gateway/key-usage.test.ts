/**
 * The key-usage question before a Dotva key is retired: GET /v1/keys/{fingerprint}/usage and the
 * `gateway key-usage` CLI that asks it, against a listening gateway holding cards Dotva encrypted (with
 * jose) to two different keys. Counts per spelling across drivers are in storage.test.ts.
 */
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fingerprintForms } from "../core/crypto/fingerprint.js";
import { type FakeCustody, startFakeCustody } from "../tools/testing/fake-custody.js";
import {
  dotvaDelivery,
  dotvaHeaders,
  gatewayConfig,
  TEST_CARD,
  TEST_INTERNAL_TOKEN,
} from "../tools/testing/gateway-env.js";
import { type RunningGateway, startGateway } from "./app.js";
import { runKeyUsage } from "./key-usage-cli.js";

const tmp = mkdtempSync(join(tmpdir(), "gw-keyuse-"));
let custody: FakeCustody;
let gw: RunningGateway;
let url: string;
const oldKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey;
const oldPem = oldKey.export({ type: "spki", format: "pem" }).toString();
const oldForms = fingerprintForms(oldKey);

beforeAll(async () => {
  custody = await startFakeCustody();
  gw = await startGateway(gatewayConfig({ knotUrl: "http://127.0.0.1:1", custodyAddress: custody.address }));
  url = gw.internalUrl;
  // Three cards under the old key, one under the current (custody's) key.
  for (const pem of [oldPem, oldPem, oldPem, custody.publicKeyPem]) {
    const d = await dotvaDelivery(pem, TEST_CARD);
    const res = await fetch(`${gw.url}/webhooks/dotva`, {
      method: "POST",
      headers: dotvaHeaders(d.text),
      body: d.text,
    });
    expect(res.status).toBe(200);
  }
}, 30_000);

afterAll(async () => {
  await gw?.close();
  await custody?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const get = (path: string, token = TEST_INTERNAL_TOKEN) =>
  fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } });

function cli(argv: string[], env: NodeJS.ProcessEnv = { GATEWAY_INTERNAL_TOKEN: TEST_INTERNAL_TOKEN }) {
  const out: string[] = [];
  const err: string[] = [];
  return runKeyUsage(argv, env, { out: (l) => out.push(l), err: (l) => err.push(l) }).then((code) => ({
    code,
    out: out.join("\n"),
    err: err.join("\n"),
  }));
}

describe("GET /v1/keys/{fingerprint}/usage", () => {
  it("counts stored cards still holding secrets under a key, by any spelling of its digest", async () => {
    for (const spelling of [oldForms.canonical, oldForms.aliases[0]!, oldForms.aliases[2]!]) {
      const res = await get(`/v1/keys/${encodeURIComponent(spelling)}/usage`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        fingerprint: oldForms.canonical,
        withSecrets: 3,
        unsent: 3,
        spellings: [oldForms.canonical],
      });
    }
    const current = fingerprintForms(createPublicKey(custody.publicKeyPem)).canonical;
    expect(await (await get(`/v1/keys/${current}/usage`)).json()).toMatchObject({ withSecrets: 1 });
    const unused = fingerprintForms(generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey).canonical;
    expect(await (await get(`/v1/keys/${unused}/usage`)).json()).toMatchObject({ withSecrets: 0, unsent: 0 });
  });

  it("is bearer-protected and refuses what is not a fingerprint, naming the parameter", async () => {
    const noToken = await fetch(`${url}/v1/keys/${oldForms.canonical}/usage`);
    expect(noToken.status).toBe(401);
    expect(await noToken.json()).toMatchObject({ error: { code: "UNAUTHENTICATED" } });
    expect((await get(`/v1/keys/${oldForms.canonical}/usage`, "x".repeat(40))).status).toBe(401);
    for (const bad of ["sha256:xyz", "not-a-fingerprint-at-all", `sha256:${"a".repeat(63)}`]) {
      const res = await get(`/v1/keys/${encodeURIComponent(bad)}/usage`);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: "INVALID_PARAMETER" } });
    }
    const badThumb = await get(`/v1/keys/${oldForms.canonical}/usage?jwk_thumbprint=short`);
    expect(badThumb.status).toBe(400);
  });
});

describe("gateway key-usage", () => {
  it("exits 3 while cards need the key and 0 for a key none needs; --public-key finds the same cards", async () => {
    const still = await cli(["--url", url, "--fingerprint", oldForms.canonical]);
    expect(still.code).toBe(3);
    expect(still.out).toContain("3 stored cards still need this key (3 never sent)");
    const pemFile = join(tmp, "old.pub.pem");
    writeFileSync(pemFile, oldPem);
    const byPem = await cli(["--url", url, "--public-key", pemFile]);
    expect(byPem.code).toBe(3);
    const unused = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey;
    writeFileSync(pemFile, unused.export({ type: "spki", format: "pem" }));
    const none = await cli(["--public-key", pemFile], {
      GATEWAY_INTERNAL_URL: url,
      GATEWAY_INTERNAL_TOKEN: TEST_INTERNAL_TOKEN,
    });
    expect(none).toMatchObject({ code: 0 });
    expect(none.out).toContain("no stored card needs this key");
  });

  it("reads the token from a file, and fails distinctly without one, with a wrong one, or unreachable", async () => {
    const tokenFile = join(tmp, "token");
    writeFileSync(tokenFile, `${TEST_INTERNAL_TOKEN}\n`, { mode: 0o600 });
    expect(
      (
        await cli(["--url", url, "--fingerprint", oldForms.canonical], {
          GATEWAY_INTERNAL_TOKEN_FILE: tokenFile,
        })
      ).code,
    ).toBe(3);
    const missing = await cli(["--url", url, "--fingerprint", oldForms.canonical], {});
    expect(missing.code).toBe(2);
    expect(missing.err).toContain("GATEWAY_INTERNAL_TOKEN");
    const wrong = await cli(["--url", url, "--fingerprint", oldForms.canonical], {
      GATEWAY_INTERNAL_TOKEN: "y".repeat(40),
    });
    expect(wrong).toMatchObject({ code: 1 });
    expect(wrong.err).toContain("UNAUTHENTICATED");
    expect(wrong.err).not.toContain("y".repeat(40));
    expect((await cli(["--url", url, "--fingerprint", "nope-nope-nope-nope-nope"])).code).toBe(2);
    expect((await cli(["--url", "http://127.0.0.1:1", "--fingerprint", oldForms.canonical])).code).toBe(1);
  });
});
