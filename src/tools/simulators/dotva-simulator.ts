/**
 * A stand-in for Dotva, the card issuer, for the demo, tests and benchmarks (127.0.0.1 only), built from
 * Dotva's "Webhooks" document, not from our gateway: it shares no code with it.
 *
 * - `issue()` makes a `card.issued.secrets` event exactly as documented: `event`, a numeric top-level
 *   `workspace_id`, and `data` with a numeric `card_id`, `card_uuid`, `card_last4`, `card_bin`,
 *   `secrets_jwe` (compact JWE, RSA-OAEP-256 + A256GCM, to custody's public key) and `key_fingerprint`
 *   (`sha256:` + hex of SHA-256 over the key's DER SubjectPublicKeyInfo).
 * - The names inside `secrets_jwe` are not documented ("PAN / CVV / expiry"); they default to what the
 *   document's jose example reads (`pan`, `cvv`, `expiry_month`, `expiry_year`) and can be changed.
 * - `deliver()` posts like Dotva: 200 acknowledges, anything else (or no answer) is retried with
 *   exponential back-off, bounded here so a test ends; it can deliver duplicates, as Dotva warns.
 * - Sender authentication is not in Dotva's document; the shared-secret and HMAC headers are ours, sent
 *   only when configured.
 */
import { createHash, createHmac, createPublicKey, type KeyObject, randomInt, randomUUID } from "node:crypto";
import { CompactEncrypt } from "jose";
import { partnerJson } from "./partner-json.js";

/** Test PANs published by the card networks for testing; never real cards. */
export const TEST_PANS = [
  "4242424242424242",
  "4000056655665556",
  "5555555555554444",
  "2223003122003222",
] as const;

export interface TestCard {
  readonly pan: string;
  readonly cvv: string;
  readonly expiry_month: string | number;
  readonly expiry_year: string | number;
}

/**
 * Member names inside `secrets_jwe`. The expiry is either a month and a year member, written as the
 * card gives them, or one member in one of the formats our reader tolerates.
 */
export interface SecretsShape {
  readonly pan: string;
  readonly cvv: string;
  readonly expiry:
    | { readonly month: string; readonly year: string }
    | { readonly member: string; readonly format: "MM/YY" | "MM/YYYY" | "YYYY-MM" };
  /** Put the members inside an object of this name (e.g. `card`) instead of at the top level. */
  readonly nestUnder?: string;
  /** Further top-level members, as an issuer may add. */
  readonly extra?: Readonly<Record<string, unknown>>;
}

/** What seed 004's jose example reads: `secrets.pan, secrets.cvv, secrets.expiry_month, secrets.expiry_year`. */
export const DOCUMENTED_SECRETS_SHAPE: SecretsShape = {
  pan: "pan",
  cvv: "cvv",
  expiry: { month: "expiry_month", year: "expiry_year" },
};

/** The plaintext of `secrets_jwe` for `card` in `shape`. */
export function secretsPlaintext(card: TestCard, shape: SecretsShape = DOCUMENTED_SECRETS_SHAPE): string {
  const members: Record<string, unknown> = { [shape.pan]: card.pan, [shape.cvv]: card.cvv };
  if ("month" in shape.expiry) {
    members[shape.expiry.month] = card.expiry_month;
    members[shape.expiry.year] = card.expiry_year;
  } else {
    const mm = String(Number(card.expiry_month)).padStart(2, "0");
    const yyyy = String(card.expiry_year).length === 2 ? `20${card.expiry_year}` : String(card.expiry_year);
    members[shape.expiry.member] =
      shape.expiry.format === "YYYY-MM"
        ? `${yyyy}-${mm}`
        : `${mm}/${shape.expiry.format === "MM/YY" ? yyyy.slice(2) : yyyy}`;
  }
  const doc = shape.nestUnder === undefined ? members : { [shape.nestUnder]: members };
  return JSON.stringify({ ...shape.extra, ...doc });
}

/** Seed 004's envelope. Ids given as bigint are written as exact JSON numbers. */
export interface CardIssuedSecrets {
  readonly event: "card.issued.secrets";
  readonly workspace_id: number | bigint;
  readonly data: {
    readonly card_id: number | bigint;
    readonly card_uuid: string;
    readonly card_last4: string;
    readonly card_bin: string;
    readonly secrets_jwe: string;
    readonly key_fingerprint: string;
  };
}

export interface DotvaSenderAuth {
  readonly sharedSecret?: { readonly header: string; readonly value: string };
  readonly hmac?: { readonly header: string; readonly secret: string };
}

export interface RetryPolicy {
  /** Retries after the first attempt. */
  readonly retries: number;
  /** Delay before retry n (1-based) is `min(maxDelayMs, baseDelayMs * 2^(n-1))`. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** How long one attempt waits for an answer. */
  readonly timeoutMs: number;
}

