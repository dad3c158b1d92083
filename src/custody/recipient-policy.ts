/**
 * Which Knot keys custody re-encrypts to. Without this check, anyone able to call custody could submit a
 * Dotva JWE with their own public key and read the card (docs/design.md invariant 3). A recipient is
 * allowed when
 *   - its RFC 7638 thumbprint is pinned in configuration, or
 *   - its JWK carries an `x5c` chain that verifies to a configured root, every certificate is within its
 *     validity period, intermediates are CAs, and the leaf's public key is the JWK's key.
 * The "allow any recipient" mode is for local development only; the service logs it on every call.
 */
import { X509Certificate } from "node:crypto";
import type { KnotRecipient } from "../crypto/knot-jwk.js";

export interface RecipientPolicyConfig {
  readonly pinnedThumbprints: ReadonlySet<string>;
  readonly roots: readonly X509Certificate[];
  readonly allowAny: boolean;
}

export type RecipientDecision =
  | { readonly allowed: true; readonly basis: "pinned" | "x5c" | "allow-any" }
  | { readonly allowed: false };

export class RecipientPolicy {
  constructor(private readonly config: RecipientPolicyConfig) {}

  decide(recipient: KnotRecipient, now: Date): RecipientDecision {
    if (this.config.pinnedThumbprints.has(recipient.thumbprint)) return { allowed: true, basis: "pinned" };
    if (recipient.x5c && this.config.roots.length > 0 && this.chainIsTrusted(recipient, now)) {
      return { allowed: true, basis: "x5c" };
    }
    if (this.config.allowAny) return { allowed: true, basis: "allow-any" };
    return { allowed: false };
  }

  private chainIsTrusted(recipient: KnotRecipient, now: Date): boolean {
    let chain: X509Certificate[];
    try {
      chain = recipient.x5c!.map((b64) => new X509Certificate(Buffer.from(b64, "base64")));
    } catch {
      return false;
    }
    const leaf = chain[0]!;
    const leafSpki = leaf.publicKey.export({ type: "spki", format: "der" });
    const jwkSpki = recipient.publicKey.export({ type: "spki", format: "der" });
    if (!leafSpki.equals(jwkSpki)) return false;
    for (const [i, cert] of chain.entries()) {
      if (!withinValidity(cert, now)) return false;
      if (i > 0 && !cert.ca) return false;
      const issuer = chain[i + 1];
      if (issuer && !(cert.checkIssued(issuer) && cert.verify(issuer.publicKey))) return false;
    }
    const top = chain[chain.length - 1]!;
    return this.config.roots.some(
      (root) =>
        withinValidity(root, now) &&
        (top.raw.equals(root.raw) || (top.checkIssued(root) && top.verify(root.publicKey))),
    );
  }
}

function withinValidity(cert: X509Certificate, now: Date): boolean {
  return new Date(cert.validFrom) <= now && now <= new Date(cert.validTo);
}
