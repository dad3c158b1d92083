/**
 * Which Knot keys custody re-encrypts to. Without this check, anyone able to call custody could submit a
 * Dotva JWE with their own public key and read the card (docs/design.md invariant 3). A recipient is
 * allowed when
 *   - its RFC 7638 thumbprint is pinned in configuration (the recommended mode: nothing to interpret), or
 *   - its JWK carries an `x5c` chain that satisfies one entry of the x5c policy: the chain ends at that
 *     entry's root AND the leaf is the certificate the entry names (Knot's DNS name and/or subject).
 *     "Anything under this root" is never enough: a CA that issues TLS certificates would otherwise let
 *     any of its customers receive cards.
 * The "allow any recipient" mode is for local development only; the service logs it on every call.
 *
 * x5c validation (RFC 5280 path rules, the subset a key-encipherment leaf needs), each failure a stable
 * reason: on every certificate of the chain an allowed signature algorithm (SHA-2 family; SHA-1 and MD5
 * are refused), no critical extension we do not process, and validity at `now`; on the leaf the JWK's
 * own public key, no CA basic constraint, and a key usage that includes keyEncipherment; on each
 * intermediate CA:true, keyCertSign and its pathLen; each certificate signed by the next, and the last
 * one by (or equal to) a configured root, whose own pathLen also counts. Certificates are parsed by
 * @peculiar/x509, signatures checked through WebCrypto.
 *
 * Accepted verdicts are cached by the JWK thumbprint together with a digest of the exact chain that
 * earned them, until the earliest notAfter in that chain. Refusals are not cached: a caller sending
 * Knot's real key with a broken chain must not be able to make the real chain's next check fail.
 */
import "reflect-metadata";
import { createHash, type KeyObject } from "node:crypto";
import {
  BasicConstraintsExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Name,
  SubjectAlternativeNameExtension,
  X509Certificate,
} from "@peculiar/x509";
import type { KnotRecipient } from "../core/crypto/knot-jwk.js";

/** One x5c trust rule: a root, bound to the leaf certificate Knot uses for its encryption key. */
export interface X5cPolicyEntry {
  readonly root: X509Certificate;
  /** Where the entry came from (file name), for the audit line. */
  readonly label: string;
  /** A DNS SAN the leaf must carry (compared case-insensitively, no wildcard expansion). */
  readonly leafDns?: string;
  /** The leaf's subject, in certificate order, as `Name#toString()` renders it. */
  readonly leafSubject?: string;
}

export interface RecipientPolicyConfig {
  readonly pinnedThumbprints: ReadonlySet<string>;
  readonly x5c: readonly X5cPolicyEntry[];
  readonly allowAny: boolean;
}

export const X5C_REFUSALS = [
  "X5C_MALFORMED",
  "WEAK_SIGNATURE_ALGORITHM",
  "UNSUPPORTED_CRITICAL_EXTENSION",
  "CERTIFICATE_NOT_VALID_NOW",
  "LEAF_KEY_MISMATCH",
  "LEAF_IS_CA",
  "LEAF_KEY_USAGE",
  "CHAIN_BROKEN",
  "INTERMEDIATE_NOT_CA",
  "INTERMEDIATE_KEY_USAGE",
  "PATH_LENGTH_EXCEEDED",
  "UNTRUSTED_ROOT",
  "LEAF_NAME_MISMATCH",
] as const;
export type X5cRefusal = (typeof X5C_REFUSALS)[number];
export type RecipientRefusal = "NOT_PINNED" | X5cRefusal;

export type RecipientDecision =
  | { readonly allowed: true; readonly basis: "pinned" | "allow-any" }
  | { readonly allowed: true; readonly basis: "x5c"; readonly rule: string }
  | { readonly allowed: false; readonly reason: RecipientRefusal };

type ChainVerdict =
  | { readonly ok: true; readonly rule: string; readonly expiresAt: number }
  | { readonly ok: false; readonly reason: X5cRefusal };

interface CachedVerdict {
  readonly chainDigest: string;
  readonly rule: string;
  readonly expiresAt: number;
}

