/**
 * A stand-in for Knot's API and webhooks, for the demo, tests and benchmarks (127.0.0.1 only), built
 * from Knot's "Send Card (JWE)" document and its webhook documents, not from our gateway: it shares no
 * code with it.
 *
 * - `GET /jwe/key` serves the simulator's public JWK; `POST /card` takes `{task_id (number), jwe}`,
 *   decrypts the JWE (RSA-OAEP-256 + A256GCM) and checks the documented user + card structure, with the
 *   expiration as MM/YYYY or MM/YY. Both demand Basic auth and `Knot-Version: 2.0`.
 * - Answers are the document's: `{"message":"Success"}`, and for a 400 either Invalid Input
 *   (`INVALID_INPUT` / `INVALID_JWE`, "invalid jwe") or Missing Field (`INVALID_REQUEST` /
 *   `INVALID_FIELD`, "the <name> field is required", or for an expiration in neither documented format
 *   a message of ours in the same body), `display_message: null`. The document shows no
 *   other body, so a 401 and the injected 3xx/4xx/5xx faults carry none.
 * - It enforces nothing the document does not state (no length limits, no unknown-member refusal); the
 *   decrypted payload is kept so a test can compare it with what it expected, exactly.
 * - Webhooks are signed with Knot's documented scheme (./knot-webhooks.ts).
 * - Faults: an HTTP status for the next N cards (with Retry-After when asked), a delay (a hang, against
 *   a short client timeout), INVALID_JWE once, a redirect (any 3xx, any Location or none), key failures,
 *   key rotation, and a true hang of `/card` or `/jwe/key` (the connection is accepted and never
 *   answered until the hang is lifted or the simulator closes).
 * - Counters for fault tests: every POST /card per task_id (accepted or not), and how many POST /card
 *   were in flight at once (the most seen).
 * - Optionally, as Knot does after it got a card, a CARD_UPDATING webhook for the task, retried until
 *   the receiver answers 200 (Knot retries a webhook "up to two more times, minutes apart"; scaled down
 *   here).
 *
 * Received cards are kept in memory for the caller to check; nothing here logs them.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import Fastify, { type FastifyInstance, type FastifyReply } from "fastify";
import { compactDecrypt } from "jose";
import {
  cardIdEvent,
  KNOT_ENCRYPTION_TYPE,
  type KnotWebhookBody,
  knotWebhookSignature,
} from "./knot-webhooks.js";
import { JsonNumberText, parseKeepingNumbers, partnerJson } from "./partner-json.js";

/** The plaintext Knot's document describes (the card as Knot reads it; `street2` may be absent). */
export interface KnotPayload {
  readonly user: {
    readonly name: { readonly first_name: string; readonly last_name: string };
    readonly address: {
      readonly street: string;
      readonly street2?: string;
      readonly city: string;
      readonly region: string;
      readonly postal_code: string;
      readonly country: string;
    };
    readonly phone_number: string;
  };
  readonly card: { readonly number: string; readonly expiration: string; readonly cvv: string };
}

export interface ReceivedCard {
  /** `task_id` exactly as written in the request body (a JSON number's text). */
  readonly taskId: string;
  /** The decrypted payload as sent, unknown members included. */
  readonly payload: KnotPayload;
  readonly receivedAt: number;
  readonly kid: string | undefined;
}

export interface KnotFaults {
  /** Answer the next N POST /card with `failStatus` (no body) before looking at them. */
  failNext: number;
  failStatus: number;
  /** Retry-After header value sent with those answers (e.g. "1" for a 429). */
  retryAfter: string | undefined;
  /** Delay every POST /card by this many ms. */
  delayMs: number;
  /** Answer the next POST /card 400 INVALID_JWE whatever it holds. */
  invalidJweOnce: boolean;
  /** Answer the next POST /card with `redirectStatus` to `redirectLocation`. */
  redirectOnce: boolean;
  redirectStatus: number;
  /** undefined: `/card` on this origin; null: no Location header at all. */
  redirectLocation: string | null | undefined;
  /** Answer the next N GET /jwe/key with `keyFailStatus` (no body). */
  keyFailNext: number;
  keyFailStatus: number;
  /** Accept POST /card and never answer (until `releaseHangs()` or close). */
  hangCard: boolean;
  /** Accept GET /jwe/key and never answer (until `releaseHangs()` or close). */
  hangKey: boolean;
}

