/** Gateway environments for tests: development mode, 127.0.0.1, free ports, short polling. */
import type { GatewayConfig } from "../../src/gateway/config.js";
import { loadConfig } from "../../src/gateway/config.js";

export const TEST_INTERNAL_TOKEN = "test-internal-token-0123456789abcdef";
export const KNOT_CLIENT_ID = "knot-client-id";
export const KNOT_SECRET = "knot-secret-for-tests";
export const DOTVA_SHARED = { header: "x-dotva-secret", value: "dotva-shared-secret-for-tests" };
export const DOTVA_HMAC = { header: "x-dotva-signature", secret: "dotva-hmac-secret-for-tests" };

export function gatewayEnv(o: {
  knotUrl: string;
  custodyAddress: string;
  sqlitePath?: string;
  databaseUrl?: string;
  extra?: Record<string, string>;
  tls?: { ca: string; cert: string; key: string };
}): Record<string, string> {
  return {
    GATEWAY_ENV: "development",
    GATEWAY_HOST: "127.0.0.1",
    GATEWAY_PORT: "0",
    GATEWAY_LOG_LEVEL: "silent",
    GATEWAY_INTERNAL_TOKEN: TEST_INTERNAL_TOKEN,
    ...(o.databaseUrl
      ? { GATEWAY_STORAGE: "postgres", GATEWAY_DATABASE_URL: o.databaseUrl }
      : { GATEWAY_STORAGE: "sqlite", GATEWAY_SQLITE_PATH: o.sqlitePath ?? ":memory:" }),
    DOTVA_SHARED_SECRET: DOTVA_SHARED.value,
    DOTVA_HMAC_SECRET: DOTVA_HMAC.secret,
    KNOT_BASE_URL: o.knotUrl,
    KNOT_CLIENT_ID,
    KNOT_CLIENT_SECRET: KNOT_SECRET,
    CUSTODY_ADDRESS: o.custodyAddress,
    ...(o.tls
      ? { CUSTODY_CA_FILE: o.tls.ca, CUSTODY_CERT_FILE: o.tls.cert, CUSTODY_KEY_FILE: o.tls.key }
      : { CUSTODY_INSECURE: "true" }),
    SEND_CARD_POLL_MS: "100",
    ...o.extra,
  };
}

export function gatewayConfig(o: Parameters<typeof gatewayEnv>[0]): GatewayConfig {
  return loadConfig(gatewayEnv(o));
}

export const PROFILE = {
  name: { first_name: "Ada", last_name: "Lovelace" },
  address: {
    street: "100 Main Street",
    street2: "#100",
    city: "NEW YORK",
    region: "NY",
    postal_code: "10001",
    country: "US",
  },
  phone_number: "+14155550123",
};

export async function putProfile(internalUrl: string, externalUserId: string, profile: unknown = PROFILE) {
  const res = await fetch(`${internalUrl}/v1/cardholders/${encodeURIComponent(externalUserId)}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${TEST_INTERNAL_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(profile),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export async function internalGet(internalUrl: string, path: string) {
  const res = await fetch(`${internalUrl}${path}`, {
    headers: { authorization: `Bearer ${TEST_INTERNAL_TOKEN}` },
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Polls `check` until it returns a value or `ms` pass. */
export async function waitFor<T>(check: () => Promise<T | undefined>, ms = 10_000, every = 25): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, every));
  }
}
