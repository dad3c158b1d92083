/**
 * JSON body parsing that keeps the raw bytes and every integer's digits.
 *
 * Raw bytes: Dotva's HMAC and Knot's Content-Length are computed over the body exactly as sent, so the
 * parsed object alone is not enough. Digits: partners send ids as JSON numbers (Dotva's `card_id` and
 * `workspace_id`, Knot's `task_id`), and a number beyond 2^53 would silently round in a double. An
 * integer literal that a double cannot hold exactly becomes a BigInt built from its source text
 * (JSON.parse source-text access, in V8 since Node 21), so ids reach the schemas with all their digits.
 *
 * A body that is not JSON is not refused here: the Dotva route acknowledges and quarantines it (Dotva
 * would otherwise retry it forever), the internal API answers 400 through its body schemas (zod-schema.ts).
 */
import type { FastifyInstance } from "fastify";

declare module "fastify" {
  interface FastifyRequest {
    rawBody?: Buffer;
  }
}

/** The parsed body of a request whose bytes are not JSON. */
export const INVALID_JSON: unique symbol = Symbol("invalid JSON body");

interface ReviverContext {
  readonly source?: string;
}

function keepIntegerDigits(_key: string, value: unknown, context?: ReviverContext): unknown {
  if (
    typeof value === "number" &&
    !Number.isSafeInteger(value) &&
    context?.source !== undefined &&
    /^-?\d+$/.test(context.source)
  ) {
    return BigInt(context.source);
  }
  return value;
}

/** JSON.parse with exact integers; throws SyntaxError on invalid JSON. */
export function parseExactJson(text: string): unknown {
  return JSON.parse(text, keepIntegerDigits as (key: string, value: unknown) => unknown);
}

export function registerRawJson(app: FastifyInstance, bodyLimit: number): void {
  // JSON only: a webhook in any other media type is refused with 415 before any handler runs.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", { parseAs: "buffer", bodyLimit }, (req, body, done) => {
    const raw = body as Buffer;
    req.rawBody = raw;
    try {
      done(null, parseExactJson(raw.toString("utf8")));
    } catch {
      done(null, INVALID_JSON);
    }
  });
}
