import { describe, expect, it } from "vitest";
import {
  identityFromCertificate,
  isAllowed,
  parseIdentityMatcher,
  sanUris,
} from "../../src/custody/caller-identity.js";
import { CallerLimits } from "../../src/custody/caller-limits.js";

describe("caller identity", () => {
  it("reads SAN URIs in Node's plain and quoted renderings, ignoring other SAN types", () => {
    expect(
      sanUris('DNS:gw.internal, URI:spiffe://td/gateway, URI:"spiffe://td/a,b", IP Address:10.0.0.1'),
    ).toEqual(["spiffe://td/gateway", "spiffe://td/a,b"]);
    expect(sanUris(undefined)).toEqual([]);
  });

  it("matches allowlist entries exactly, by CN or by URI", () => {
    const id = identityFromCertificate({
      subject: { CN: "card-gateway" },
      subjectaltname: "URI:spiffe://td/gateway",
    } as never)!;
    expect(id.display).toBe("spiffe://td/gateway");
    const allow = (entries: string[]) =>
      isAllowed(
        id,
        entries.map((e) => parseIdentityMatcher(e)!),
      );
    expect(allow(["cn:card-gateway"])).toBe(true);
    expect(allow(["uri:spiffe://td/gateway"])).toBe(true);
    expect(allow(["cn:card-gateway2", "uri:spiffe://td/gateway/x", "uri:spiffe://td"])).toBe(false);
    expect(parseIdentityMatcher("gateway")).toBeUndefined();
    expect(identityFromCertificate({} as never)).toBeUndefined();
  });
});

describe("per-caller limits", () => {
  it("refills at the configured rate, caps the burst, and counts calls in flight per caller", () => {
    let t = 0;
    const limits = new CallerLimits({ ratePerSecond: 10, burst: 2, maxInFlight: 3 }, () => t);
    const a1 = limits.tryAcquire("a");
    const a2 = limits.tryAcquire("a");
    expect([a1, a2].every(Boolean)).toBe(true);
    expect(limits.tryAcquire("a")).toBeUndefined(); // burst spent
    expect(limits.tryAcquire("b")).toBeDefined(); // another caller has its own bucket
    t = 100; // +1 token
    const a3 = limits.tryAcquire("a");
    expect(a3).toBeDefined();
    t = 10_000;
    expect(limits.tryAcquire("a")).toBeUndefined(); // 3 in flight
    a1!();
    a1!(); // releasing twice counts once
    expect(limits.tryAcquire("a")).toBeDefined();
    expect(limits.tryAcquire("a")).toBeUndefined();
  });
});