/** Extensions whose semantics this validator enforces (or, for EKU and SAN, may ignore safely). */
const PROCESSED_CRITICAL = new Set([
  "2.5.29.19", // basicConstraints
  "2.5.29.15", // keyUsage
  "2.5.29.37", // extKeyUsage
  "2.5.29.17", // subjectAltName
]);
const SIGNATURE_SCHEMES = new Set(["RSASSA-PKCS1-v1_5", "RSA-PSS", "ECDSA"]);
const SIGNATURE_HASHES = new Set(["SHA-256", "SHA-384", "SHA-512"]);

export class RecipientPolicy {
  private readonly cache = new Map<string, CachedVerdict>();
  /** Chain validations actually run and cache hits: observable for tests and metrics. */
  readonly counters = { chainValidations: 0, cacheHits: 0 };

  constructor(
    private readonly config: RecipientPolicyConfig,
    private readonly cacheCapacity = 64,
  ) {}

  async decide(recipient: KnotRecipient, now: Date): Promise<RecipientDecision> {
    if (this.config.pinnedThumbprints.has(recipient.thumbprint)) return { allowed: true, basis: "pinned" };
    let refusal: RecipientRefusal = "NOT_PINNED";
    if (recipient.x5c && this.config.x5c.length > 0) {
      const verdict = await this.chainVerdict(recipient, recipient.x5c, now);
      if (verdict.ok) return { allowed: true, basis: "x5c", rule: verdict.rule };
      refusal = verdict.reason;
    }
    if (this.config.allowAny) return { allowed: true, basis: "allow-any" };
    return { allowed: false, reason: refusal };
  }

  private async chainVerdict(
    recipient: KnotRecipient,
    x5c: readonly string[],
    now: Date,
  ): Promise<ChainVerdict> {
    const chainDigest = createHash("sha256").update(x5c.join(".")).digest("base64url");
    const cached = this.cache.get(recipient.thumbprint);
    if (cached && cached.chainDigest === chainDigest && now.getTime() <= cached.expiresAt) {
      this.counters.cacheHits++;
      return { ok: true, rule: cached.rule, expiresAt: cached.expiresAt };
    }
    this.counters.chainValidations++;
    const verdict = await validateChain(x5c, recipient.publicKey, this.config.x5c, now);
    if (verdict.ok) {
      this.cache.delete(recipient.thumbprint);
      if (this.cache.size >= this.cacheCapacity) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(recipient.thumbprint, { chainDigest, rule: verdict.rule, expiresAt: verdict.expiresAt });
    }
    return verdict;
  }
}

export async function validateChain(
  x5c: readonly string[],
  jwkKey: KeyObject,
  entries: readonly X5cPolicyEntry[],
  now: Date,
): Promise<ChainVerdict> {
  let chain: X509Certificate[];
  try {
    chain = x5c.map((b64) => new X509Certificate(Buffer.from(b64, "base64")));
  } catch {
    return { ok: false, reason: "X5C_MALFORMED" };
  }
  for (const cert of chain) {
    const problem = certificateProblem(cert, now);
    if (problem) return { ok: false, reason: problem };
  }

  const leaf = chain[0]!;
  const jwkSpki = jwkKey.export({ type: "spki", format: "der" });
  if (!Buffer.from(leaf.publicKey.rawData).equals(jwkSpki)) return { ok: false, reason: "LEAF_KEY_MISMATCH" };
  if (leaf.getExtension(BasicConstraintsExtension)?.ca) return { ok: false, reason: "LEAF_IS_CA" };
  if (!hasUsage(leaf, KeyUsageFlags.keyEncipherment)) return { ok: false, reason: "LEAF_KEY_USAGE" };

  // The chain may end with the root itself; the root is then the configured copy, not the sent one.
  const lastRaw = Buffer.from(chain.at(-1)!.rawData);
  const sentRoot = entries.filter((e) => Buffer.from(e.root.rawData).equals(lastRaw));
  const path = sentRoot.length > 0 ? chain.slice(0, -1) : chain;
  const candidates = sentRoot.length > 0 ? sentRoot : entries;
  if (path.length === 0) return { ok: false, reason: "LEAF_IS_CA" };

  for (let i = 0; i + 1 < path.length; i++) {
    if (!(await issuedBy(path[i]!, path[i + 1]!))) return { ok: false, reason: "CHAIN_BROKEN" };
  }
  for (let i = 1; i < path.length; i++) {
    const constraints = path[i]!.getExtension(BasicConstraintsExtension);
    if (!constraints?.ca) return { ok: false, reason: "INTERMEDIATE_NOT_CA" };
    if (!hasUsage(path[i]!, KeyUsageFlags.keyCertSign))
      return { ok: false, reason: "INTERMEDIATE_KEY_USAGE" };
    // pathLen bounds the intermediates below this one (between it and the leaf): i - 1 of them.
    if (constraints.pathLength !== undefined && i - 1 > constraints.pathLength) {
      return { ok: false, reason: "PATH_LENGTH_EXCEEDED" };
    }
  }

  const top = path.at(-1)!;
  let refusal: X5cRefusal = "UNTRUSTED_ROOT";
  for (const entry of candidates) {
    if (!(await issuedBy(top, entry.root))) continue;
    const rootPathLength = entry.root.getExtension(BasicConstraintsExtension)?.pathLength;
    if (rootPathLength !== undefined && path.length - 1 > rootPathLength) {
      refusal = "PATH_LENGTH_EXCEEDED";
      continue;
    }
    if (!withinValidity(entry.root, now)) {
      refusal = "CERTIFICATE_NOT_VALID_NOW";
      continue;
    }
    if (!leafMatches(leaf, entry)) {
      refusal = "LEAF_NAME_MISMATCH";
      continue;
    }
    const expiresAt = Math.min(...[...path, entry.root].map((c) => c.notAfter.getTime()));
    return { ok: true, rule: ruleName(entry), expiresAt };
  }
  return { ok: false, reason: refusal };
}