/** Where and how the simulator sends CARD_UPDATING after it accepted a card. */
export interface CardUpdatingWebhooks {
  readonly url: string;
  /** Knot's pause between taking the card and starting the update. */
  readonly delayMs: number;
  /** Pause before a retry when the receiver did not answer 200. */
  readonly retryMs: number;
  readonly maxTries: number;
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

/** Knot's documented 400 bodies. */
export const INVALID_JWE_BODY = {
  error_type: "INVALID_INPUT",
  error_code: "INVALID_JWE",
  error_message: "invalid jwe",
  display_message: null,
} as const;

/** The Missing Field body; the document's only message is "the name field is required". */
export function invalidFieldBody(message: string) {
  return {
    error_type: "INVALID_REQUEST",
    error_code: "INVALID_FIELD",
    error_message: message,
    display_message: null,
  } as const;
}

const missingFieldBody = (field: string) => invalidFieldBody(`the ${field} field is required`);

const EXPIRATION = /^(0[1-9]|1[0-2])\/(\d{2}|\d{4})$/;

type JsonObject = Record<string, unknown>;
const asObject = (v: unknown): JsonObject | undefined =>
  typeof v === "object" && v !== null && !Array.isArray(v) ? (v as JsonObject) : undefined;

/** The first member of the documented structure that is missing (or of the wrong type), by its name. */
function missingMember(payload: unknown): string | undefined {
  const root = asObject(payload);
  const user = asObject(root?.user);
  const name = asObject(user?.name);
  const address = asObject(user?.address);
  const card = asObject(root?.card);
  const objects: [string, unknown][] = [
    ["user", user],
    ["name", name],
    ["address", address],
    ["card", card],
  ];
  for (const [member, value] of objects) if (value === undefined) return member;
  const strings: [string, JsonObject | undefined][] = [
    ["first_name", name],
    ["last_name", name],
    ["street", address],
    ["city", address],
    ["region", address],
    ["postal_code", address],
    ["country", address],
    ["phone_number", user],
    ["number", card],
    ["expiration", card],
    ["cvv", card],
  ];
  for (const [member, parent] of strings) if (typeof parent?.[member] !== "string") return member;
  if (address?.street2 !== undefined && typeof address.street2 !== "string") return "street2";
  return undefined;
}

export class KnotSimulator {
  readonly received: ReceivedCard[] = [];
  readonly rejected: { taskId: string; code: string }[] = [];
  readonly faults: KnotFaults = {
    failNext: 0,
    failStatus: 503,
    retryAfter: undefined,
    delayMs: 0,
    invalidJweOnce: false,
    redirectOnce: false,
    redirectStatus: 307,
    redirectLocation: undefined,
    keyFailNext: 0,
    keyFailStatus: 503,
    hangCard: false,
    hangKey: false,
  };
  jwkRequests = 0;
  cardRequests = 0;
  /** POST /card requests per task_id as written in the body, whatever the answer. */
  readonly cardPostsByTask = new Map<string, number>();
  /** POST /card being handled right now, and the most there ever were at once. */
  cardsInFlight = 0;
  maxCardsInFlight = 0;
  /** When set, each accepted card is followed by a CARD_UPDATING webhook for its task. */
  cardUpdating: CardUpdatingWebhooks | undefined;
  /** CARD_UPDATING webhooks the receiver acknowledged with 200. */
  cardUpdatingDelivered = 0;
  private readonly hung: (() => void)[] = [];
  private readonly authenticated = new Map<string, KnotWebhookBody>();
  private keys: KeyPair;
  private rotations = 0;
  private app?: FastifyInstance;
  url = "";

