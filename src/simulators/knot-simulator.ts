/**
 * A stand-in for Knot's API and webhooks, for the demo, tests and benchmarks (127.0.0.1 only).
 *
 * GET /jwe/key serves the simulator's public JWK; POST /card decrypts the JWE with its private key and
 * checks the payload has exactly Knot's documented shape, as the real /card does before answering 200.
 * Both demand Basic auth and `Knot-Version: 2.0`. Webhooks are signed the way Knot signs them. Faults:
 * 5xx answers, slowness, INVALID_JWE once, a same-origin redirect, key rotation.
 *
 * Received cards are kept in memory for the caller to check; nothing here logs them.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import Fastify, { type FastifyInstance } from "fastify";
import { compactDecrypt } from "jose";
import { z } from "zod";
import { knotSignature } from "../gateway/knot/signature.js";

export const knotPayloadSchema = z
  .object({
    user: z
      .object({
        name: z
          .object({ first_name: z.string().min(1).max(255), last_name: z.string().min(1).max(255) })
          .strict(),
        address: z
          .object({
            street: z.string().min(1).max(46),
            street2: z.string().max(46).optional(),
            city: z.string().min(1).max(32),
            region: z.string().min(1).max(64),
            postal_code: z.string().min(1).max(10),
            country: z.string().regex(/^[A-Z]{2}$/),
          })
          .strict(),
        phone_number: z.string().regex(/^\+[1-9]\d{6,14}$/),
      })
      .strict(),
    card: z
      .object({
        number: z.string().regex(/^\d{12,19}$/),
        expiration: z.string().regex(/^(0[1-9]|1[0-2])\/\d{4}$/),
        cvv: z.string().regex(/^\d{3,4}$/),
      })
      .strict(),
  })
  .strict();
export type KnotPayload = z.infer<typeof knotPayloadSchema>;

export interface ReceivedCard {
  readonly taskId: string;
  readonly payload: KnotPayload;
  readonly receivedAt: number;
  readonly kid: string | undefined;
}

export interface KnotFaults {
  /** Answer the next N POST /card with this status (default 503). */
  failNext: number;
  failStatus: number;
  /** Delay every POST /card by this many ms. */
  delayMs: number;
  /** Answer the next POST /card 400 INVALID_JWE whatever it holds. */
  invalidJweOnce: boolean;
  /** Answer the next POST /card with a 307 to the same path on the same origin. */
  redirectOnce: boolean;
}

export interface KnotSimulatorOptions {
  readonly clientId: string;
  readonly secret: string;
  /** PEM private key to serve (e.g. the dev Knot key custody has pinned); generated when absent. */
  readonly privateKeyPem?: string;
  readonly kid?: string;
}

interface KeyPair {
  readonly privateKey: KeyObject;
  readonly jwk: Record<string, unknown>;
}

function keyPair(pem: string | undefined, kid: string): KeyPair {
  const privateKey = pem
    ? createPrivateKey(pem)
    : generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
  const jwk = {
    ...createPublicKey(privateKey).export({ format: "jwk" }),
    kid,
    use: "enc",
    alg: "RSA-OAEP-256",
    key_ops: ["encrypt"],
  };
  return { privateKey, jwk };
}

export class KnotSimulator {
  readonly received: ReceivedCard[] = [];
  readonly rejected: { taskId: string; code: string }[] = [];
  readonly faults: KnotFaults = {
    failNext: 0,
    failStatus: 503,
    delayMs: 0,
    invalidJweOnce: false,
    redirectOnce: false,
  };
  jwkRequests = 0;
  cardRequests = 0;
  private keys: KeyPair;
  private retired: KeyPair[] = [];
  private app?: FastifyInstance;
  url = "";

  constructor(private readonly opts: KnotSimulatorOptions) {
    this.keys = keyPair(opts.privateKeyPem, opts.kid ?? "knot-sim-1");
  }

  get publicJwk(): Record<string, unknown> {
    return this.keys.jwk;
  }

  /** Knot rotates its key: the old one stops decrypting, so a cached copy now yields INVALID_JWE. */
  rotateKey(privateKeyPem?: string, kid = `knot-sim-${this.retired.length + 2}`): void {
    this.retired.push(this.keys);
    this.keys = keyPair(privateKeyPem, kid);
  }

