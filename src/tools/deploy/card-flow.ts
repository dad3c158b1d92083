/**
 * One card through the whole product, as the deployment tests drive it: the Knot simulator (started
 * before the gateway, which must know its URL), then Dotva's delivery, the cardholder and binding through
 * the internal API, Knot's AUTHENTICATED webhook, and a bounded wait for the send-card job. Only facts
 * leave: statuses, the job's state, and whether Knot decrypted exactly the card Dotva sent.
 */
import { randomBytes, randomUUID } from "node:crypto";
import type { DevPki } from "../dev-pki.js";
import { dotvaPublicKeyPem, localGatewayEnv, startDevKnot } from "../processes.js";
import { DotvaSimulator, TEST_PANS } from "../simulators/dotva-simulator.js";
import { authenticatedEvent, type KnotSimulator } from "../simulators/knot-simulator.js";
import { SAMPLE_CARDHOLDER } from "../simulators/sample-cardholder.js";

const secret = () => randomBytes(24).toString("base64url");

export interface Parties {
  readonly pki: DevPki;
  readonly knot: KnotSimulator;
  readonly knotSecret: string;
  readonly internalToken: string;
  readonly dotvaSecret: { header: string; value: string };
}

export async function startParties(pki: DevPki): Promise<Parties> {
  const knotSecret = secret();
  const knot = await startDevKnot(pki, "deploy-client", knotSecret);
  return {
    pki,
    knot,
    knotSecret,
    internalToken: secret() + secret(),
    dotvaSecret: { header: "x-dotva-secret", value: secret() },
  };
}

/** The gateway's environment against these parties (development mode: the Knot simulator is http). */
export function gatewayEnvFor(p: Parties, work: string, custodyAddress: string): Record<string, string> {
  return localGatewayEnv({
    work,
    pki: p.pki,
    custodyAddress,
    knotUrl: p.knot.url,
    knotClientId: "deploy-client",
    knotClientSecret: p.knotSecret,
    dotvaSharedSecret: p.dotvaSecret.value,
    internalToken: p.internalToken,
  });
}

export interface FlowResult {
  readonly readyz: unknown;
  readonly dotva: number[];
  readonly webhook: number;
  readonly job: string | undefined;
  readonly knotReceivedIntact: boolean;
}

export async function sendOneCard(p: Parties, gatewayUrl: string, taskId: number): Promise<FlowResult> {
  const readyz: unknown = await (await fetch(`${gatewayUrl}/readyz`)).json();
  const api = (method: string, path: string, body?: unknown) =>
    fetch(`${gatewayUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${p.internalToken}`, "content-type": "application/json" },
      ...(body ? { body: JSON.stringify(body) } : {}),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));

  const dotva = new DotvaSimulator(dotvaPublicKeyPem(p.pki.dotvaKeyDir), { sharedSecret: p.dotvaSecret });
  const expiryYear = new Date().getUTCFullYear() + 3;
  const card = { pan: TEST_PANS[0], cvv: "123", expiry_month: "8", expiry_year: String(expiryYear % 100) };
  const event = await dotva.issue(card);
  const delivered = (await dotva.deliver(gatewayUrl, event)).statuses;
  const user = `deploy-user-${randomUUID().slice(0, 8)}`;
  await api("PUT", `/v1/cardholders/${user}`, SAMPLE_CARDHOLDER);
  await api("PUT", `/v1/cardholders/${user}/cards/${event.data.card_id}`, {
    workspace_id: event.workspace_id,
  });
  const webhook = (
    await p.knot.sendWebhook(
      gatewayUrl,
      authenticatedEvent({ taskId, cardId: event.data.card_id, externalUserId: user }),
    )
  ).status;
  let job: string | undefined;
  const until = Date.now() + 15_000;
  while (Date.now() < until) {
    job = ((await api("GET", `/v1/tasks/${taskId}`)).body.job as { state?: string } | undefined)?.state;
    if (job === "sent" || job === "failed") break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const got = p.knot.received.find((r) => r.taskId === String(taskId));
  return {
    readyz,
    dotva: delivered,
    webhook,
    job,
    knotReceivedIntact:
      got?.payload.card.number === card.pan &&
      got.payload.card.cvv === card.cvv &&
      got.payload.card.expiration === `08/${expiryYear}`,
  };
}
