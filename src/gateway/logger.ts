/**
 * pino options for the gateway. Fastify's request serializer logs method, URL and addresses only, never
 * headers or bodies; the redaction paths below are the second line of defence for anything a handler
 * might attach (ciphertext, tokens, signatures), so a mistake shows as "[redacted]" rather than a leak.
 */
import type { LoggerOptions } from "pino";

export const REDACT_PATHS = [
  "secrets_jwe",
  "secretsJwe",
  "jwe",
  "*.secrets_jwe",
  "*.secretsJwe",
  "*.jwe",
  "*.*.secrets_jwe",
  "body",
  "*.body",
  "profile",
  "*.profile",
  "req.headers.authorization",
  "req.headers.cookie",
  'req.headers["knot-signature"]',
  'req.headers["x-dotva-secret"]',
  'req.headers["x-dotva-signature"]',
];

export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    base: { service: "card-gateway" },
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
  };
}
