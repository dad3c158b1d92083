/**
 * docs/key-rotation.md's Dotva key runbook, run as written for the file store and for a SoftHSM2 token:
 * every `<!-- runbook:STORE:STEP -->` shell block is extracted from the document and executed with bash,
 * in order, against a custody process (mTLS, its own key store) while calls run against it without
 * pause, and a gateway holding
 * cards Dotva encrypted to the old key. No call may fail; the key published in step 3 is the one custody
 * decrypts Dotva's new cards with; the usage question says "still needed" (exit 3) until the stored
 * secrets are purged, then 0; after retirement a call naming the old key is refused.
 */

import { createPublicKey } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fingerprintForms } from "../../core/crypto/fingerprint.js";
import { type RunningGateway, startGateway } from "../../gateway/app.js";
import { makeDevPki } from "../../tools/dev-pki.js";
import { type Proc, startCustodyProcess } from "../../tools/processes.js";
import { type CallOutcome, custodyClient, dotvaJwe, reencrypt } from "../../tools/testing/custody-harness.js";
import { expiryFromNow } from "../../tools/testing/expiry.js";
import {
  dotvaDelivery,
  dotvaHeaders,
  gatewayConfig,
  TEST_INTERNAL_TOKEN,
} from "../../tools/testing/gateway-env.js";
import { USER } from "../../tools/testing/profile.js";
import { runShellBlock } from "../../tools/testing/shell-block.js";
import { createTestToken, SOFTHSM_MODULE } from "../../tools/testing/softhsm.js";
import { verifyChainFile } from "../audit/verify.js";
import { runKeyTool } from "./run.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const DOC = readFileSync(join(ROOT, "docs/key-rotation.md"), "utf8");
const STEPS = ["generate", "reload-new", "publish", "decrypt-only", "usage", "retire"];

type Store = "file" | "pkcs11";

/** The shell blocks of one store's runbook, by step name, in document order. */
function runbookBlocks(store: Store): [string, string][] {
  const re = new RegExp(`<!-- runbook:${store}:([a-z-]+) -->\\n\`\`\`sh\\n([\\s\\S]*?)\\n\`\`\``, "g");
  return [...DOC.matchAll(re)].map((m) => [m[1]!, m[2]!]);
}

const io = { out: () => undefined, err: (l: string) => console.error(l) };

/** Custody's and the shell's environment for a store already holding the old key, and its public key. */
async function setUpStore(store: Store, dir: string) {
  if (store === "file") {
    const keyDir = join(dir, "keys");
    mkdirSync(keyDir, { mode: 0o700 });
    expect(await runKeyTool(["generate", "--dir", keyDir, "--name", "dotva-2026"], io)).toBe(0);
    const env = { CUSTODY_KEY_DIR: keyDir };
    return {
      custodyEnv: env,
      shellEnv: env,
      oldPublic: createPublicKey(readFileSync(join(keyDir, "dotva-2026.pem"))),
    };
  }
  const token = createTestToken("custody-runbook");
  const stateDir = join(dir, "pkcs11-state");
  mkdirSync(stateDir, { mode: 0o700 });
  // The whole token: keys the runbook generates later are loaded at the next SIGHUP.
  const uri = `pkcs11:token=${token.label}?module-path=${SOFTHSM_MODULE}&pin-source=file:${token.pinFile}`;
  const env = {
    CUSTODY_PKCS11_URI: uri,
    CUSTODY_PKCS11_STATE_DIR: stateDir,
    SOFTHSM2_CONF: process.env.SOFTHSM2_CONF!,
  };
  const tokenArgs = ["--pkcs11", "--uri", uri, "--state-dir", stateDir];
  expect(await runKeyTool(["generate", ...tokenArgs, "--label", "dotva-2026"], io)).toBe(0);
  const pem: string[] = [];
  await runKeyTool(["public", ...tokenArgs, "--key", "dotva-2026"], { out: (l) => pem.push(l), err: io.err });
  return {
    custodyEnv: { ...env, CUSTODY_KEYSTORE: "pkcs11" },
    shellEnv: env,
    oldPublic: createPublicKey(pem.join("\n")),
    cleanup: () => token.remove(),
  };
}