export interface DotvaSimulatorOptions {
  /** `workspace_id` of issued cards (the document's example is 12). */
  readonly workspaceId?: number | bigint;
  readonly secretsShape?: SecretsShape;
  readonly retry?: Partial<RetryPolicy>;
  /** How back-off waits; tests pass one that records and returns at once. */
  readonly sleep?: (ms: number) => Promise<void>;
}

export interface Delivery {
  /** One per attempt; 0 when no HTTP answer came (network error, timeout). */
  readonly statuses: number[];
  /** Back-off waited before each retry, in order. */
  readonly delays: number[];
  /** Every copy was acknowledged with a 200. */
  readonly delivered: boolean;
}

const DEFAULT_RETRY: RetryPolicy = { retries: 3, baseDelayMs: 100, maxDelayMs: 2_000, timeoutMs: 10_000 };

export class DotvaSimulator {
  readonly keyFingerprint: string;
  private readonly custodyKey: KeyObject;
  private readonly retry: RetryPolicy;
  private readonly sleep: (ms: number) => Promise<void>;
  // Card ids start at a random point so that simulators sharing a gateway do not collide.
  private nextCardId = randomInt(1, 2 ** 40);

  constructor(
    custodyPublicKeyPem: string,
    private readonly auth: DotvaSenderAuth = {},
    private readonly options: DotvaSimulatorOptions = {},
  ) {
    this.custodyKey = createPublicKey(custodyPublicKeyPem);
    const spki = this.custodyKey.export({ type: "spki", format: "der" });
    this.keyFingerprint = `sha256:${createHash("sha256").update(spki).digest("hex")}`;
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  /** A card.issued.secrets event for `card`; ids fresh unless given. */
  async issue(
    card: TestCard,
    o: {
      cardUuid?: string;
      cardId?: number | bigint;
      workspaceId?: number | bigint;
      keyFingerprint?: string;
      shape?: SecretsShape;
    } = {},
  ): Promise<CardIssuedSecrets> {
    const plaintext = secretsPlaintext(card, o.shape ?? this.options.secretsShape);
    const secrets_jwe = await new CompactEncrypt(new TextEncoder().encode(plaintext))
      .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM" })
      .encrypt(this.custodyKey);
    return {
      event: "card.issued.secrets",
      workspace_id: o.workspaceId ?? this.options.workspaceId ?? 12,
      data: {
        card_id: o.cardId ?? this.nextCardId++,
        card_uuid: o.cardUuid ?? randomUUID(),
        card_last4: card.pan.slice(-4),
        card_bin: card.pan.slice(0, 6),
        secrets_jwe,
        key_fingerprint: o.keyFingerprint ?? this.keyFingerprint,
      },
    };
  }

  /** The body as Dotva writes it. */
  body(event: object): string {
    return partnerJson(event);
  }

  /** Request headers for `body`: JSON, plus our optional sender checks (not part of Dotva's document). */
  headers(body: string): Record<string, string> {
    const h: Record<string, string> = { "content-type": "application/json" };
    if (this.auth.sharedSecret) h[this.auth.sharedSecret.header] = this.auth.sharedSecret.value;
    if (this.auth.hmac) {
      h[this.auth.hmac.header] = createHmac("sha256", this.auth.hmac.secret).update(body).digest("hex");
    }
    return h;
  }

  /**
   * Delivers `event` `copies` times to `<gatewayUrl>/webhooks/dotva`; each copy is retried with
   * exponential back-off until answered 200 or the policy's retries are spent.
   */
  async deliver(
    gatewayUrl: string,
    event: object,
    opts: { copies?: number } & Partial<RetryPolicy> = {},
  ): Promise<Delivery> {
    const policy = { ...this.retry, ...opts };
    const body = this.body(event);
    const statuses: number[] = [];
    const delays: number[] = [];
    let acknowledged = 0;
    const copies = opts.copies ?? 1;
    for (let copy = 0; copy < copies; copy++) {
      for (let attempt = 0; attempt <= policy.retries; attempt++) {
        if (attempt > 0) {
          const delay = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
          delays.push(delay);
          await this.sleep(delay);
        }
        const status = await this.post(gatewayUrl, body, policy.timeoutMs);
        statuses.push(status);
        if (status === 200) {
          acknowledged++;
          break;
        }
      }
    }
    return { statuses, delays, delivered: acknowledged === copies };
  }

  private post(gatewayUrl: string, body: string, timeoutMs: number): Promise<number> {
    return fetch(`${gatewayUrl}/webhooks/dotva`, {
      method: "POST",
      headers: this.headers(body),
      body,
      signal: AbortSignal.timeout(timeoutMs),
    }).then(
      async (r) => {
        await r.body?.cancel();
        return r.status;
      },
      () => 0,
    );
  }
}
