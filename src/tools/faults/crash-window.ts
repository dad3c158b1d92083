/**
 * The send-card crash window (issue 17): how often a card reaches Knot twice when the gateway is killed
 * (SIGKILL) while it sends cards. Knot's POST /card has no idempotency key, so a gateway that dies after
 * Knot took a card and before recording Knot's 200 can only learn what happened from Knot's own
 * CARD_UPDATING / CARD_UPDATED webhook; without that word it posts again (docs/gateway.md, "The crash
 * window").
 *
 * Each run: a gateway process (SQLite), `cards` tasks at once, a SIGKILL (at a random moment in the
 * first `killWindowMs`, or as soon as the first POST /card is in flight at Knot), a new process on the
 * same file and port, and every job waited for. The Knot simulator takes `knotDelayMs` over each card,
 * keeps the card even when the connection is gone (as a real server would), and counts cards per
 * task_id; with `cardUpdating` it then sends CARD_UPDATING for the task, retried until acknowledged.
 * Custody is the in-process test double (the crash window is the gateway's alone).
 *
 *   npx tsx src/tools/faults/crash-window.ts [--runs 20] [--cards 10] [--knot-delay-ms 100]
 *     [--kill-window-ms 400] [--kill random|first-post] [--card-updating on|off]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { freePort, type Proc, startGatewayProcess } from "../processes.js";
import { DotvaSimulator } from "../simulators/dotva-simulator.js";
import { authenticatedEvent } from "../simulators/knot-simulator.js";
import { type FakeCustody, startFakeCustody } from "../testing/fake-custody.js";
import {
  bindCard,
  DOTVA_HMAC,
  DOTVA_SHARED,
  gatewayEnv,
  internalGet,
  putProfile,
  startTestKnot,
  TEST_CARD,
} from "../testing/gateway-env.js";

export interface CrashWindowOptions {
  readonly runs: number;
  readonly cards: number;
  readonly knotDelayMs: number;
  /** `random`: uniform in [0, killWindowMs) after the webhooks; `first-post`: once a POST is in flight. */
  readonly kill: "random" | "first-post";
  readonly killWindowMs: number;
  readonly cardUpdating: boolean;
  readonly log?: (line: string) => void;
}

