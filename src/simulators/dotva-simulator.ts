/**
 * A stand-in for Dotva, the card issuer, for the demo, tests and benchmarks (127.0.0.1 only): issues
 * test cards as real card.issued.secrets events (secrets_jwe is a compact JWE, RSA-OAEP-256 + A256GCM,
 * to custody's public key) and delivers them like a webhook sender does: signed as configured, retried
 * on anything but 200, optionally delivered more than once.
 */
import { createHmac, createPublicKey, type KeyObject, randomUUID } from "node:crypto";
import { CompactEncrypt } from "jose";
import { fingerprintForms } from "../crypto/fingerprint.js";

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

export interface DotvaSenderAuth {
  readonly sharedSecret?: { readonly header: string; readonly value: string };
  readonly hmac?: { readonly header: string; readonly secret: string };
}

export interface Delivery {
  readonly statuses: number[];
  readonly delivered: boolean;
}

export class DotvaSimulator {
  readonly keyFingerprint: string;
  private readonly custodyKey: KeyObject;
  private seq = 0;

  constructor(
    custodyPublicKeyPem: string,
    private readonly auth: DotvaSenderAuth = {},
  ) {
    this.custodyKey = createPublicKey(custodyPublicKeyPem);
    this.keyFingerprint = fingerprintForms(this.custodyKey).canonical;
  }

  /** A card.issued.secrets event for `card`, ids fresh unless given. */
  async issue(
    card: TestCard,
    ids: { cardUuid?: string; cardId?: string; workspaceId?: string } = {},
  ): Promise<Record<string, unknown>> {
    this.seq++;
    const secrets_jwe = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(card)))
      .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM" })
      .encrypt(this.custodyKey);
    return {
      type: "card.issued.secrets",
      id: `evt_${randomUUID()}`,
      created_at: new Date().toISOString(),
      data: {
        card_uuid: ids.cardUuid ?? randomUUID(),
        card_id: ids.cardId ?? `card_${Date.now().toString(36)}_${this.seq}`,
        workspace_id: ids.workspaceId ?? "ws_demo",
        card_last4: card.pan.slice(-4),
        card_bin: card.pan.slice(0, 6),
        key_fingerprint: this.keyFingerprint,
        secrets_jwe,
      },
    };
  }

  headers(body: string): Record<string, string> {
    const h: Record<string, string> = { "content-type": "application/json" };
    if (this.auth.sharedSecret) h[this.auth.sharedSecret.header] = this.auth.sharedSecret.value;
    if (this.auth.hmac) {
      h[this.auth.hmac.header] = createHmac("sha256", this.auth.hmac.secret).update(body).digest("hex");
    }
    return h;
  }

  /**
   * Delivers `event` `copies` times; each copy is retried up to `retries` times (after `retryDelayMs`)
   * until answered 200, as a webhook sender does.
   */
  async deliver(
    gatewayUrl: string,
    event: Record<string, unknown>,
    opts: { copies?: number; retries?: number; retryDelayMs?: number } = {},
  ): Promise<Delivery> {
    const body = JSON.stringify(event);
    const statuses: number[] = [];
    let delivered = false;
    for (let copy = 0; copy < (opts.copies ?? 1); copy++) {
      for (let attempt = 0; attempt <= (opts.retries ?? 2); attempt++) {
        const status = await fetch(`${gatewayUrl}/webhooks/dotva`, {
          method: "POST",
          headers: this.headers(body),
          body,
          signal: AbortSignal.timeout(10_000),
        }).then(
          async (r) => {
            await r.body?.cancel();
            return r.status;
          },
          () => 0,
        );
        statuses.push(status);
        if (status === 200) {
          delivered = true;
          break;
        }
        await new Promise((r) => setTimeout(r, opts.retryDelayMs ?? 200));
      }
    }
    return { statuses, delivered };
  }
}
