/** Response schemas shared by every route: the error body of errors.ts for any 4xx and 5xx answer. */
import { z } from "zod";

export const errorSchema = z.object({
  error: z.object({ code: z.string(), message: z.string() }),
});

export const errorResponses = { "4xx": errorSchema, "5xx": errorSchema } as const;

/** What both partner webhooks answer with 200 (partners read only the status). */
export const webhookAckSchema = z.object({
  received: z.literal(true),
  outcome: z.string(),
  reason: z.string().optional(),
  card_uuid: z.string().optional(),
});
