/**
 * Proxy trust by address (GATEWAY_TRUSTED_PROXIES): X-Forwarded-For is believed only from a listed
 * proxy, so a sender outside the Dotva and Knot source allow-lists cannot get in by claiming an
 * allowed address in the header; behind a listed proxy, the allow-lists see the client the proxy names.
 * Driven with inject(), whose remoteAddress is the TCP peer Fastify sees.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatewayEnv } from "../../tools/testing/gateway-env.js";
import { type BuiltGateway, buildGateway } from "../app.js";
import { ConfigError, loadConfig, VARIABLES } from "../config.js";

const PARTNER = "198.51.100.7";
const PROXY = "10.20.30.40";
const ATTACKER = "203.0.113.66";

const env = (extra: Record<string, string> = {}) =>
  gatewayEnv({
    knotUrl: "http://127.0.0.1:9",
    custodyAddress: "127.0.0.1:9",
    extra: {
      DOTVA_IP_ALLOWLIST: `${PARTNER}/32`,
      KNOT_IP_ALLOWLIST: PARTNER,
      ...extra,
    },
  });

describe("GATEWAY_TRUSTED_PROXIES configuration", () => {
  it("takes addresses and CIDRs; unset or empty trusts no proxy", () => {
    expect(
      loadConfig(env({ GATEWAY_TRUSTED_PROXIES: "10.0.0.0/8, 192.168.1.5/32,fd00::/8" })).trustedProxies,
    ).toEqual(["10.0.0.0/8", "192.168.1.5/32", "fd00::/8"]);
    expect(loadConfig(env()).trustedProxies).toEqual([]);
    expect(loadConfig(env({ GATEWAY_TRUSTED_PROXIES: "" })).trustedProxies).toEqual([]);
  });

  it.each(["10.0.0.0/33", "proxy.internal", "10.0.0.0/8;", "*", "1"])(
    "refuses %j at start-up, naming the variable",
    (value) => {
      expect(() => loadConfig(env({ GATEWAY_TRUSTED_PROXIES: value }))).toThrow(ConfigError);
      expect(() => loadConfig(env({ GATEWAY_TRUSTED_PROXIES: value }))).toThrow(/^GATEWAY_TRUSTED_PROXIES: /);
    },
  );

  it("refuses the old hop count GATEWAY_TRUST_PROXY, naming its replacement", () => {
    expect(() => loadConfig(env({ GATEWAY_TRUST_PROXY: "1" }))).toThrow(
      /^GATEWAY_TRUST_PROXY: no longer read: .*GATEWAY_TRUSTED_PROXIES/,
    );
    expect(VARIABLES.map((v) => v.name)).not.toContain("GATEWAY_TRUST_PROXY");
  });
});

describe.each([
  ["no proxy trusted", undefined],
  ["a proxy CIDR trusted", "10.0.0.0/8"],
])("source allow-lists with %s", (_name, trusted) => {
  let gw: BuiltGateway;

  beforeAll(async () => {
    gw = await buildGateway(loadConfig(env(trusted ? { GATEWAY_TRUSTED_PROXIES: trusted } : {})));
    gw.app.get("/test/client-ip", async (req) => ({ ip: req.ip }));
  });
  afterAll(async () => {
    await gw?.close();
  });

  const post = (path: string, remoteAddress: string, forwardedFor?: string) =>
    gw.app.inject({
      method: "POST",
      url: path,
      remoteAddress,
      headers: {
        "content-type": "application/json",
        ...(forwardedFor !== undefined ? { "x-forwarded-for": forwardedFor } : {}),
      },
      payload: JSON.stringify({ event: "AUTHENTICATED", session_id: "s" }),
    });
  const code = (res: Awaited<ReturnType<typeof post>>) =>
    (res.json() as { error?: { code?: string } }).error?.code;

  it.each(["/webhooks/knot", "/webhooks/dotva"])(
    "%s: a peer that is not a trusted proxy cannot claim an allowed address in X-Forwarded-For",
    async (path) => {
      const spoofed = await post(path, ATTACKER, PARTNER);
      expect([spoofed.statusCode, code(spoofed)]).toEqual([403, "SOURCE_NOT_ALLOWED"]);
      // Nor by putting the proxy's address in front of it.
      const chained = await post(path, ATTACKER, `${PARTNER}, ${PROXY}`);
      expect([chained.statusCode, code(chained)]).toEqual([403, "SOURCE_NOT_ALLOWED"]);
    },
  );

  it.each(["/webhooks/knot", "/webhooks/dotva"])(
    "%s: behind a trusted proxy, the client it names is the one the allow-list checks",
    async (path) => {
      const viaProxy = await post(path, PROXY, PARTNER);
      const viaProxyAttacker = await post(path, PROXY, ATTACKER);
      expect([viaProxyAttacker.statusCode, code(viaProxyAttacker)]).toEqual([403, "SOURCE_NOT_ALLOWED"]);
      if (trusted) {
        // Past the source check: refused by the next one (unsigned request), not by its address.
        expect(code(viaProxy)).toBe(
          path === "/webhooks/knot" ? "KNOT_SIGNATURE_INVALID" : "SENDER_UNAUTHENTICATED",
        );
        // A partner header spoofed behind the proxy: the proxy appended the real client last.
        const spoofedBehindProxy = await post(path, PROXY, `${PARTNER}, ${ATTACKER}`);
        expect(code(spoofedBehindProxy)).toBe("SOURCE_NOT_ALLOWED");
      } else {
        // No proxy trusted: the proxy itself is the client, and it is not on the allow-list.
        expect([viaProxy.statusCode, code(viaProxy)]).toEqual([403, "SOURCE_NOT_ALLOWED"]);
      }
    },
  );

  it("the client IP is the peer unless the peer is a trusted proxy", async () => {
    const ip = async (remoteAddress: string, forwardedFor: string) =>
      (
        await gw.app.inject({
          method: "GET",
          url: "/test/client-ip",
          remoteAddress,
          headers: { "x-forwarded-for": forwardedFor },
        })
      ).json().ip;
    expect(await ip(ATTACKER, PARTNER)).toBe(ATTACKER);
    expect(await ip(`::ffff:${PROXY}`, PARTNER)).toBe(trusted ? PARTNER : `::ffff:${PROXY}`);
    expect(await ip(PROXY, `${ATTACKER}, 10.1.1.1`)).toBe(trusted ? ATTACKER : PROXY);
  });
});
