/**
 * Who is calling, taken from the client certificate the TLS layer already verified against the
 * configured CA (and CRLs), and the per-RPC allowlists that decide what each identity may call.
 *
 * A caller is the one URI SAN of its certificate (a SPIFFE ID). In production that is the only form:
 * a certificate with no URI SAN, several, or one that is not a SPIFFE ID is refused, and allowlists hold
 * `uri:` entries only. In development a certificate without any URI SAN may be named by its subject CN
 * (`cn:` entries); a `cn:` entry never matches a certificate that has a URI SAN, whose URI is what it
 * says it is. A certificate with several URI SANs is refused in every mode: which one would it be?
 * Entries match on exact equality only.
 */
import type { PeerCertificate } from "node:tls";
import {
  CallerCertificateExpiredError,
  CallerIdentityInvalidError,
  CallerNotAllowedError,
  type CustodyError,
} from "./errors.js";

export type CustodyMode = "production" | "development";

export interface CallerIdentity {
  /** The certificate's one URI SAN, when it has one. */
  readonly uri?: string;
  readonly cn?: string;
  /** One stable string for logs and per-caller limits: the URI, else `cn:<CN>`. */
  readonly display: string;
  /** End of the certificate's validity (ms since the epoch): re-checked on every call. */
  readonly notAfter: number;
}

export type PeerIdentity =
  | { readonly ok: true; readonly identity: CallerIdentity }
  | { readonly ok: false; readonly error: CustodyError; readonly display: string };

export type IdentityMatcher = { readonly kind: "cn" | "uri"; readonly value: string };

export function parseIdentityMatcher(entry: string): IdentityMatcher | undefined {
  const m = /^(cn|uri):(.+)$/.exec(entry.trim());
  if (!m || m[2]!.trim().length === 0) return undefined;
  return { kind: m[1] as "cn" | "uri", value: m[2]!.trim() };
}

export function matcherText(matcher: IdentityMatcher): string {
  return `${matcher.kind}:${matcher.value}`;
}

/**
 * SPIFFE ID (SPIFFE-ID specification §2): `spiffe://`, a lowercase trust domain of [a-z0-9._-], and a
 * path of one or more segments of [A-Za-z0-9._-] that are not `.` or `..`; no port, user info, query,
 * fragment or trailing slash; at most 2048 bytes.
 */
export function isSpiffeId(uri: string): boolean {
  if (uri.length > 2048) return false;
  const m = /^spiffe:\/\/([a-z0-9._-]{1,255})((?:\/[A-Za-z0-9._-]+)+)$/.exec(uri);
  return m !== null && m[2]!.split("/").every((segment) => segment !== "." && segment !== "..");
}

/**
 * Node renders SANs as `URI:a, DNS:b`, quoting (JSON style) any value that contains a comma or quote
 * since the CVE-2021-44532 fix; both spellings are read here.
 */
export function sanUris(subjectaltname: string | undefined): string[] {
  if (!subjectaltname) return [];
  const uris: string[] = [];
  const entry = /(?:^|, )([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)/g;
  for (const m of subjectaltname.matchAll(entry)) {
    if (m[1] !== "URI") continue;
    uris.push(unquote(m[2]!));
  }
  return uris;
}

/** Node quotes a SAN value JSON-style when it holds a comma or quote; anything else unreadable fails closed. */
function unquote(raw: string): string {
  if (!raw.startsWith('"')) return raw;
  try {
    return JSON.parse(raw) as string;
  } catch {
    throw new CallerIdentityInvalidError("a URI subject alternative name of the certificate cannot be read");
  }
}

const INVALID = "(invalid identity)";

export function identityFromCertificate(cert: PeerCertificate | undefined, mode: CustodyMode): PeerIdentity {
  if (!cert || Object.keys(cert).length === 0) {
    return { ok: false, error: new CallerNotAllowedError("no client certificate"), display: "(none)" };
  }
  const cnField = cert.subject?.CN as string | string[] | undefined;
  const cn = Array.isArray(cnField) ? cnField[0] : cnField;
  const notAfter = Date.parse(cert.valid_to);
  const invalid = (why: string): PeerIdentity => ({
    ok: false,
    error: new CallerIdentityInvalidError(why),
    display: INVALID,
  });
  let uris: string[];
  try {
    uris = sanUris(cert.subjectaltname);
  } catch (err) {
    if (err instanceof CallerIdentityInvalidError) return invalid(err.message);
    throw err;
  }
  if (uris.length > 1)
    return invalid("the client certificate must carry exactly one URI SAN (its SPIFFE ID)");
  const uri = uris[0];
  if (mode === "production" && (uri === undefined || !isSpiffeId(uri))) {
    return invalid("the client certificate must carry exactly one URI SAN, a SPIFFE ID (spiffe://...)");
  }
  if (uri === undefined && cn === undefined) return invalid("the client certificate names no caller");
  if (!Number.isFinite(notAfter)) return invalid("the client certificate's validity cannot be read");
  const display = uri ?? `cn:${cn}`;
  return {
    ok: true,
    identity: {
      ...(uri !== undefined ? { uri } : {}),
      ...(cn !== undefined ? { cn } : {}),
      display,
      notAfter,
    },
  };
}

/**
 * The identity as of `now`: a connection outlives the handshake that checked the certificate's dates,
 * so a certificate that expired since is refused here, on the next call.
 */
export function currentIdentity(peer: PeerIdentity, now: number): PeerIdentity {
  if (!peer.ok || now <= peer.identity.notAfter) return peer;
  return {
    ok: false,
    error: new CallerCertificateExpiredError(
      "the client certificate expired during this connection; reconnect with a renewed certificate",
    ),
    display: peer.identity.display,
  };
}

/** The allowlist entry that admits `identity`, if any (recorded in the audit line). */
export function matchingEntry(
  identity: CallerIdentity,
  allowlist: readonly IdentityMatcher[],
): IdentityMatcher | undefined {
  return allowlist.find((m) =>
    m.kind === "uri" ? identity.uri === m.value : identity.uri === undefined && identity.cn === m.value,
  );
}