  constructor(private readonly opts: KnotSimulatorOptions) {
    this.keys = keyPair(opts.privateKeyPem, opts.kid ?? "knot-sim-1");
  }

  get publicJwk(): Record<string, unknown> {
    return this.keys.jwk;
  }

  /** Knot rotates its key: the old one stops decrypting, so a cached copy now yields INVALID_JWE. */
  rotateKey(privateKeyPem?: string, kid = `knot-sim-${++this.rotations + 1}`): void {
    this.keys = keyPair(privateKeyPem, kid);
  }

  async start(): Promise<string> {
    const app = Fastify({ logger: false });
    const auth = `Basic ${Buffer.from(`${this.opts.clientId}:${this.opts.secret}`).toString("base64")}`;
    app.removeAllContentTypeParsers();
    app.addContentTypeParser("application/json", { parseAs: "string" }, (_req, text, done) => {
      try {
        done(null, parseKeepingNumbers(String(text), new Set(["task_id"])));
      } catch {
        done(null, undefined);
      }
    });
    app.addHook("onRequest", async (req, reply) => {
      if (req.headers.authorization !== auth) return reply.code(401).send();
      if (req.headers["knot-version"] !== "2.0")
        return reply.code(400).send(missingFieldBody("Knot-Version"));
    });
    app.get("/jwe/key", async (_req, reply) => {
      this.jwkRequests++;
      if (this.faults.hangKey) {
        await this.hang();
        return reply.code(503).send();
      }
      if (this.faults.keyFailNext > 0) {
        this.faults.keyFailNext--;
        return reply.code(this.faults.keyFailStatus).send();
      }
      return this.keys.jwk;
    });
    app.post("/card", async (req, reply) => {
      this.cardsInFlight++;
      this.maxCardsInFlight = Math.max(this.maxCardsInFlight, this.cardsInFlight);
      try {
        return await this.card(req.body, reply);
      } finally {
        this.cardsInFlight--;
      }
    });
    this.url = await app.listen({ host: "127.0.0.1", port: 0 });
    this.app = app;
    return this.url;
  }

  /** Lifts the hang: every request held so far is answered 503, as if Knot came back failing. */
  releaseHangs(): void {
    for (const release of this.hung.splice(0)) release();
  }

  private hang(): Promise<void> {
    return new Promise<void>((resolve) => this.hung.push(resolve));
  }

  private async card(body: unknown, reply: FastifyReply) {
    this.cardRequests++;
    const f = this.faults;
    const posted = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
    if (posted.task_id instanceof JsonNumberText) {
      const id = posted.task_id.text;
      this.cardPostsByTask.set(id, (this.cardPostsByTask.get(id) ?? 0) + 1);
    }
    if (f.hangCard) {
      await this.hang();
      return reply.code(503).send();
    }
    if (f.delayMs > 0) await new Promise((r) => setTimeout(r, f.delayMs));
    if (f.redirectOnce) {
      f.redirectOnce = false;
      const location = f.redirectLocation === undefined ? "/card" : f.redirectLocation;
      if (location !== null) reply.header("location", location);
      return reply.code(f.redirectStatus).send();
    }
    if (f.failNext > 0) {
      f.failNext--;
      if (f.retryAfter !== undefined) reply.header("retry-after", f.retryAfter);
      return reply.code(f.failStatus).send();
    }
    const fields = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
    const taskId = fields.task_id instanceof JsonNumberText ? fields.task_id.text : undefined;
    const reject = (code: string, answer: object) => {
      this.rejected.push({ taskId: taskId ?? "", code });
      return reply.code(400).send(answer);
    };
    // The document types task_id as a number: a quoted id is a missing one.
    if (taskId === undefined) return reject("INVALID_FIELD", missingFieldBody("task_id"));
    if (typeof fields.jwe !== "string") return reject("INVALID_FIELD", missingFieldBody("jwe"));
    if (f.invalidJweOnce) {
      f.invalidJweOnce = false;
      return reject("INVALID_JWE", INVALID_JWE_BODY);
    }
    let payload: unknown;
    let kid: string | undefined;
    try {
      const out = await compactDecrypt(fields.jwe, this.keys.privateKey, {
        keyManagementAlgorithms: ["RSA-OAEP-256"],
        contentEncryptionAlgorithms: ["A256GCM"],
      });
      kid = out.protectedHeader.kid;
      try {
        payload = JSON.parse(Buffer.from(out.plaintext).toString("utf8"));
      } finally {
        out.plaintext.fill(0);
      }
    } catch {
      return reject("INVALID_JWE", INVALID_JWE_BODY);
    }
    const missing = missingMember(payload);
    if (missing !== undefined) return reject("INVALID_FIELD", missingFieldBody(missing));
    const card = payload as KnotPayload;
    if (!EXPIRATION.test(card.card.expiration)) {
      return reject("INVALID_FIELD", invalidFieldBody("the expiration field must be MM/YYYY or MM/YY"));
    }
    this.received.push({ taskId, payload: card, receivedAt: Date.now(), kid });
    if (this.cardUpdating) void this.notifyCardUpdating(taskId, this.cardUpdating);
    return { message: "Success" };
  }

