/**
 * npm run demo — the whole product on one machine: custody (mTLS, dev keys generated if missing), the
 * gateway on SQLite in a temp directory, and the Dotva and Knot simulators. One test card goes through
 * the full flow; each step is printed (never card data beyond the last four digits), everything is shut
 * down, and the exit code says whether the card arrived at Knot intact.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { makeDevPki } from "./dev-pki.js";
import {
  dotvaPublicKeyPem,
  localGatewayEnv,
  type Proc,
  startCustodyProcess,
  startDevKnot,
  startGatewayProcess,
} from "./processes.js";
import { DotvaSimulator, TEST_PANS } from "./simulators/dotva-simulator.js";
import { authenticatedEvent, type KnotSimulator } from "./simulators/knot-simulator.js";
import { SAMPLE_CARDHOLDER } from "./simulators/sample-cardholder.js";

const step = (n: number, text: string) => console.log(`[${n}] ${text}`);
const secret = () => randomBytes(24).toString("base64url");
const procs: Proc[] = [];
const work = mkdtempSync(join(tmpdir(), "card-custody-demo-"));
let knot: KnotSimulator | undefined;

async function main(): Promise<boolean> {
  const pki = makeDevPki(fileURLToPath(new URL("../../keys/dev/", import.meta.url)));
  step(1, `dev PKI and Dotva key ready in ${pki.dir}`);

  const knotSecret = secret();
  knot = await startDevKnot(pki, "demo-client", knotSecret);
  step(2, `Knot simulator on ${knot.url} (serves /jwe/key, decrypts and checks POST /card)`);

  const custody = await startCustodyProcess(pki, [readFileSync(pki.knotThumbprint, "utf8").trim()], {
    CUSTODY_AUDIT_FILE: join(work, "custody-audit.jsonl"),
  });
  procs.push(custody.proc);
  step(3, `custody listening on ${custody.address} (mTLS, Knot key pinned by thumbprint)`);

  const internalToken = secret() + secret();
  const dotvaSecret = { header: "x-dotva-secret", value: secret() };
  const gw = await startGatewayProcess(
    localGatewayEnv({
      work,
      pki,
      custodyAddress: custody.address,
      knotUrl: knot.url,
      knotClientId: "demo-client",
      knotClientSecret: knotSecret,
      dotvaSharedSecret: dotvaSecret.value,
      internalToken,
    }),
  );
  procs.push(gw.proc);
  const ready = (await (await fetch(`${gw.url}/readyz`)).json()) as { status: string };
  step(4, `gateway on ${gw.url}, SQLite in ${work}; readiness: ${ready.status}`);

  const api = (method: string, path: string, body?: unknown) =>
    fetch(`${gw.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${internalToken}`, "content-type": "application/json" },
      ...(body ? { body: JSON.stringify(body) } : {}),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));

  const dotva = new DotvaSimulator(dotvaPublicKeyPem(pki.dotvaKeyDir), { sharedSecret: dotvaSecret });
  // A two-digit year from the clock, so the demo card never expires; Knot receives it as MM/YYYY.
  const expiryYear = new Date().getUTCFullYear() + 3;
  const card = { pan: TEST_PANS[0], cvv: "123", expiry_month: "8", expiry_year: String(expiryYear % 100) };
  const event = await dotva.issue(card);
  const { data } = event;
  const delivery = await dotva.deliver(gw.url, event, { copies: 2 });
  step(
    5,
    `Dotva delivers card.issued.secrets for card ending ${card.pan.slice(-4)} twice: ${delivery.statuses.join(", ")}`,
  );
  const stored = await api("GET", `/v1/cards/${data.card_uuid}`);
  step(
    6,
    `gateway stored card ${data.card_uuid} (key ${String(stored.body.keyFingerprint).slice(0, 23)}...)`,
  );

  const user = `demo-user-${randomUUID().slice(0, 8)}`;
  const profile = await api("PUT", `/v1/cardholders/${user}`, SAMPLE_CARDHOLDER);
  // The gateway sends a card only to tasks of the user it is bound to.
  const bound = await api("PUT", `/v1/cardholders/${user}/cards/${data.card_id}`, {
    workspace_id: event.workspace_id,
  });
  step(
    7,
    `cardholder profile for ${user}: ${profile.status}; card ${data.card_id} bound to it: ${bound.status}`,
  );

  const taskId = 25605;
  const t0 = Date.now();
  const hook = await knot.sendWebhook(
    gw.url,
    authenticatedEvent({ taskId, cardId: data.card_id, externalUserId: user }),
  );
  step(8, `Knot sends AUTHENTICATED (send_card=true) for task ${taskId}: gateway answers ${hook.status}`);

  let job: Record<string, unknown> | undefined;
  while (Date.now() - t0 < 15_000) {
    const t = await api("GET", `/v1/tasks/${taskId}`);
    job = t.body.job as Record<string, unknown> | undefined;
    if (job && (job.state === "sent" || job.state === "failed")) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  step(9, `send-card job ${String(job?.state)} after ${Date.now() - t0} ms (Knot allows 15000 ms)`);

  const got = knot.received.find((r) => r.taskId === String(taskId));
  const ok =
    job?.state === "sent" &&
    got?.payload.card.number === card.pan &&
    got.payload.card.expiration === `08/${expiryYear}` &&
    got.payload.card.cvv === card.cvv &&
    got.payload.user.name.last_name === "Lovelace";
  step(
    10,
    `Knot decrypted POST /card: ${ok ? `card ending ${got?.payload.card.number.slice(-4)}, expiry and cardholder match` : "MISMATCH"}`,
  );
  return ok;
}

let ok = false;
try {
  ok = await main();
} catch (error) {
  console.error(`demo failed: ${(error as Error).message}`);
} finally {
  await Promise.all(procs.map((p) => p.stop()));
  await knot?.close();
  rmSync(work, { recursive: true, force: true });
  step(11, `everything stopped; ${ok ? "demo succeeded" : "demo FAILED"}`);
}
process.exit(ok ? 0 : 1);