export interface CrashWindowResult {
  readonly runs: number;
  readonly tasks: number;
  readonly sent: number;
  /** Tasks whose card Knot never took. */
  readonly lost: number;
  /** Jobs that did not end `sent` (e.g. a restart slower than the deadline), whatever Knot holds. */
  readonly notSent: number;
  /** How each of those ended: its state and error code, and whether Knot had the card. */
  readonly notSentHow: readonly string[];
  /** Tasks whose card Knot took more than once. */
  readonly duplicates: number;
  /** POST /card in flight at Knot at the moment of the kill, summed over runs. */
  readonly inFlightAtKill: number;
  /** After restarts: unanswered POSTs resolved by Knot's webhook, and those posted again. */
  readonly confirmedByKnot: number;
  readonly resent: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The test gateway's environment, as a process of its own on `port`, taking a dead one's jobs quickly. */
function crashGatewayEnv(o: { port: number; sqlitePath: string; knotUrl: string; custody: string }) {
  return gatewayEnv({
    knotUrl: o.knotUrl,
    custodyAddress: o.custody,
    sqlitePath: o.sqlitePath,
    extra: {
      GATEWAY_PORT: String(o.port),
      GATEWAY_LOG_LEVEL: "warn",
      SEND_CARD_POLL_MS: "50",
      // A short lease so the restarted process takes the dead one's jobs within a second.
      SEND_CARD_LEASE_MS: "1000",
      SEND_CARD_ATTEMPT_TIMEOUT_MS: "800",
      SEND_CARD_BACKOFF_CAP_MS: "200",
    },
  });
}

function metricSum(text: string, name: string, label: string): number {
  return text
    .split("\n")
    .filter((l) => l.startsWith(name) && l.includes(label))
    .reduce((n, l) => n + Number(l.split(" ").pop()), 0);
}

export async function measureCrashWindow(o: CrashWindowOptions): Promise<CrashWindowResult> {
  const log = o.log ?? (() => {});
  const knot = await startTestKnot();
  const work = mkdtempSync(join(tmpdir(), "crash-window-"));
  let custody: FakeCustody | undefined;
  const procs: Proc[] = [];
  let taskSeq = 1_000_000;
  const total = {
    tasks: 0,
    sent: 0,
    lost: 0,
    notSent: 0,
    duplicates: 0,
    inFlightAtKill: 0,
    confirmedByKnot: 0,
    resent: 0,
  };
  const notSentHow: string[] = [];
  try {
    custody = await startFakeCustody();
    knot.faults.delayMs = o.knotDelayMs;
    const dotva = new DotvaSimulator(custody.publicKeyPem, { sharedSecret: DOTVA_SHARED, hmac: DOTVA_HMAC });
    const port = await freePort();
    for (let run = 0; run < o.runs; run++) {
      const env = crashGatewayEnv({
        port,
        sqlitePath: join(work, `run-${run}.sqlite`),
        knotUrl: knot.url,
        custody: custody.address,
      });
      let gw = await startGatewayProcess(env);
      procs.push(gw.proc);
      knot.cardUpdating = o.cardUpdating
        ? { url: gw.url, delayMs: 0, retryMs: 100, maxTries: 100 }
        : undefined;
      const tasks: { taskId: number; hook: Record<string, unknown> }[] = [];
      for (let i = 0; i < o.cards; i++) {
        const event = await dotva.issue(TEST_CARD);
        const delivery = await dotva.deliver(gw.url, event);
        if (!delivery.delivered) throw new Error("Dotva delivery refused");
        const user = `user-${run}-${i}`;
        const cardId = String(event.data.card_id);
        await putProfile(gw.url, user);
        await bindCard(gw.url, user, cardId);
        const taskId = ++taskSeq;
        tasks.push({ taskId, hook: authenticatedEvent({ taskId, cardId, externalUserId: user }) });
      }
      const postsBefore = knot.cardRequests;
      const sent = Promise.all(tasks.map((t) => knot.sendWebhook(gw.url, t.hook).catch(() => undefined)));
      if (o.kill === "first-post") {
        const end = Date.now() + 10_000;
        while (knot.cardRequests === postsBefore && Date.now() < end) await sleep(2);
      } else {
        await sleep(Math.random() * o.killWindowMs);
      }
      total.inFlightAtKill += knot.cardsInFlight;
      gw.proc.child.kill("SIGKILL");
      await new Promise((r) => gw.proc.child.once("exit", r));
      await sent;
      gw = await startGatewayProcess(env);
      procs.push(gw.proc);
      // Knot retries its AUTHENTICATED until answered 200; the dead process may have missed some.
      for (const t of tasks) {
        const res = await knot.sendWebhook(gw.url, t.hook);
        if (res.status !== 200) throw new Error(`AUTHENTICATED answered ${res.status}`);
      }
      const end = Date.now() + 20_000;
      for (const t of tasks) {
        let state: string | undefined;
        let code: string | undefined;
        while (Date.now() < end) {
          const job = (await internalGet(gw.url, `/v1/tasks/${t.taskId}`)).body.job as
            | { state: string; errorCode?: string }
            | undefined;
          state = job?.state;
          code = job?.errorCode;
          if (state === "sent" || state === "failed") break;
          await sleep(50);
        }
        const taken = knot.received.filter((r) => r.taskId === String(t.taskId)).length;
        total.tasks++;
        if (state === "sent") total.sent++;
        else {
          total.notSent++;
          notSentHow.push(`${state ?? "no job"}${code ? ` ${code}` : ""}, Knot took ${taken}`);
        }
        if (taken === 0) total.lost++;
        if (taken > 1) total.duplicates++;
      }
      const metrics = await (await fetch(`${gw.url}/metrics`)).text();
      total.confirmedByKnot += metricSum(
        metrics,
        "gateway_send_card_uncertain_posts_total",
        'resolution="confirmed_by_knot"',
      );
      total.resent += metricSum(metrics, "gateway_send_card_uncertain_posts_total", 'resolution="resent"');
      await gw.proc.stop();
      log(
        `run ${run + 1}/${o.runs}: tasks ${total.tasks}, sent ${total.sent}, not sent ${total.notSent}, lost ${total.lost}, duplicates ${total.duplicates}, in flight at kill ${total.inFlightAtKill}, confirmed by Knot ${total.confirmedByKnot}, resent ${total.resent}`,
      );
    }
    return { runs: o.runs, ...total, notSentHow };
  } finally {
    knot.cardUpdating = undefined;
    await Promise.all(procs.map((p) => p.stop("SIGKILL")));
    await knot.close();
    await custody?.close();
    rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: "string", default: "20" },
      cards: { type: "string", default: "10" },
      "knot-delay-ms": { type: "string", default: "100" },
      "kill-window-ms": { type: "string", default: "400" },
      kill: { type: "string", default: "random" },
      "card-updating": { type: "string", default: "on" },
    },
  });
  const kill = values.kill === "first-post" ? "first-post" : "random";
  const o: CrashWindowOptions = {
    runs: Number(values.runs),
    cards: Number(values.cards),
    knotDelayMs: Number(values["knot-delay-ms"]),
    killWindowMs: Number(values["kill-window-ms"]),
    kill,
    cardUpdating: values["card-updating"] !== "off",
    log: (line) => console.log(line),
  };
  const r = await measureCrashWindow(o);
  console.log(JSON.stringify({ options: { ...o, log: undefined }, result: r }, null, 2));
  console.log(
    `duplicates: ${r.duplicates} of ${r.tasks} tasks (${((100 * r.duplicates) / r.tasks).toFixed(1)} %), lost: ${r.lost}`,
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