  /** CARD_UPDATING for a task whose AUTHENTICATED this simulator sent, retried until acknowledged. */
  private async notifyCardUpdating(taskId: string, how: CardUpdatingWebhooks): Promise<void> {
    const auth = this.authenticated.get(taskId);
    if (!auth) return;
    const data = auth.data as { card_id: string };
    const body = cardIdEvent("CARD_UPDATING", {
      taskId: BigInt(taskId),
      externalUserId: String(auth.external_user_id),
      sessionId: String(auth.session_id),
      merchant: auth.merchant as { id: number; name: string },
      cardId: data.card_id,
    });
    await new Promise((r) => setTimeout(r, how.delayMs));
    for (let i = 0; i < how.maxTries && this.app; i++) {
      const status = await this.sendWebhook(how.url, body).then(
        (r) => r.status,
        () => 0,
      );
      if (status === 200) {
        this.cardUpdatingDelivered++;
        return;
      }
      await new Promise((r) => setTimeout(r, how.retryMs));
    }
  }

  /**
   * Sends a webhook the way Knot does: the JSON body (bigint ids written exactly), `Content-Type`,
   * `Encryption-Type` and `Knot-Signature` over the documented string.
   */
  async sendWebhook(
    gatewayUrl: string,
    body: KnotWebhookBody,
    opts: { signature?: string; secret?: string } = {},
  ): Promise<{ status: number; body: unknown }> {
    const text = partnerJson(body);
    if (body.event === "AUTHENTICATED" && body.task_id !== undefined) {
      this.authenticated.set(String(body.task_id), body);
    }
    const contentType = "application/json";
    const signature =
      opts.signature ??
      knotWebhookSignature(opts.secret ?? this.opts.secret, {
        contentLength: Buffer.byteLength(text),
        contentType,
        encryptionType: KNOT_ENCRYPTION_TYPE,
        event: String(body.event),
        ...("session_id" in body ? { sessionId: String(body.session_id) } : {}),
      });
    const res = await fetch(`${gatewayUrl}/webhooks/knot`, {
      method: "POST",
      headers: {
        "content-type": contentType,
        "encryption-type": KNOT_ENCRYPTION_TYPE,
        "knot-signature": signature,
      },
      body: text,
      signal: AbortSignal.timeout(10_000),
    });
    return { status: res.status, body: await res.json().catch(() => undefined) };
  }

  async close(): Promise<void> {
    const app = this.app;
    this.app = undefined;
    this.releaseHangs();
    await app?.close();
  }
}

export {
  accountsRetrievedEvent,
  authenticatedEvent,
  cardFailedEvent,
  cardIdEvent,
  merchantStatusUpdateEvent,
  newTransactionsAvailableEvent,
  updatedTransactionsAvailableEvent,
} from "./knot-webhooks.js";
