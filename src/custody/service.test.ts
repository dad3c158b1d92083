/**
 * The custody service over real mTLS on 127.0.0.1, once per key store in STORE_FACTORIES and per
 * re-encryption mode (worker pool, inline): who may
 * connect and call, what each failure looks like to the caller (status + reason code), the audit line
 * of each call, and that no card data reaches a log line or an error.
 */
import { createPrivateKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { status } from "@grpc/grpc-js";
import { compactDecrypt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CardCustodyClient } from "../contract/generated/custody/v1/CardCustody.js";
import { fingerprintForms } from "../core/crypto/fingerprint.js";
import {
  baseEnv,
  type CallOutcome,
  custodyClient,
  dotvaJwe,
  healthCheck,
  healthClient,
  type LogCapture,
  reencrypt,
  rsaKeyPair,
  standalone,
  startTestCustody,
  TEST_EXPIRATION,
  TEST_SECRETS,
  tempDir,
  testPki,
} from "../tools/testing/custody-harness.js";
import { USER } from "../tools/testing/profile.js";
import { STORE_FACTORIES, type TestKeyStore } from "../tools/testing/stores.js";
import type { RunningCustody } from "./server.js";

function failure(outcome: CallOutcome) {
  if (outcome.ok) throw new Error("expected the call to fail");
  return outcome;
}

// Every store in both re-encryption modes: the worker pool, and inline on the main thread (CUSTODY_WORKERS=0).
const CASES = STORE_FACTORIES.flatMap((factory) =>
  [2, 0].map((workers) => ({ factory, workers, name: `${factory.name} store, CUSTODY_WORKERS=${workers}` })),
);

describe.each(CASES)("custody service over mTLS ($name)", ({ factory, workers }) => {
  const pki = testPki();
  const knotJwk = readFileSync(pki.knotJwk, "utf8").trim();
  const knotPrivate = createPrivateKey(readFileSync(pki.knotPrivateKey));
  const dotva = rsaKeyPair();
  const disabledKey = rsaKeyPair();
  const fingerprint = fingerprintForms(dotva.publicKey).canonical;
  let store: TestKeyStore;
  let custody: RunningCustody;
  let log: LogCapture;
  let gateway: CardCustodyClient;
  const clients: { close(): void }[] = [];

  const request = async (overrides: Record<string, unknown> = {}, key: KeyObject = dotva.publicKey) => ({
    secrets_jwe: await dotvaJwe(key),
    key_fingerprint: fingerprint,
    knot_jwk: knotJwk,
    user: USER,
    request_id: "req-test-1",
    ...overrides,
  });

  beforeAll(async () => {
    store = await factory.create(tempDir(`keys-${factory.name}`), [
      { name: "dotva-a", privateKey: dotva.privateKey, state: "active" },
      { name: "dotva-off", privateKey: disabledKey.privateKey, state: "disabled" },
    ]);
    ({ custody, log } = await startTestCustody(
      baseEnv(pki, { CUSTODY_WORKERS: String(workers) }),
      store.source,
    ));
    gateway = custodyClient(custody.port, pki);
    clients.push(gateway);
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await custody?.shutdown(2000);
  });

  it("re-encrypts for an allowed caller: Knot's key decrypts the exact /card payload", async () => {
    const out = await reencrypt(gateway, await request());
    if (!out.ok) throw new Error(`call failed: ${out.code} ${out.reason}`);
    expect(out.value.card_last4).toBe("4242");
    expect(out.value.key_fingerprint).toBe(fingerprint);
    expect(out.value.recipient_thumbprint).toBe(readFileSync(pki.knotThumbprint, "utf8").trim());
    const { plaintext, protectedHeader } = await compactDecrypt(out.value.jwe, knotPrivate);
    expect(protectedHeader).toEqual({ alg: "RSA-OAEP-256", enc: "A256GCM", kid: "knot-dev" });
    expect(JSON.parse(new TextDecoder().decode(plaintext))).toEqual({
      user: USER,
      card: { number: "4242424242424242", expiration: TEST_EXPIRATION, cvv: "9731" },
    });
    const line = log.audits().find((a) => a.request_id === "req-test-1" && a.outcome === "OK");
    expect(line).toMatchObject({
      caller: "spiffe://card-custody.dev/gateway",
      key_fingerprint: fingerprint,
      card_last4: "4242",
      grpc_status: 0,
      recipient_basis: "pinned",
    });
    expect(typeof line?.duration_ms).toBe("number");
  });

  it("finds the key by every accepted fingerprint form", async () => {
    const forms = fingerprintForms(dotva.publicKey);
    for (const form of forms.aliases) {
      const out = await reencrypt(gateway, await request({ key_fingerprint: form }));
      expect(out.ok, form).toBe(true);
    }
  });

  it.each([
    ["without a client certificate", "none"],
    ["with a certificate from another CA", "wrongCa"],
    ["with an expired certificate", "expired"],
  ] as const)(
    "refuses a client %s at the TLS handshake: UNAVAILABLE, no handler runs",
    async (_what, who) => {
      const auditsBefore = log.audits().length;
      const client = custodyClient(custody.port, pki, who);
      clients.push(client);
      const out = failure(await reencrypt(client, await request({ request_id: `tls-${who}` }), 3000));
      expect(out.code).toBe(status.UNAVAILABLE);
      const health = healthClient(custody.port, pki, who);
      clients.push(health);
      expect((await healthCheck(health)).code).toBe(status.UNAVAILABLE);
      expect(log.audits().length).toBe(auditsBefore);
    },
  );

  it("refuses an authenticated caller not on the allowlist with PERMISSION_DENIED, health checks included (CUSTODY_ALLOW_HEALTH unset)", async () => {
    const intruder = custodyClient(custody.port, pki, "intruder");
    clients.push(intruder);
    const out = failure(await reencrypt(intruder, await request({ request_id: "intruder-1" })));
    expect(out.code).toBe(status.PERMISSION_DENIED);
    expect(out.reason).toBe("CALLER_NOT_ALLOWED");
    expect(
      log
        .audits()
        .find((a) => a.request_id === undefined && a.caller === "spiffe://card-custody.dev/intruder"),
    ).toMatchObject({ outcome: "CALLER_NOT_ALLOWED", grpc_status: status.PERMISSION_DENIED });
    const intruderHealth = healthClient(custody.port, pki, "intruder");
    clients.push(intruderHealth);
    expect((await healthCheck(intruderHealth)).code).toBe(status.PERMISSION_DENIED);
    const health = healthClient(custody.port, pki, "gateway");
    clients.push(health);
    expect(await healthCheck(health)).toEqual({ status: "SERVING" });
    expect(await healthCheck(health, "custody.v1.CardCustody")).toEqual({ status: "SERVING" });
    expect((await healthCheck(health, "other.Service")).code).toBe(status.NOT_FOUND);
  });

  it("refuses a recipient key that is not pinned", async () => {
    const other = rsaKeyPair();
    const jwk = JSON.stringify(other.publicKey.export({ format: "jwk" }));
    const out = failure(await reencrypt(gateway, await request({ knot_jwk: jwk })));
    expect(out.code).toBe(status.PERMISSION_DENIED);
    expect(out.reason).toBe("RECIPIENT_NOT_ALLOWED");
  });

  it("puts the reason in google.rpc.Status/ErrorInfo (grpc-status-details-bin) as well as custody-reason", async () => {
    const out = failure(
      await reencrypt(gateway, await request({ key_fingerprint: `sha256:${"0".repeat(64)}` })),
    );
    const details = out.metadata.get("grpc-status-details-bin")[0] as Buffer;
    expect(Buffer.isBuffer(details)).toBe(true);
    const decoded = decodeStatus(details);
    expect(decoded).toEqual({
      code: status.NOT_FOUND,
      message: out.details,
      typeUrl: "type.googleapis.com/google.rpc.ErrorInfo",
      reason: "KEY_NOT_FOUND",
      domain: "custody.v1",
    });
  });

  it.each([
    [
      "a JWE header outside the allowlist",
      async () => ({
        secrets_jwe: `${Buffer.from('{"alg":"RSA1_5","enc":"A256GCM"}').toString("base64url")}.a.b.c.d`,
      }),
      status.INVALID_ARGUMENT,
      "JWE_HEADER_UNSUPPORTED",
    ],
    [
      "a JWE that is not compact",
      async () => ({ secrets_jwe: "not-a-jwe" }),
      status.INVALID_ARGUMENT,
      "JWE_MALFORMED",
    ],
    [
      "a Knot JWK with private members",
      async () => ({ knot_jwk: JSON.stringify(knotPrivate.export({ format: "jwk" })) }),
      status.INVALID_ARGUMENT,
      "KNOT_JWK_INVALID",
    ],
    [
      "a profile without a phone number",
      async () => ({ user: { ...USER, phone_number: "" } }),
      status.INVALID_ARGUMENT,
      "USER_PROFILE_INVALID",
    ],
    [
      "a fingerprint in no accepted form",
      async () => ({ key_fingerprint: "md5:abc" }),
      status.INVALID_ARGUMENT,
      "KEY_FINGERPRINT_INVALID",
    ],
    [
      "a request_id with spaces",
      async () => ({ request_id: "has spaces" }),
      status.INVALID_ARGUMENT,
      "REQUEST_INVALID",
    ],
    [
      "an unknown fingerprint",
      async () => ({ key_fingerprint: `sha256:${"ab".repeat(32)}` }),
      status.NOT_FOUND,
      "KEY_NOT_FOUND",
    ],
    [
      "a disabled key",
      async () => ({
        key_fingerprint: fingerprintForms(disabledKey.publicKey).canonical,
        secrets_jwe: await dotvaJwe(disabledKey.publicKey),
      }),
      status.FAILED_PRECONDITION,
      "KEY_DISABLED",
    ],
    [
      "an expired card",
      async () => ({
        secrets_jwe: await dotvaJwe(dotva.publicKey, { ...TEST_SECRETS, expiry_year: "2020" }),
      }),
      status.INVALID_ARGUMENT,
      "CARD_EXPIRED",
    ],
    [
      "a PAN failing Luhn",
      async () => ({
        secrets_jwe: await dotvaJwe(dotva.publicKey, { ...TEST_SECRETS, pan: "4242424242424241" }),
      }),
      status.INVALID_ARGUMENT,
      "PAN_INVALID",
    ],
  ])("maps %s to its status and reason", async (_what, overrides, code, reason) => {
    const out = failure(await reencrypt(gateway, await request(await overrides())));
    expect([out.code, out.reason]).toEqual([code, reason]);
    expect(log.audits().at(-1)).toMatchObject({ outcome: reason, grpc_status: code });
  });

  it("answers every decryption failure identically: INVALID_ARGUMENT JWE_DECRYPT_FAILED, same message", async () => {
    const good = await dotvaJwe(dotva.publicKey);
    const parts = good.split(".");
    const flip = (s: string) => `${s.slice(0, 10)}${s[10] === "A" ? "B" : "A"}${s.slice(11)}`;
    const variants = [
      await dotvaJwe(rsaKeyPair().publicKey), // encrypted to another key: OAEP fails
      [parts[0], flip(parts[1]!), ...parts.slice(2)].join("."), // corrupted encrypted key
      [...parts.slice(0, 3), flip(parts[3]!), parts[4]].join("."), // corrupted ciphertext: GCM fails
    ];
    const answers = [];
    for (const secrets_jwe of variants)
      answers.push(failure(await reencrypt(gateway, await request({ secrets_jwe }))));
    for (const a of answers) {
      expect([a.code, a.reason, a.details]).toEqual([
        status.INVALID_ARGUMENT,
        "JWE_DECRYPT_FAILED",
        answers[0]!.details,
      ]);
    }
  });

  it("honours the caller's deadline", async () => {
    const out = failure(await reencrypt(gateway, await request(), 1));
    expect(out.code).toBe(status.DEADLINE_EXCEEDED);
  });

  it("never lets the card's PAN, CVV or expiry, or any JWE, into a log line or an error", async () => {
    // Every path above has run with TEST_SECRETS (PAN 4242424242424242, CVV 9731, expiry TEST_EXPIRATION).
    const errors: string[] = [];
    const jwes: string[] = [];
    const collect = async (overrides: Record<string, unknown>) => {
      const req = await request(overrides);
      jwes.push(req.secrets_jwe);
      const out = await reencrypt(gateway, req);
      if (out.ok) jwes.push(out.value.jwe);
      else errors.push(out.details, JSON.stringify(out.metadata.getMap()));
    };
    await collect({});
    await collect({ secrets_jwe: await dotvaJwe(dotva.publicKey, { ...TEST_SECRETS, cvv: "97310" }) });
    await collect({ secrets_jwe: await dotvaJwe(dotva.publicKey, { ...TEST_SECRETS, expiry_month: "13" }) });
    await collect({ secrets_jwe: await dotvaJwe(dotva.publicKey, { pan: TEST_SECRETS.pan }) });
    await collect({ user: { ...USER, name: { first_name: "", last_name: "x" } } });
    const haystack = `${log.text}\n${errors.join("\n")}`;
    expect(log.audits().length).toBeGreaterThan(20);
    expect(haystack).not.toContain("4242424242424242");
    expect(haystack).not.toContain("424242424242424");
    expect(haystack).not.toMatch(standalone(TEST_SECRETS.cvv));
    expect(haystack).not.toContain(TEST_EXPIRATION);
    expect(haystack).not.toMatch(standalone(TEST_SECRETS.expiry_year));
    for (const jwe of jwes) expect(haystack).not.toContain(jwe.split(".")[3]);
  });
});

/** Minimal protobuf reader for google.rpc.Status{code, message, details[0]: Any{ErrorInfo{reason, domain}}}. */
function decodeStatus(buf: Buffer) {
  const fields = (b: Buffer) => {
    const out = new Map<number, (number | Buffer)[]>();
    let i = 0;
    const varint = () => {
      let v = 0;
      let shift = 0;
      while (true) {
        const byte = b[i++]!;
        v |= (byte & 0x7f) << shift;
        if (byte < 0x80) return v;
        shift += 7;
      }
    };
    while (i < b.length) {
      const tag = varint();
      let value: number | Buffer;
      if ((tag & 7) === 0) value = varint();
      else {
        const length = varint();
        value = b.subarray(i, i + length);
        i += length;
      }
      out.set(tag >> 3, [...(out.get(tag >> 3) ?? []), value]);
    }
    return out;
  };
  const top = fields(buf);
  const any = fields(top.get(3)![0] as Buffer);
  const info = fields(any.get(2)![0] as Buffer);
  return {
    code: top.get(1)![0],
    message: (top.get(2)![0] as Buffer).toString(),
    typeUrl: (any.get(1)![0] as Buffer).toString(),
    reason: (info.get(1)![0] as Buffer).toString(),
    domain: (info.get(2)![0] as Buffer).toString(),
  };
}
