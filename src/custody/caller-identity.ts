/**
 * Who is calling, taken from the client certificate the TLS layer already verified against the
 * configured CA, and the per-RPC allowlists that decide what each identity may call.
 *
 * An identity is the certificate's subject CN and its SAN URIs (e.g. a SPIFFE ID). Allowlist entries are
 * `cn:<common name>` or `uri:<uri>`; an entry matches on exact equality only.
 */
import type { PeerCertificate } from "node:tls";

export interface CallerIdentity {
  readonly cn?: string;
  readonly uris: readonly string[];
  /** One stable string for logs and per-caller limits: the first SAN URI, else `cn:<CN>`. */
  readonly display: string;
}

export type IdentityMatcher = { readonly kind: "cn" | "uri"; readonly value: string };

export function parseIdentityMatcher(entry: string): IdentityMatcher | undefined {
  const m = /^(cn|uri):(.+)$/.exec(entry.trim());
  if (!m || m[2]!.trim().length === 0) return undefined;
  return { kind: m[1] as "cn" | "uri", value: m[2]!.trim() };
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
    const raw = m[2]!;
    uris.push(raw.startsWith('"') ? (JSON.parse(raw) as string) : raw);
  }
  return uris;
}

export function identityFromCertificate(cert: PeerCertificate | undefined): CallerIdentity | undefined {
  if (!cert || Object.keys(cert).length === 0) return undefined;
  const cnField = cert.subject?.CN as string | string[] | undefined;
  const cn = Array.isArray(cnField) ? cnField[0] : cnField;
  const uris = sanUris(cert.subjectaltname);
  const display = uris[0] ?? (cn !== undefined ? `cn:${cn}` : "(no identity)");
  return cn === undefined ? { uris, display } : { cn, uris, display };
}

export function isAllowed(identity: CallerIdentity, allowlist: readonly IdentityMatcher[]): boolean {
  return allowlist.some((m) => (m.kind === "cn" ? identity.cn === m.value : identity.uris.includes(m.value)));
}
