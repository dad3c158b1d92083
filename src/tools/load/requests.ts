/**
 * What the load sends, shared by the base-rate load (run.ts) and the burst process (burst.ts): mTLS
 * ReencryptForKnot clients with distinct ciphertexts made up front, and Dotva webhook bodies that reuse
 * one real JWE under fresh card ids (the gateway stores it without decrypting at intake).
 */
import { createPublicKey, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { type ChannelOptions, credentials, type ServiceError, status } from "@grpc/grpc-js";
import { CompactEncrypt } from "jose";
import type { CardCustodyClient } from "../../contract/generated/custody/v1/CardCustody.js";
import { loadCustodyProto } from "../../contract/proto.js";
import { fingerprintForms } from "../../core/crypto/fingerprint.js";
import { type CardIssuedSecrets, DotvaSimulator, type TestCard } from "../simulators/dotva-simulator.js";
import { SAMPLE_CARDHOLDER } from "../simulators/sample-cardholder.js";
import type { Outcome } from "./paced.js";

/** What a custody load client needs; all paths, so the burst process can be handed it as JSON. */
export interface CustodyTarget {
  readonly address: string;
  readonly caCert: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** SPKI PEM of custody's Dotva key. */
  readonly dotvaPublicKeyPem: string;
  /** Knot's public JWK (JSON text), pinned in custody. */
  readonly knotJwk: string;
  readonly card: TestCard;
}

export type CustodyOutcome = Outcome & { readonly details?: string };

/** "OK", or the gRPC status name and custody's reason, e.g. "RESOURCE_EXHAUSTED/OVERLOADED". */
export function custodyOutcome(err: ServiceError | null): CustodyOutcome {
  if (!err) return { ok: true, code: "OK" };
  const reason = err.metadata?.get("custody-reason")[0];
  return {
    ok: false,
    code: `${status[err.code] ?? err.code}/${typeof reason === "string" ? reason : "-"}`,
    details: err.details,
  };
}

export async function custodyCaller(target: CustodyTarget) {
  const dotvaKey = createPublicKey(target.dotvaPublicKeyPem);
  const fingerprint = fingerprintForms(dotvaKey).canonical;
  const { pan, cvv, expiry_month, expiry_year } = target.card;
  const plaintext = new TextEncoder().encode(JSON.stringify({ pan, cvv, expiry_month, expiry_year }));
  const jwes = await Promise.all(
    Array.from({ length: 64 }, () =>
      new CompactEncrypt(plaintext)
        .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM" })
        .encrypt(dotvaKey),
    ),
  );
  const CardCustody = loadCustodyProto().custody.v1.CardCustody;
  const channelCredentials = credentials.createSsl(
    readFileSync(target.caCert),
    readFileSync(target.clientKey),
    readFileSync(target.clientCert),
  );
  const clients: CardCustodyClient[] = [];
  return {
    /** A client on its own connection (grpc-js shares one per target otherwise). */
    client(): CardCustodyClient {
      const options: ChannelOptions = {
        "grpc.ssl_target_name_override": "localhost",
        "grpc.use_local_subchannel_pool": 1,
      };
      const client = new CardCustody(
        target.address,
        channelCredentials,
        options,
      ) as unknown as CardCustodyClient;
      clients.push(client);
      return client;
    },
    reencrypt(client: CardCustodyClient, i: number, deadlineMs: number): Promise<CustodyOutcome> {
      return new Promise((resolve) =>
        client.ReencryptForKnot(
          {
            secrets_jwe: jwes[i % jwes.length]!,
            key_fingerprint: fingerprint,
            knot_jwk: target.knotJwk,
            user: SAMPLE_CARDHOLDER,
            request_id: `load-${i}`,
          },
          { deadline: Date.now() + deadlineMs },
          (err) => resolve(custodyOutcome(err)),
        ),
      );
    },
    close(): void {
      for (const c of clients) c.close();
    },
  };
}

/** What a Dotva webhook load needs, as JSON. */
export interface DotvaTarget {
  readonly gatewayUrl: string;
  readonly dotvaPublicKeyPem: string;
  readonly sharedSecret: { readonly header: string; readonly value: string };
  readonly template: CardIssuedSecrets;
  /** Card ids count up from here (distinct ranges for distinct senders). */
  readonly firstCardId: number;
}

export function dotvaRequests(target: DotvaTarget) {
  const dotva = new DotvaSimulator(target.dotvaPublicKeyPem, { sharedSecret: target.sharedSecret });
  let next = target.firstCardId;
  return {
    /** The id the next body will carry. */
    get nextCardId(): number {
      return next;
    },
    next(): { text: string; headers: Record<string, string> } {
      const event: CardIssuedSecrets = {
        ...target.template,
        data: { ...target.template.data, card_uuid: randomUUID(), card_id: next++ },
      };
      const text = dotva.body(event);
      return { text, headers: dotva.headers(text) };
    },
  };
}
