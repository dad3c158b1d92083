import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import {
  currentIdentity,
  identityFromCertificate,
  isSpiffeId,
  matchingEntry,
  parseIdentityMatcher,
  sanUris,
} from "./caller-identity.js";
import { CallerLimits } from "./caller-limits.js";
import { CallerIdentityInvalidError, toGrpcFailure } from "./errors.js";

const VALID_TO = "Jan  1 00:00:00 2100 GMT";
const cert = (subject: object, subjectaltname?: string) =>
  ({ subject, ...(subjectaltname ? { subjectaltname } : {}), valid_to: VALID_TO }) as never;
const entries = (...list: string[]) => list.map((e) => parseIdentityMatcher(e)!);

describe("caller identity", () => {
  it("reads SAN URIs in Node's plain and quoted renderings, ignoring other SAN types", () => {
    expect(
      sanUris('DNS:gw.internal, URI:spiffe://td/gateway, URI:"spiffe://td/a,b", IP Address:10.0.0.1'),
    ).toEqual(["spiffe://td/gateway", "spiffe://td/a,b"]);
    expect(sanUris(undefined)).toEqual([]);
  });

  it("refuses, with a typed reason, a certificate whose quoted URI SAN cannot be read (found by fuzzing)", () => {
    expect(() => sanUris('URI:"\\q"')).toThrow(CallerIdentityInvalidError);
    const peer = identityFromCertificate(cert({ CN: "card-gateway" }, 'URI:"\\q"'), "production");
    expect(peer).toMatchObject({ ok: false, error: { code: "CALLER_IDENTITY_INVALID" } });
    expect(peer.ok || peer.error.message).not.toContain("\\q");
  });

  it("matches allowlist entries exactly and records which entry matched", () => {
    const peer = identityFromCertificate(
      cert({ CN: "card-gateway" }, "URI:spiffe://td/gateway"),
      "production",
    );
    if (!peer.ok) throw new Error("expected a valid identity");
    expect(peer.identity.display).toBe("spiffe://td/gateway");
    expect(matchingEntry(peer.identity, entries("uri:spiffe://td/gateway"))).toEqual({
      kind: "uri",
      value: "spiffe://td/gateway",
    });
    expect(
      matchingEntry(
        peer.identity,
        entries("uri:spiffe://td/gateway/x", "uri:spiffe://td", "cn:card-gateway2"),
      ),
    ).toBeUndefined();
    expect(parseIdentityMatcher("gateway")).toBeUndefined();
    expect(identityFromCertificate({} as never, "production")).toMatchObject({
      ok: false,
      error: { code: "CALLER_NOT_ALLOWED" },
    });
  });

  it("never lets a cn: entry match a certificate whose URI SAN names someone else (CN=card-gateway, URI .../intruder)", () => {
    const peer = identityFromCertificate(
      cert({ CN: "card-gateway" }, "URI:spiffe://card-custody.dev/intruder"),
      "development",
    );
    if (!peer.ok) throw new Error("expected a valid identity");
    expect(matchingEntry(peer.identity, entries("cn:card-gateway"))).toBeUndefined();
    // In development a certificate without a URI SAN is named by its CN.
    const cnOnly = identityFromCertificate(cert({ CN: "card-gateway" }), "development");
    if (!cnOnly.ok) throw new Error("expected a valid identity");
    expect(matchingEntry(cnOnly.identity, entries("cn:card-gateway"))).toEqual({
      kind: "cn",
      value: "card-gateway",
    });
  });

  it.each([
    ["no URI SAN", undefined, "production"],
    ["a URI SAN that is not a SPIFFE ID", "URI:https://card-custody.dev/gateway", "production"],
    [
      "two URI SANs, the allowed one second",
      "URI:spiffe://td/intruder, URI:spiffe://td/gateway",
      "production",
    ],
    ["two URI SANs (development too)", "URI:spiffe://td/intruder, URI:spiffe://td/gateway", "development"],
  ] as const)("refuses a certificate with %s: CALLER_IDENTITY_INVALID", (_what, san, mode) => {
    expect(identityFromCertificate(cert({ CN: "card-gateway" }, san), mode)).toMatchObject({
      ok: false,
      error: { code: "CALLER_IDENTITY_INVALID" },
    });
  });

  it.each([
    ["spiffe://card-custody.dev/gateway", true],
    ["spiffe://td/a/b.c_d-e", true],
    ["spiffe://td", false],
    ["spiffe://td/", false],
    ["spiffe://td//a", false],
    ["spiffe://td/a/../b", false],
    ["spiffe://TD/a", false],
    ["spiffe://td:443/a", false],
    ["spiffe://td/a?q=1", false],
    ["spiffe://user@td/a", false],
    ["https://td/a", false],
  ])("isSpiffeId(%s) is %s", (uri, expected) => {
    expect(isSpiffeId(uri)).toBe(expected);
  });

  it("refuses, on a later call, a certificate that has expired since the handshake", () => {
    const peer = identityFromCertificate(
      {
        subject: { CN: "x" },
        subjectaltname: "URI:spiffe://td/gateway",
        valid_to: "Jan  1 00:00:00 2020 GMT",
      } as never,
      "production",
    );
    expect(peer.ok).toBe(true);
    expect(currentIdentity(peer, Date.parse("2019-12-31T23:59:59Z"))).toBe(peer);
    const expired = currentIdentity(peer, Date.parse("2020-01-01T00:00:01Z"));
    expect(expired).toMatchObject({
      ok: false,
      error: { code: "CALLER_CERTIFICATE_EXPIRED" },
      display: "spiffe://td/gateway",
    });
    expect(expired.ok || toGrpcFailure(expired.error).grpcStatus).toBe(status.UNAUTHENTICATED);
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