describe.each(["file", "pkcs11"] as const)("docs/key-rotation.md runbook (%s store)", (store) => {
  const tmp = mkdtempSync(join(tmpdir(), `runbook-${store}-`));
  const pki = makeDevPki(join(tmp, "pki"));
  const handover = join(tmp, "handover");
  let custody: { proc: Proc; address: string };
  let gw: RunningGateway;
  let shellEnv: Record<string, string>;
  let oldPublic: ReturnType<typeof createPublicKey>;
  let cleanup: (() => void) | undefined;

  beforeAll(async () => {
    mkdirSync(handover);
    const set = await setUpStore(store, tmp);
    oldPublic = set.oldPublic;
    cleanup = set.cleanup;
    custody = await startCustodyProcess(pki, [readFileSync(pki.knotThumbprint, "utf8").trim()], {
      ...set.custodyEnv,
      CUSTODY_LOG_LEVEL: "info",
    });
    gw = await startGateway(
      gatewayConfig({
        knotUrl: "http://127.0.0.1:1",
        custodyAddress: custody.address,
        tls: { ca: pki.caCert, cert: pki.gateway.cert, key: pki.gateway.key },
        extra: { GATEWAY_CUSTODY_SERVER_NAME: "localhost" },
      }),
    );
    const tokenFile = join(tmp, "internal-token");
    writeFileSync(tokenFile, TEST_INTERNAL_TOKEN, { mode: 0o600 });
    shellEnv = {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? tmp,
      ...set.shellEnv,
      CUSTODY_PID: String(custody.proc.child.pid),
      OLD_KEY: "dotva-2026",
      NEW_KEY: "dotva-2027",
      HANDOVER: handover,
      GATEWAY_INTERNAL_URL: gw.internalUrl,
      GATEWAY_INTERNAL_TOKEN_FILE: tokenFile,
      CUSTODY_KEYS_AUDIT_FILE: join(tmp, "keytool-audit.jsonl"),
    };
  }, 60_000);

  afterAll(async () => {
    await gw?.close();
    await custody?.proc.stop();
    cleanup?.();
    rmSync(tmp, { recursive: true, force: true });
  });

  const runBlock = (script: string) => runShellBlock(script, { cwd: ROOT, env: shellEnv });

  const reloads = () => custody.proc.output().split('"msg":"key set reloaded"').length - 1;

  it("the document holds every step, once, in order", () => {
    expect(runbookBlocks(store).map(([step]) => step)).toEqual(
      store === "file" ? [...STEPS, "destroy"] : STEPS,
    );
  });

  it("runs as written with calls in flight and no failed call", async () => {
    const knotJwk = readFileSync(pki.knotJwk, "utf8").trim();
    const oldFingerprint = fingerprintForms(oldPublic).canonical;
    const client = custodyClient(Number(custody.address.split(":")[1]), pki);

    // Cards Dotva delivered under the old key before the rotation: the gateway keeps them.
    const oldPem = oldPublic.export({ type: "spki", format: "pem" }).toString();
    for (let i = 0; i < 3; i++) {
      const d = await dotvaDelivery(oldPem, {
        pan: "4242424242424242",
        cvv: "123",
        expiry_month: expiryFromNow(60).month,
        expiry_year: expiryFromNow(60).year,
      });
      const res = await gw.app.inject({
        method: "POST",
        url: "/webhooks/dotva",
        headers: dotvaHeaders(d.text),
        payload: d.text,
      });
      expect(res.statusCode).toBe(200);
    }

    const outcomes: { key: string; out: CallOutcome }[] = [];
    const oldJwe = await dotvaJwe(oldPublic);
    const load = { next: [] as string[], nextFingerprint: "", running: true, oldOn: true };
    const callOld = (id: string) =>
      reencrypt(client, {
        secrets_jwe: oldJwe,
        key_fingerprint: oldFingerprint,
        knot_jwk: knotJwk,
        user: USER,
        request_id: id,
      });
    const loop = async (n: number) => {
      for (let i = 0; load.running; i++) {
        const useNew = load.next.length > 0 && i % 2 === 1;
        if (!useNew && !load.oldOn) {
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        const out = await reencrypt(client, {
          secrets_jwe: useNew ? load.next[0]! : oldJwe,
          key_fingerprint: useNew ? load.nextFingerprint : oldFingerprint,
          knot_jwk: knotJwk,
          user: USER,
          request_id: `runbook-${n}-${i}`,
        });
        outcomes.push({ key: useNew ? "new" : "old", out });
      }
    };
    const loops = [0, 1, 2].map(loop);
    const steadyCalls = async (min: number) => {
      const from = outcomes.length;
      const end = Date.now() + 20_000;
      while (outcomes.length - from < min && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      expect(outcomes.length - from).toBeGreaterThanOrEqual(min);
    };
    const reloaded = async (before: number) => {
      const end = Date.now() + 10_000;
      while (reloads() <= before && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      expect(reloads()).toBeGreaterThan(before);
    };

    try {
      await steadyCalls(5);
      for (const [step, script] of runbookBlocks(store)) {
        const before = reloads();
        if (step === "retire") {
          // Step 5 said no stored card needs the old key: nothing sends under it any more.
          load.oldOn = false;
          await new Promise((r) => setTimeout(r, 50));
        }
        const r = await runBlock(script);
        if (step === "usage") {
          // Cards under the old key are stored and unsent: still needed.
          expect(r, r.out).toMatchObject({ code: 3 });
          expect(r.out).toContain(`"withSecrets":3,"unsent":3`);
          // Their retention ends (as GATEWAY_SECRETS_TTL_SECONDS would): asked again, the key is free.
          const now = Date.now();
          expect(await gw.repo.purgeSecrets(now, now, now)).toHaveLength(3);
          const again = await runBlock(script);
          expect(again, again.out).toMatchObject({ code: 0 });
          expect(again.out).toContain(`${oldFingerprint}: no stored card needs this key`);
        } else {
          expect(r, r.out).toMatchObject({ code: 0 });
        }
        if (script.includes("kill -HUP")) await reloaded(before);
        if (step === "retire") {
          expect(await callOld("after-retire")).toMatchObject({
            ok: false,
            code: status.FAILED_PRECONDITION,
            reason: "KEY_DISABLED",
          });
        }
        if (step === "destroy") {
          expect(await callOld("after-destroy")).toMatchObject({
            ok: false,
            code: status.NOT_FOUND,
            reason: "KEY_NOT_FOUND",
          });
          expect(custody.proc.output()).toContain("key set warning");
        }
        if (step === "publish") {
          // Dotva switches: its new cards are encrypted to the JWK handed over, nothing else.
          const jwk = JSON.parse(
            readFileSync(join(handover, "dotva-2027.jwk.json"), "utf8"),
          ) as import("node:crypto").JsonWebKey & { kid: string };
          const published = createPublicKey({ key: jwk, format: "jwk" });
          load.nextFingerprint = jwk.kid;
          expect(fingerprintForms(published).canonical).toBe(jwk.kid);
          load.next.push(await dotvaJwe(published));
        }
        await steadyCalls(5);
      }
    } finally {
      load.running = false;
      await Promise.all(loops);
    }

    const failures = outcomes.filter((o) => !o.out.ok);
    expect(failures.map((f) => (f.out.ok ? "" : `${f.key}:${f.out.code}:${f.out.reason}`))).toEqual([]);
    expect(outcomes.filter((o) => o.key === "old").length).toBeGreaterThan(10);
    expect(outcomes.filter((o) => o.key === "new").length).toBeGreaterThan(10);

    // Every custody-keys command of the runbook is in the CLI's audit chain, which verifies.
    const chain = shellEnv.CUSTODY_KEYS_AUDIT_FILE!;
    expect(verifyChainFile(chain)).toMatchObject({ ok: true, writer: "custody-keys" });
    const actions = readFileSync(chain, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.event === "keytool")
      .map((l) => `${l.command} ${l.outcome} ${l.state_after ?? ""}`.trim());
    expect(actions).toEqual(
      expect.arrayContaining(["generate ok", "set-state ok decrypt-only", "set-state ok disabled"]),
    );

    client.close();
  }, 180_000);
});
