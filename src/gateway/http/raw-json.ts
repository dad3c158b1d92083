/**
 * JSON body parsing that keeps the raw bytes: Dotva's HMAC and Knot's Content-Length are computed over
 * the body exactly as sent, so the parsed object alone is not enough.
 */
import type { FastifyInstance } from "fastify";
import { InvalidBodyError } from "../errors.js";

declare module "fastify" {
  interface FastifyRequest {
    rawBody?: Buffer;
  }
}

export function registerRawJson(app: FastifyInstance, bodyLimit: number): void {
  // JSON only: a webhook in any other media type is refused with 415 before any handler runs.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("application/json", { parseAs: "buffer", bodyLimit }, (req, body, done) => {
    const raw = body as Buffer;
    req.rawBody = raw;
    try {
      done(null, JSON.parse(raw.toString("utf8")));
    } catch {
      done(new InvalidBodyError("body is not valid JSON"), undefined);
    }
  });
}
