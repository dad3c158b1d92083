/**
 * The gateway's side of test/deploy/netns.test.ts, run by it inside the gateway's network namespace
 * (`ip netns exec`): the Knot simulator, the gateway (a child process, so in the same namespace) and the
 * Dotva simulator, then one card through the whole flow to the custody address across the veth. Prints
 * one JSON line with what the test asserts; card data never leaves this process.
 *
 * Environment: NETNS_CUSTODY_ADDRESS (host:port), NETNS_PKI_DIR (a dev PKI made by makeDevPki),
 * NETNS_WORK (an empty directory for the gateway's SQLite file).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { makeDevPki } from "../../scripts/dev-pki.js";
import { DotvaSimulator, TEST_PANS } from "../../src/simulators/dotva-simulator.js";
import { authenticatedEvent, KnotSimulator } from "../../src/simulators/knot-simulator.js";
import {
  dotvaPublicKeyPem,
  localGatewayEnv,
  type Proc,
  startGatewayProcess,
} from "../../src/simulators/processes.js";
import { SAMPLE_CARDHOLDER } from "../../src/simulators/sample-cardholder.js";

const need = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
};
const secret = () => randomBytes(24).toString("base64url");

let gateway: Proc | undefined;
let knot: KnotSimulator | undefined;
const result: Record<string, unknown> = {};
try {
  const pki = makeDevPki(need("NETNS_PKI_DIR"));
  const knotSecret = secret();
  knot = new KnotSimulator({
    clientId: "netns-client",
    secret: knotSecret,
    privateKeyPem: readFileSync(pki.knotPrivateKey, "utf8"),
    kid: "knot-dev",
  });
  await knot.start();
  const internalToken = secret() + secret();
  const dotvaSecret = { header: "x-dotva-secret", value: secret() };
  const gw = await startGatewayProcess(
    localGatewayEnv({
      work: need("NETNS_WORK"),
      pki,
      custodyAddress: need("NETNS_CUSTODY_ADDRESS"),
      knotUrl: knot.url,
      knotClientId: "netns-client",
      knotClientSecret: knotSecret,
      dotvaSharedSecret: dotvaSecret.value,
      internalToken,
    }),
  );
  gateway = gw.proc;
  result.readyz = await (await fetch(`${gw.url}/readyz`)).json();

  const api = (method: string, path: string, body?: unknown) =>
    fetch(`${gw.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${internalToken}`, "content-type": "application/json" },
      ...(body ? { body: JSON.stringify(body) } : {}),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));

  const dotva = new DotvaSimulator(dotvaPublicKeyPem(pki.dotvaKeyDir), { sharedSecret: dotvaSecret });
  const expiryYear = new Date().getUTCFullYear() + 3;
  const card = { pan: TEST_PANS[0], cvv: "123", expiry_month: "8", expiry_year: String(expiryYear % 100) };
  const event = await dotva.issue(card);
  result.dotva = (await dotva.deliver(gw.url, event)).statuses;
  const user = `netns-user-${randomUUID().slice(0, 8)}`;
  await api("PUT", `/v1/cardholders/${user}`, SAMPLE_CARDHOLDER);
  await api("PUT", `/v1/cardholders/${user}/cards/${event.data.card_id}`, {
    workspace_id: event.workspace_id,
  });
  const taskId = 31_337;
  result.webhook = (
    await knot.sendWebhook(
      gw.url,
      authenticatedEvent({ taskId, cardId: event.data.card_id, externalUserId: user }),
    )
  ).status;
  const until = Date.now() + 15_000;
  while (Date.now() < until) {
    const job = (await api("GET", `/v1/tasks/${taskId}`)).body.job as { state?: string } | undefined;
    result.job = job?.state;
    if (job?.state === "sent" || job?.state === "failed") break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const got = knot.received.find((r) => r.taskId === String(taskId));
  result.knotReceivedIntact =
    got?.payload.card.number === card.pan &&
    got.payload.card.cvv === card.cvv &&
    got.payload.card.expiration === `08/${expiryYear}`;
} catch (error) {
  result.error = (error as Error).message;
} finally {
  await gateway?.stop();
  await knot?.close();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
