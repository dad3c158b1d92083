/** Pure pieces of the gateway: backoff schedule, Knot's signature string, configuration validation. */
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { gatewayEnv } from "../tools/testing/gateway-env.js";
import { DEFAULTS, helpText, loadConfig, VARIABLES } from "./config.js";
import { signatureBase, verifyKnotSignature } from "./knot/signature.js";
import { fullJitterDelay, nextRetryDelay } from "./sendcard/backoff.js";

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
    expect(error({ ...base, GATEWAY_ENV: "production" })).toMatch(/^GATEWAY_CUSTODY_INSECURE/);
    expect(loadConfig({ ...base, KNOT_WEBHOOK_VERIFY: "false" }).knot.verifyWebhooks).toBe(false);
  });

  describe("production", () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-cfg-"));
    const pem = join(dir, "x.pem");
    writeFileSync(pem, "placeholder");
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    /** Everything production asks for, so each case below breaks exactly one rule. */
    const prod = {
      ...base,
      GATEWAY_ENV: "production",
      GATEWAY_CUSTODY_INSECURE: undefined,
      GATEWAY_CUSTODY_CA_FILE: pem,
      GATEWAY_CUSTODY_CERT_FILE: pem,
      GATEWAY_CUSTODY_KEY_FILE: pem,
      KNOT_BASE_URL: "https://production.knotapi.com",
      KNOT_IP_ALLOWLIST: "198.51.100.7",
    };

    it("starts with https Knot, a Knot source allow-list and mTLS to custody", () => {
      const cfg = loadConfig(prod);
      expect(cfg.knot).toMatchObject({
        baseUrl: "https://production.knotapi.com",
        ipAllowlist: ["198.51.100.7"],
      });
      expect(cfg.env).toBe("production");
    });

    it("accepts an IP allow-list as Dotva's only sender check (no header Dotva does not send)", () => {
      const noDotvaCheck = { ...prod, DOTVA_SHARED_SECRET: undefined, DOTVA_HMAC_SECRET: undefined };
      expect(error(noDotvaCheck)).toMatch(
        /^DOTVA_SHARED_SECRET: production needs at least one Dotva sender check/,
      );
      const cfg = loadConfig({ ...noDotvaCheck, DOTVA_IP_ALLOWLIST: "198.51.100.0/24" });
      expect(cfg.dotva).toEqual({ ipAllowlist: ["198.51.100.0/24"] });
    });

    it("refuses http for KNOT_BASE_URL and KNOT_REDIRECT_ORIGINS (Basic credentials and Knot's key in clear)", () => {
      expect(error({ ...prod, KNOT_BASE_URL: "http://production.knotapi.com" })).toMatch(
        /^KNOT_BASE_URL: must be an https URL outside GATEWAY_ENV=development/,
      );
      expect(error({ ...prod, KNOT_REDIRECT_ORIGINS: "https://a.knotapi.com,http://b.knotapi.com" })).toMatch(
        /^KNOT_REDIRECT_ORIGINS: every origin must be https/,
      );
      expect(loadConfig({ ...base, KNOT_BASE_URL: "http://127.0.0.1:9" }).knot.baseUrl).toBe(
        "http://127.0.0.1:9",
      );
    });

    it("requires KNOT_IP_ALLOWLIST: Knot's signature leaves task_id and card_id unsigned", () => {
      expect(error({ ...prod, KNOT_IP_ALLOWLIST: undefined })).toMatch(
        /^KNOT_IP_ALLOWLIST: required in production/,
      );
      expect(error({ ...prod, KNOT_IP_ALLOWLIST: " , " })).toMatch(
        /^KNOT_IP_ALLOWLIST: required in production/,
      );
    });

    it("requires sslmode=verify-full for PostgreSQL, never echoing the URL", () => {
      const pg = { ...prod, GATEWAY_STORAGE: "postgres" };
      for (const url of [
        "postgres://gw:hunter2@db.internal/gateway",
        "postgres://gw:hunter2@db.internal/gateway?sslmode=require",
        "postgres://gw:hunter2@db.internal/gateway?sslmode=verify-ca",
        "host=db.internal sslmode=verify-full password=hunter2",
      ]) {
        const msg = error({ ...pg, GATEWAY_DATABASE_URL: url });
        expect(msg).toMatch(/^GATEWAY_DATABASE_URL: production requires .*sslmode=verify-full/);
        expect(msg).not.toContain("hunter2");
      }
      const ok = "postgres://gw:hunter2@db.internal/gateway?sslmode=verify-full&sslrootcert=/etc/ca.pem";
      expect(loadConfig({ ...pg, GATEWAY_DATABASE_URL: ok }).storage).toEqual({
        driver: "postgres",
        url: ok,
      });
      expect(
        loadConfig({ ...base, GATEWAY_STORAGE: "postgres", GATEWAY_DATABASE_URL: "postgres://x/y" }).storage
          .driver,
      ).toBe("postgres");
    });
  });

  it("refuses the gateway's old custody variable names, naming the new one", () => {
    const renamed = {
      CUSTODY_ADDRESS: "GATEWAY_CUSTODY_ADDRESS",
      CUSTODY_CA_FILE: "GATEWAY_CUSTODY_CA_FILE",
      CUSTODY_CERT_FILE: "GATEWAY_CUSTODY_CERT_FILE",
      CUSTODY_KEY_FILE: "GATEWAY_CUSTODY_KEY_FILE",
      CUSTODY_SERVER_NAME: "GATEWAY_CUSTODY_SERVER_NAME",
      CUSTODY_INSECURE: "GATEWAY_CUSTODY_INSECURE",
    };
    for (const [old, replacement] of Object.entries(renamed)) {
      expect(error({ ...base, [old]: "127.0.0.1:2" })).toBe(
        `${old}: the gateway no longer reads this name; rename it to ${replacement}`,
      );
    }
    // Custody's own variables are not the gateway's business.
    expect(error({ ...base, CUSTODY_LISTEN: "127.0.0.1:7443" })).toBe("");
  });

  it("takes every default from the VARIABLES table, the one place that states them", () => {
    const minimal = {
      GATEWAY_ENV: "development",
      GATEWAY_INTERNAL_TOKEN: base.GATEWAY_INTERNAL_TOKEN,
      KNOT_BASE_URL: "http://127.0.0.1:1",
      KNOT_CLIENT_ID: "id",
      KNOT_CLIENT_SECRET: "secret",
      GATEWAY_CUSTODY_ADDRESS: "127.0.0.1:2",
      GATEWAY_CUSTODY_INSECURE: "true",
    };
    const cfg = loadConfig(minimal);
    expect(cfg).toMatchObject({
      host: DEFAULTS.GATEWAY_HOST,
      port: Number(DEFAULTS.GATEWAY_PORT),
      storage: { driver: DEFAULTS.GATEWAY_STORAGE, path: DEFAULTS.GATEWAY_SQLITE_PATH },
      secrets: {
        ttlMs: Number(DEFAULTS.GATEWAY_SECRETS_TTL_SECONDS) * 1000,
        keepAfterSendMs: Number(DEFAULTS.GATEWAY_SECRETS_KEEP_AFTER_SEND_SECONDS) * 1000,
      },
      knot: { webhookToleranceMs: Number(DEFAULTS.KNOT_WEBHOOK_TOLERANCE_SECONDS) * 1000 },
      sendCard: { deadlineMs: Number(DEFAULTS.SEND_CARD_DEADLINE_MS) },
    });
    expect(DEFAULTS.KNOT_WEBHOOK_TOLERANCE_SECONDS).toBe("900");
    for (const v of VARIABLES) {
      if ("default" in v) expect(helpText()).toContain(`${v.name}`);
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
  it("GATEWAY_CUSTODY_ADDRESS takes the gRPC target forms a deployment needs, nothing else", () => {
    for (const ok of [
      "custody.internal:7443",
      "dns:///custody-headless.zone-b.svc.cluster.local:7443",
      "ipv4:10.0.0.1:7443,10.0.0.2:7443",
      "ipv6:[fd00::1]:7443,[fd00::2]:7443",
    ]) {
      expect(loadConfig({ ...base, GATEWAY_CUSTODY_ADDRESS: ok }).custody.address).toBe(ok);
    }
    for (const bad of [
      "custody",
      "custody:0",
      "custody:70000",
      "dns://8.8.8.8/custody:7443",
      "ipv4:10.0.0.1:7443,custody:7443",
      "ipv4:",
      "ipv6:fd00::1:7443",
      "unix:/run/custody.sock",
      "xds:///custody",
    ]) {
      expect(error({ ...base, GATEWAY_CUSTODY_ADDRESS: bad })).toMatch(
        /^GATEWAY_CUSTODY_ADDRESS: must be host:port/,
      );
    }
  });
  it("--help lists every variable", () => {
    for (const v of VARIABLES) expect(helpText()).toContain(v.name);
  });
});
