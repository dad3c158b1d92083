/**
 * Gateway environments for tests: development mode, a free port, short polling. Everything else is the
 * configuration module's own default (src/gateway/config.ts DEFAULTS), never repeated here.
 */
import { createHash, createHmac, createPublicKey, randomUUID } from "node:crypto";
import { CompactEncrypt } from "jose";
import { expect, vi } from "vitest";
import type { RunningGateway } from "../../gateway/app.js";
import type { GatewayConfig } from "../../gateway/config.js";
import { loadConfig } from "../../gateway/config.js";
import { KnotSimulator } from "../simulators/knot-simulator.js";
import { expiryFromNow } from "./expiry.js";

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
    GATEWAY_CUSTODY_ADDRESS: o.custodyAddress,
    ...(o.tls
      ? {
          GATEWAY_CUSTODY_CA_FILE: o.tls.ca,
          GATEWAY_CUSTODY_CERT_FILE: o.tls.cert,
          GATEWAY_CUSTODY_KEY_FILE: o.tls.key,
        }
      : { GATEWAY_CUSTODY_INSECURE: "true" }),
    SEND_CARD_POLL_MS: "100",
    // A test's gateway shares its event loop with the test's own blocking work (key generation,
    // synchronous crypto) and a CI machine's CPU with the other test files, which reads as event-loop
    // delay and would shed the deliveries the test sends. overload.test.ts sets its own limit.
    GATEWAY_MAX_EVENT_LOOP_DELAY_MS: "10000",
    ...o.extra,
  };
}

export function gatewayConfig(o: Parameters<typeof gatewayEnv>[0]): GatewayConfig {
  return loadConfig(gatewayEnv(o));
}

/** The Knot simulator holding the credentials gatewayEnv gives the gateway, started on a free port. */
export async function startTestKnot(): Promise<KnotSimulator> {
  const knot = new KnotSimulator({ clientId: KNOT_CLIENT_ID, secret: KNOT_SECRET });
  await knot.start();
  return knot;
}

/** Secrets of a test card Dotva delivers: Stripe's test PAN, an expiry 14 months ahead. */
const TEST_EXPIRY = expiryFromNow(14);
export const TEST_CARD = {
  pan: "4242424242424242",
  cvv: "123",
  expiry_month: TEST_EXPIRY.month,
  expiry_year: TEST_EXPIRY.year,
};

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

/**
 * Binds Dotva's (workspace_id, card_id) to a cardholder, as the back office does when it starts a Knot
 * session: a send-card job sends only a card bound to the task's external_user_id.
 */
export async function bindCard(
  internalUrl: string,
  externalUserId: string,
  cardId: string,
  workspaceId = "12",
) {
  const res = await fetch(
    `${internalUrl}/v1/cardholders/${encodeURIComponent(externalUserId)}/cards/${encodeURIComponent(cardId)}`,
    {
      method: "PUT",
      headers: { authorization: `Bearer ${TEST_INTERNAL_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ workspace_id: workspaceId }),
    },
  );
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export async function internalGet(internalUrl: string, path: string) {
  const res = await fetch(`${internalUrl}${path}`, {
    headers: { authorization: `Bearer ${TEST_INTERNAL_TOKEN}` },
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** The internal API through the gateway's Fastify instance (no socket), with the test bearer token. */
export async function injectInternal(
  gw: RunningGateway,
  method: "GET" | "PUT",
  url: string,
  payload?: unknown,
) {
  const res = await gw.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${TEST_INTERNAL_TOKEN}` },
    ...(payload !== undefined ? { payload: payload as object } : {}),
  });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> };
}

/** A Dotva delivery's bytes to /webhooks/dotva through the gateway's Fastify instance. */
export async function injectDotva(gw: RunningGateway, text: string, headers = dotvaHeaders(text)) {
  const res = await gw.app.inject({ method: "POST", url: "/webhooks/dotva", headers, payload: text });
  return {
    status: res.statusCode,
    body: res.json() as { outcome?: string; error?: { code: string; message: string } },
  };
}