export function ruleName(entry: X5cPolicyEntry): string {
  const names = [
    ...(entry.leafDns ? [`dns:${entry.leafDns}`] : []),
    ...(entry.leafSubject ? [`subject:${entry.leafSubject}`] : []),
  ];
  return `${entry.label} -> ${names.join(" + ")}`;
}

function certificateProblem(cert: X509Certificate, now: Date): X5cRefusal | undefined {
  if (!strongSignature(cert)) return "WEAK_SIGNATURE_ALGORITHM";
  if (cert.extensions.some((ext) => ext.critical && !PROCESSED_CRITICAL.has(ext.type))) {
    return "UNSUPPORTED_CRITICAL_EXTENSION";
  }
  if (!withinValidity(cert, now)) return "CERTIFICATE_NOT_VALID_NOW";
  return undefined;
}

function strongSignature(cert: X509Certificate): boolean {
  const algorithm = cert.signatureAlgorithm as { name?: string; hash?: { name?: string } };
  return SIGNATURE_SCHEMES.has(algorithm.name ?? "") && SIGNATURE_HASHES.has(algorithm.hash?.name ?? "");
}

function withinValidity(cert: X509Certificate, now: Date): boolean {
  return cert.notBefore <= now && now <= cert.notAfter;
}

function hasUsage(cert: X509Certificate, flag: KeyUsageFlags): boolean {
  const usage = cert.getExtension(KeyUsagesExtension);
  return usage !== null && (usage.usages & flag) !== 0;
}

async function issuedBy(child: X509Certificate, issuer: X509Certificate): Promise<boolean> {
  if (child.issuer !== issuer.subject) return false;
  try {
    return await child.verify({ publicKey: issuer.publicKey, signatureOnly: true });
  } catch {
    return false;
  }
}

function leafMatches(leaf: X509Certificate, entry: X5cPolicyEntry): boolean {
  if (entry.leafSubject !== undefined && leaf.subjectName.toString() !== entry.leafSubject) return false;
  if (entry.leafDns !== undefined) {
    const dns = (leaf.getExtension(SubjectAlternativeNameExtension)?.names.items ?? [])
      .filter((n) => n.type === "dns")
      .map((n) => n.value.toLowerCase());
    if (!dns.includes(entry.leafDns.toLowerCase())) return false;
  }
  return true;
}

/**
 * The canonical form `leafMatches` compares a configured subject in. Throws unless the text is already
 * that form up to the spacing after commas: the parser silently drops what it cannot read (e.g.
 * `CN = x`), and a binding must never be looser, or other, than what the operator wrote.
 */
export function canonicalSubject(text: string): string {
  const canonical = new Name(text).toString();
  if (canonical !== text.trim().replace(/,\s*/g, ", ")) throw new Error("not a canonical distinguished name");
  return canonical;
}
