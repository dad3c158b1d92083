/**
 * Two-sided authorization of ReencryptForKnot, as AWS KMS checks ReEncryptFrom and ReEncryptTo
 * separately: for each caller identity, which Dotva keys it may decrypt with (source side) and which
 * Knot keys it may encrypt to (recipient side). A grant that holds for one caller says nothing about
 * another: a second internal client allowed to call custody for its own key cannot use the gateway's key,
 * nor send cards to the gateway's recipient.
 *
 * Two sources of grants:
 *   - CUSTODY_CALLER_POLICY_FILE (JSON, schema below), re-read on SIGHUP and when the file changes; a
 *     file that fails validation leaves the previous grants in force.
 *   - Without it, the global configuration: every CUSTODY_ALLOW_REENCRYPT caller may use every loaded
 *     key and the CUSTODY_RECIPIENT_* policy (the behaviour before per-caller policy existed).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { normalizeFingerprint } from "../core/crypto/fingerprint.js";
import {
  type CallerIdentity,
  type CustodyMode,
  type IdentityMatcher,
  isSpiffeId,
  matcherText,
  matchingEntry,
  parseIdentityMatcher,
} from "./caller-identity.js";
import { ConfigError, resolveX5cEntries, X5C_ENTRY } from "./config.js";
import type { KeyInfo } from "./keystore/key-store.js";
import { RecipientPolicy, type RecipientPolicyConfig } from "./recipient-policy.js";

/** What one caller may do. `sourceKeys` undefined = every loaded key (global configuration). */
export interface CallerGrant {
  readonly matcher: IdentityMatcher;
  readonly sourceKeys?: { readonly fingerprints: ReadonlySet<string>; readonly labels: ReadonlySet<string> };
  readonly recipients: RecipientPolicy;
}

export interface Grants {
  /** Where the grants came from, for the audit line: "global" or "file:<first 12 hex of SHA-256>". */
  readonly version: string;
  grantFor(identity: CallerIdentity): CallerGrant | undefined;
  /** Dev plaintext has no caller; only the global configuration applies there. */
  readonly anonymous?: CallerGrant;
}

export type SourceKeyDecision =
  | { readonly allowed: true; readonly basis: "any" | "fingerprint" | "label" }
  | { readonly allowed: false };

/**
 * The source-side verdict for a key the caller named. `key` is the store's entry, if any: a key missing
 * from the store and a key the caller may not use are the same refusal unless the caller's grant names
 * that fingerprint, so a caller cannot probe which keys exist.
 */
export function decideSourceKey(
  grant: CallerGrant,
  requested: string,
  key: KeyInfo | undefined,
): SourceKeyDecision {
  const allowed = grant.sourceKeys;
  if (allowed === undefined) return { allowed: true, basis: "any" };
  if (allowed.fingerprints.has(requested)) return { allowed: true, basis: "fingerprint" };
  if (key === undefined) return { allowed: false };
  if (allowed.fingerprints.has(key.fingerprint) || key.aliases.some((a) => allowed.fingerprints.has(a))) {
    return { allowed: true, basis: "fingerprint" };
  }
  if (allowed.labels.has(key.label)) return { allowed: true, basis: "label" };
  return { allowed: false };
}

export function globalGrants(allowed: readonly IdentityMatcher[], recipients: RecipientPolicyConfig): Grants {
  const policy = new RecipientPolicy(recipients);
  const grants = allowed.map((matcher) => ({ matcher, recipients: policy }));
  return {
    version: "global",
    grantFor: (identity) => {
      const matcher = matchingEntry(identity, allowed);
      return grants.find((g) => g.matcher === matcher);
    },
    anonymous: { matcher: { kind: "uri", value: "(dev plaintext)" }, recipients: policy },
  };
}

const THUMBPRINT = /^[A-Za-z0-9_-]{43}$/;

const POLICY_FILE = z
  .object({
    callers: z
      .array(
        z
          .object({
            caller: z.string().min(1),
            source_keys: z
              .object({
                fingerprints: z.array(z.string().min(1)).default([]),
                labels: z.array(z.string().min(1)).default([]),
              })
              .strict()
              .refine((s) => s.fingerprints.length + s.labels.length > 0, {
                message:
                  "names no key: list fingerprints and/or labels (a caller with no key needs no entry)",
              }),
            recipients: z
              .object({
                pins: z.array(z.string().regex(THUMBPRINT, "is not an RFC 7638 thumbprint")).default([]),
                x5c: z.array(X5C_ENTRY).default([]),
              })
              .strict()
              .refine((r) => r.pins.length + r.x5c.length > 0, {
                message: "allows no recipient: list pins and/or x5c entries",
              }),
          })
          .strict(),
      )
      .min(1),
  })
  .strict();

/**
 * Reads and validates the policy file. Throws ConfigError naming the variable, the JSON path and what
 * is wrong; never the values (fingerprints and names are not secret, but one rule for every message).
 */
export function loadCallerPolicy(file: string, mode: CustodyMode): Grants {
  const name = "CUSTODY_CALLER_POLICY_FILE";
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`${name}: cannot read ${file} (${(err as NodeJS.ErrnoException).code})`);
  }
  let parsed: z.infer<typeof POLICY_FILE>;
  try {
    parsed = POLICY_FILE.parse(JSON.parse(text));
  } catch (err) {
    const detail =
      err instanceof z.ZodError
        ? `${err.issues[0]!.path.join(".")} ${err.issues[0]!.message}`
        : "not valid JSON";
    throw new ConfigError(`${name}: ${detail}`);
  }
  const base = dirname(resolve(file));
  const seen = new Set<string>();
  const grants: CallerGrant[] = parsed.callers.map((entry, i) => {
    const at = `${name}: callers.${i}`;
    const matcher = parseIdentityMatcher(entry.caller);
    if (!matcher) throw new ConfigError(`${at}.caller is not uri:<SPIFFE ID> (or cn:<name> in development)`);
    if (mode === "production" && (matcher.kind !== "uri" || !isSpiffeId(matcher.value))) {
      throw new ConfigError(`${at}.caller must be uri:spiffe://<trust domain>/<path> in production`);
    }
    const text = matcherText(matcher);
    if (seen.has(text)) throw new ConfigError(`${at}.caller appears twice; one entry per caller`);
    seen.add(text);
    const fingerprints = entry.source_keys.fingerprints.map((fp, j) => {
      try {
        return normalizeFingerprint(fp);
      } catch {
        throw new ConfigError(`${at}.source_keys.fingerprints.${j} is not a SHA-256 fingerprint`);
      }
    });
    return {
      matcher,
      sourceKeys: { fingerprints: new Set(fingerprints), labels: new Set(entry.source_keys.labels) },
      recipients: new RecipientPolicy({
        pinnedThumbprints: new Set(entry.recipients.pins),
        x5c: resolveX5cEntries(entry.recipients.x5c, base, `${at}.recipients.x5c`),
        allowAny: false,
      }),
    };
  });
  const matchers = grants.map((g) => g.matcher);
  return {
    version: `file:${createHash("sha256").update(text).digest("hex").slice(0, 12)}`,
    grantFor: (identity) => {
      const matcher = matchingEntry(identity, matchers);
      return grants.find((g) => g.matcher === matcher);
    },
  };
}
