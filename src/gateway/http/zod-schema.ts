/**
 * Fastify route schemas written in zod: the validator and serializer compilers and the type provider
 * that lets handlers see the parsed types. About thirty lines, kept here rather than taken from
 * fastify-type-provider-zod because that package declares @fastify/swagger and openapi-types as
 * required peers, which would then ship in the runtime image for nothing the gateway uses.
 *
 * Requests: a body that breaks its schema is 400 INVALID_BODY naming the first bad field (never its
 * value); a path or query parameter is 400 INVALID_PARAMETER. Responses: every route declares one
 * schema per status (a "4xx"/"5xx" range included); the serializer parses the payload with it, so a
 * member the schema does not list is dropped rather than sent, and a payload that breaks the contract
 * is a 500 instead of a malformed answer.
 */
import type { FastifyInstance, FastifySchemaCompiler, FastifyTypeProvider } from "fastify";
import type { z } from "zod";
import { InvalidBodyError, InvalidParameterError } from "../errors.js";
import { INVALID_JSON } from "./raw-json.js";
import { describeIssue } from "./validate.js";

export interface ZodTypeProvider extends FastifyTypeProvider {
  readonly validator: this["schema"] extends z.ZodType ? z.output<this["schema"]> : unknown;
  readonly serializer: this["schema"] extends z.ZodType ? z.input<this["schema"]> : unknown;
}

const validatorCompiler: FastifySchemaCompiler<z.ZodType> =
  ({ schema, httpPart }) =>
  (data) => {
    const result = schema.safeParse(data);
    if (result.success) return { value: result.data };
    if (httpPart === "body") {
      const message = data === INVALID_JSON ? "body is not valid JSON" : describeIssue(result.error);
      return { error: new InvalidBodyError(message) };
    }
    const name = result.error.issues[0]?.path.map(String).join(".") || String(httpPart);
    return { error: new InvalidParameterError(`${name} is malformed`) };
  };

export function useZodSchemas(app: FastifyInstance): void {
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(
    ({ schema }) =>
      (data) =>
        JSON.stringify((schema as z.ZodType).parse(data)),
  );
}