/** A fresh cardholder with PROFILE, and Dotva's card `cardId` (workspace 12) bound to them. */
export async function bindToNewCardholder(gw: RunningGateway, cardId: string): Promise<string> {
  const user = `user-${randomUUID()}`;
  expect((await injectInternal(gw, "PUT", `/v1/cardholders/${user}`, PROFILE)).status).toBe(201);
  expect(
    (await injectInternal(gw, "PUT", `/v1/cardholders/${user}/cards/${cardId}`, { workspace_id: "12" }))
      .status,
  ).toBe(201);
  return user;
}

/**
 * What a Knot AUTHENTICATED needs before the gateway calls custody: a fresh card stored through Dotva's
 * webhook (its secrets encrypted to `custodyPublicKeyPem`), bound to a fresh cardholder.
 */
export async function readyCard(
  gw: RunningGateway,
  custodyPublicKeyPem: string,
  card: Parameters<typeof dotvaDelivery>[1],
): Promise<{ cardId: string; cardUuid: string; user: string }> {
  const d = await dotvaDelivery(custodyPublicKeyPem, card);
  expect(await injectDotva(gw, d.text)).toMatchObject({ status: 200, body: { outcome: "created" } });
  return { cardId: d.cardId, cardUuid: d.cardUuid, user: await bindToNewCardholder(gw, d.cardId) };
}

/** vitest's bounded poll: `check` until it returns a value, failing the test after `ms`. */
export function waitFor<T>(check: () => Promise<T | undefined>, ms = 10_000, every = 25): Promise<T> {
  return vi.waitFor(
    async () => {
      const v = await check();
      if (v === undefined) throw new Error(`condition not met within ${ms} ms`);
      return v;
    },
    { timeout: ms, interval: every },
  );
}

/**
 * A card.issued.secrets delivery in Dotva's documented envelope (testdata/fixtures/partners/
 * dotva-card-issued-secrets.json), with real secrets: `secrets_jwe` encrypted with jose to
 * `custodyPublicKeyPem`. Numeric ids as in the document; a fresh card_uuid and card_id unless given.
 */
let dotvaSeq = 0;
export async function dotvaDelivery(
  custodyPublicKeyPem: string,
  card: { pan: string; cvv: string; expiry_month: string | number; expiry_year: string | number },
  ids: { cardUuid?: string; cardId?: number | bigint; workspaceId?: number } = {},
): Promise<{ event: Record<string, unknown>; text: string; cardId: string; cardUuid: string }> {
  const key = createPublicKey(custodyPublicKeyPem);
  const secrets_jwe = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(card)))
    .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM" })
    .encrypt(key);
  const cardUuid = ids.cardUuid ?? randomUUID();
  const cardId = ids.cardId ?? BigInt(Date.now()) * 1000n + BigInt(++dotvaSeq);
  const fingerprint = `sha256:${createHash("sha256")
    .update(key.export({ type: "spki", format: "der" }))
    .digest("hex")}`;
  const event = {
    event: "card.issued.secrets",
    workspace_id: ids.workspaceId ?? 12,
    data: {
      card_id: "__CARD_ID__",
      card_uuid: cardUuid,
      card_last4: card.pan.slice(-4),
      card_bin: card.pan.slice(0, 6),
      secrets_jwe,
      key_fingerprint: fingerprint,
    },
  };
  // Written by hand so a card_id beyond 2^53 goes out as a JSON number with every digit.
  const text = JSON.stringify(event).replace('"__CARD_ID__"', cardId.toString());
  return {
    event: { ...event, data: { ...event.data, card_id: cardId } },
    text,
    cardId: cardId.toString(),
    cardUuid,
  };
}

/** Headers of a Dotva delivery with the optional sender checks the test gateways enable. */
export function dotvaHeaders(text: string): Record<string, string> {
  return {
    "content-type": "application/json",
    [DOTVA_SHARED.header]: DOTVA_SHARED.value,
    [DOTVA_HMAC.header]: createHmac("sha256", DOTVA_HMAC.secret).update(text).digest("hex"),
  };
}
