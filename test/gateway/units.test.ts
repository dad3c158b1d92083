/** Pure pieces of the gateway: backoff schedule, Knot's signature string, configuration validation. */
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { helpText, loadConfig, VARIABLES } from "../../src/gateway/config.js";
import { signatureBase, verifyKnotSignature } from "../../src/gateway/knot/signature.js";
import { fullJitterDelay, nextRetryDelay } from "../../src/gateway/sendcard/backoff.js";
import { gatewayEnv } from "../support/gateway-env.js";

describe("full-jitter backoff", () => {
  const policy = { baseMs: 100, capMs: 2_000 };
  it("draws uniformly below min(cap, base * 2^retry)", () => {
    expect(fullJitterDelay(0, policy, () => 0.999)).toBe(99);
    expect(fullJitterDelay(3, policy, () => 0.5)).toBe(400);
    expect(fullJitterDelay(10, policy, () => 0.999)).toBe(1_998);
    expect(fullJitterDelay(50, policy, () => 0)).toBe(0);
  });
  it("gives up when the next attempt could not start before the deadline", () => {
    const p = { ...policy, minAttemptMs: 50 };
    expect(nextRetryDelay(0, 1_000, 2_000, p, () => 0.5)).toBe(50);
    expect(nextRetryDelay(4, 1_000, 1_500, p, () => 0.5)).toBeUndefined();
    expect(nextRetryDelay(0, 1_000, 1_049, p, () => 0)).toBeUndefined();
  });
});

describe("Knot signature", () => {
  const facts = {
    contentLength: "312",
    contentType: "application/json",
    encryptionType: "HMAC-SHA256",
    event: "AUTHENTICATED",
    sessionId: "fb5aa994",
  };
  it("signs the documented string, session_id pair left out when absent", () => {
    expect(signatureBase(facts)).toBe(
      "Content-Length|312|Content-Type|application/json|Encryption-Type|HMAC-SHA256|event|AUTHENTICATED|session_id|fb5aa994",
    );
    const { sessionId: _, ...noSession } = facts;
    expect(signatureBase({ ...noSession, event: "MERCHANT_STATUS_UPDATE" })).toBe(
      "Content-Length|312|Content-Type|application/json|Encryption-Type|HMAC-SHA256|event|MERCHANT_STATUS_UPDATE",
    );
  });
  it("verifies an independently computed HMAC and rejects any change", () => {
    const sig = createHmac("sha256", "s3cret").update(signatureBase(facts)).digest("base64");
    expect(verifyKnotSignature("s3cret", facts, sig)).toBe(true);
    expect(verifyKnotSignature("other", facts, sig)).toBe(false);
    expect(verifyKnotSignature("s3cret", { ...facts, contentLength: "313" }, sig)).toBe(false);
    expect(verifyKnotSignature("s3cret", facts, undefined)).toBe(false);
    expect(verifyKnotSignature("s3cret", facts, sig.slice(0, -2))).toBe(false);
  });
});

describe("configuration", () => {
  const base = gatewayEnv({ knotUrl: "http://127.0.0.1:1", custodyAddress: "127.0.0.1:2" });
  const error = (env: Record<string, string | undefined>) => {
    try {
      loadConfig(env);
      return "";
    } catch (e) {
      return (e as Error).message;
    }
  };
  it("names the bad variable and never its value", () => {
    expect(error({ ...base, GATEWAY_PORT: "99999" })).toMatch(/^GATEWAY_PORT: /);
    const msg = error({ ...base, GATEWAY_INTERNAL_TOKEN: "short-token-value" });
    expect(msg).toMatch(/^GATEWAY_INTERNAL_TOKEN: /);
    expect(msg).not.toContain("short-token-value");
    expect(error({ ...base, KNOT_IP_ALLOWLIST: "10.0.0.0/99" })).toMatch(/^KNOT_IP_ALLOWLIST: /);
    expect(error({ ...base, KNOT_BASE_URL: undefined })).toMatch(/^KNOT_BASE_URL: is required/);
  });
  it("allows the unsafe switches only in development", () => {
    expect(error({ ...base, GATEWAY_ENV: "production", KNOT_WEBHOOK_VERIFY: "false" })).toMatch(
      /^KNOT_WEBHOOK_VERIFY/,
    );
    expect(error({ ...base, GATEWAY_ENV: "production" })).toMatch(/^CUSTODY_INSECURE/);
    expect(loadConfig({ ...base, KNOT_WEBHOOK_VERIFY: "false" }).knot.verifyWebhooks).toBe(false);
  });
  it("production accepts an IP allow-list as Dotva's only sender check (no header Dotva does not send)", () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-cfg-"));
    const pem = join(dir, "x.pem");
    writeFileSync(pem, "placeholder");
    const prod = {
      ...base,
      GATEWAY_ENV: "production",
      CUSTODY_INSECURE: undefined,
      CUSTODY_CA_FILE: pem,
      CUSTODY_CERT_FILE: pem,
      CUSTODY_KEY_FILE: pem,
      DOTVA_SHARED_SECRET: undefined,
      DOTVA_HMAC_SECRET: undefined,
    };
    try {
      expect(error(prod)).toMatch(/^DOTVA_SHARED_SECRET: production needs at least one Dotva sender check/);
      const cfg = loadConfig({ ...prod, DOTVA_IP_ALLOWLIST: "198.51.100.0/24" });
      expect(cfg.dotva).toEqual({ ipAllowlist: ["198.51.100.0/24"] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it("KNOT_REDIRECT_ORIGINS takes origins only", () => {
    expect(
      loadConfig({ ...base, KNOT_REDIRECT_ORIGINS: "https://a.knotapi.com, https://b.knotapi.com/" }).knot
        .redirectOrigins,
    ).toEqual(["https://a.knotapi.com", "https://b.knotapi.com"]);
    expect(error({ ...base, KNOT_REDIRECT_ORIGINS: "https://a.knotapi.com/card" })).toMatch(
      /^KNOT_REDIRECT_ORIGINS: /,
    );
    expect(error({ ...base, KNOT_REDIRECT_ORIGINS: "ftp://a.knotapi.com" })).toMatch(
      /^KNOT_REDIRECT_ORIGINS: /,
    );
  });
  it("--help lists every variable", () => {
    for (const v of VARIABLES) expect(helpText()).toContain(v.name);
  });
});
