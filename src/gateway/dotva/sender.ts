/**
 * Dotva sender verification. Dotva documents no signature, so the operator picks any combination of a
 * shared-secret header, an HMAC-SHA256 of the raw body, and a source-IP allowlist; every configured
 * check must pass. Secrets are compared in constant time.
 */
import { createHmac } from "node:crypto";
import type { GatewayConfig } from "../config.js";
import { SenderUnauthenticatedError, SourceNotAllowedError } from "../errors.js";
import { bytesEqual, secretEquals } from "../http/constant-time.js";
import { sourceAllowlist } from "../http/source-allowlist.js";

export interface DotvaRequestFacts {
  readonly ip: string;
  readonly header: (name: string) => string | undefined;
  readonly rawBody: Buffer;
}

/** Accepts hex or base64 (standard or url-safe), with or without a `sha256=` prefix. */
function decodeSignature(text: string): Buffer | undefined {
  const value = text.trim().replace(/^sha256=/i, "");
  if (/^[0-9a-fA-F]{64}$/.test(value)) return Buffer.from(value, "hex");
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(value))
    return Buffer.from(value.replace(/-/g, "+").replace(/_/g, "/"), "base64");
  return undefined;
}

export function dotvaSenderCheck(cfg: GatewayConfig["dotva"]): (facts: DotvaRequestFacts) => void {
  const allowed = cfg.ipAllowlist ? sourceAllowlist(cfg.ipAllowlist) : undefined;
  return (facts) => {
    if (allowed && !allowed(facts.ip)) {
      throw new SourceNotAllowedError("this source address may not deliver Dotva webhooks");
    }
    if (cfg.sharedSecret) {
      const presented = facts.header(cfg.sharedSecret.header);
      if (presented === undefined || !secretEquals(presented, cfg.sharedSecret.value)) {
        throw new SenderUnauthenticatedError(`header ${cfg.sharedSecret.header} is missing or wrong`);
      }
    }
    if (cfg.hmac) {
      const presented = facts.header(cfg.hmac.header);
      const signature = presented === undefined ? undefined : decodeSignature(presented);
      const expected = createHmac("sha256", cfg.hmac.secret).update(facts.rawBody).digest();
      if (signature === undefined || !bytesEqual(signature, expected)) {
        throw new SenderUnauthenticatedError(
          `header ${cfg.hmac.header} must hold the HMAC-SHA256 of the raw body (hex or base64)`,
        );
      }
    }
  };
}