  async start(): Promise<string> {
    const app = Fastify({ logger: false });
    const auth = `Basic ${Buffer.from(`${this.opts.clientId}:${this.opts.secret}`).toString("base64")}`;
    const error = (code: string, message: string) => ({
      error_type: "INVALID_INPUT",
      error_code: code,
      error_message: message,
    });
    app.addHook("onRequest", async (req, reply) => {
      if (req.headers.authorization !== auth)
        return reply.code(401).send(error("INVALID_CLIENT", "bad credentials"));
      if (req.headers["knot-version"] !== "2.0")
        return reply.code(400).send(error("INVALID_VERSION", "Knot-Version"));
    });
    app.get("/jwe/key", async () => {
      this.jwkRequests++;
      return this.keys.jwk;
    });
    app.post("/card", async (req, reply) => {
      this.cardRequests++;
      const f = this.faults;
      if (f.delayMs > 0) await new Promise((r) => setTimeout(r, f.delayMs));
      if (f.redirectOnce) {
        f.redirectOnce = false;
        return reply.code(307).header("location", "/card").send();
      }
      if (f.failNext > 0) {
        f.failNext--;
        return reply.code(f.failStatus).send(error("INTERNAL_ERROR", "simulated outage"));
      }
      const body = req.body as { task_id?: unknown; jwe?: unknown };
      const taskId = String(body?.task_id ?? "");
      if (!taskId || typeof body?.jwe !== "string") {
        return reply.code(400).send(error("INVALID_INPUT", "task_id and jwe are required"));
      }
      if (f.invalidJweOnce) {
        f.invalidJweOnce = false;
        this.rejected.push({ taskId, code: "INVALID_JWE" });
        return reply.code(400).send(error("INVALID_JWE", "the jwe could not be decrypted"));
      }
      let plaintext: Uint8Array;
      let kid: string | undefined;
      try {
        const out = await compactDecrypt(body.jwe, this.keys.privateKey, {
          keyManagementAlgorithms: ["RSA-OAEP-256"],
          contentEncryptionAlgorithms: ["A256GCM"],
        });
        plaintext = out.plaintext;
        kid = out.protectedHeader.kid;
      } catch {
        this.rejected.push({ taskId, code: "INVALID_JWE" });
        return reply.code(400).send(error("INVALID_JWE", "the jwe could not be decrypted"));
      }
      const parsed = knotPayloadSchema.safeParse(JSON.parse(Buffer.from(plaintext).toString("utf8")));
      plaintext.fill(0);
      if (!parsed.success) {
        this.rejected.push({ taskId, code: "INVALID_CARD_DATA" });
        return reply
          .code(400)
          .send(error("INVALID_CARD_DATA", "payload does not match the documented shape"));
      }
      this.received.push({ taskId, payload: parsed.data, receivedAt: Date.now(), kid });
      return { message: "Success" };
    });
    this.url = await app.listen({ host: "127.0.0.1", port: 0 });
    this.app = app;
    return this.url;
  }

  /** Sends a webhook the way Knot does: JSON body, Knot-Signature over the documented header string. */
  async sendWebhook(
    gatewayUrl: string,
    body: Record<string, unknown>,
    opts: { signature?: string; secret?: string } = {},
  ): Promise<{ status: number; body: unknown }> {
    const text = JSON.stringify(body);
    const contentType = "application/json";
    const encryptionType = "HMAC-SHA256";
    const signature =
      opts.signature ??
      knotSignature(opts.secret ?? this.opts.secret, {
        contentLength: String(Buffer.byteLength(text)),
        contentType,
        encryptionType,
        event: String(body.event),
        ...(typeof body.session_id === "string" ? { sessionId: body.session_id } : {}),
      });
    const res = await fetch(`${gatewayUrl}/webhooks/knot`, {
      method: "POST",
      headers: {
        "content-type": contentType,
        "encryption-type": encryptionType,
        "knot-signature": signature,
      },
      body: text,
      signal: AbortSignal.timeout(10_000),
    });
    return { status: res.status, body: await res.json().catch(() => undefined) };
  }

  async close(): Promise<void> {
    await this.app?.close();
  }
}

/** Knot's AUTHENTICATED webhook body as documented. */
export function authenticatedEvent(o: {
  taskId: number;
  cardId: string;
  externalUserId: string;
  sendCard?: boolean;
  sessionId?: string;
  merchant?: { id: number; name: string };
}): Record<string, unknown> {
  return {
    event: "AUTHENTICATED",
    session_id: o.sessionId ?? `sess-${o.taskId}`,
    task_id: o.taskId,
    external_user_id: o.externalUserId,
    merchant: o.merchant ?? { id: 10, name: "Uber" },
    data: { card_id: o.cardId, send_card: o.sendCard ?? true, entrypoint: "onboarding" },
    timestamp: Date.now(),
  };
}
