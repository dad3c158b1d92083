/**
 * Key rotation while calls run (the SIGHUP path, called directly): a new key comes in, the old one goes
 * to decrypt-only and is then removed, and a broken key file is rejected in between — no call is lost,
 * and a call that started on a key set finishes on it. Once per key store in STORE_FACTORIES.
 */
import { readFileSync } from "node:fs";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { fingerprintForms } from "../core/crypto/fingerprint.js";
import {
  baseEnv,
  type CallOutcome,
  custodyClient,
  dotvaJwe,
  type LogCapture,
  reencrypt,
  rsaKeyPair,
  startTestCustody,
  tempDir,
  testPki,
} from "../tools/testing/custody-harness.js";
import { USER } from "../tools/testing/profile.js";
import { STORE_FACTORIES, type TestKeyStore, withGet } from "../tools/testing/stores.js";
import type { RunningCustody } from "./server.js";

describe.each(STORE_FACTORIES)("key rotation under load ($name store)", (factory) => {
  const pki = testPki();
  const knotJwk = readFileSync(pki.knotJwk, "utf8").trim();
  const oldKey = rsaKeyPair();
  const newKey = rsaKeyPair();
  let store: TestKeyStore;
  let custody: RunningCustody;
  let log: LogCapture;
  let lookups = 0;

  beforeAll(async () => {
    store = await factory.create(tempDir(`rotate-${factory.name}`), [
      { name: "dotva-old", privateKey: oldKey.privateKey, state: "active" },
    ]);
    // Counts key lookups, so a test knows when its calls have looked their key up.
    const source = store.source;
    ({ custody, log } = await startTestCustody(
      baseEnv(pki),
      withGet(source, (fingerprint) => {
        lookups++;
        return source.get(fingerprint);
      }),
    ));
  });
  afterAll(async () => {
    await custody?.shutdown(2000);
  });

  it("loses no call while keys rotate, and a failed reload keeps the previous set", async () => {
    const client = custodyClient(custody.port, pki);
    // Ciphertexts made up front: the load loop then measures custody, not jose.
    const jwesFor = async (key: typeof oldKey) =>
      Promise.all(Array.from({ length: 8 }, () => dotvaJwe(key.publicKey)));
    const oldJwes = await jwesFor(oldKey);
    const newJwes = await jwesFor(newKey);
    const results: { key: "old" | "new"; out: CallOutcome; phase: number }[] = [];
    let phase = 0;
    let running = true;
    const loop = async (key: "old" | "new", n: number) => {
      const [jwes, pair] = key === "old" ? [oldJwes, oldKey] : [newJwes, newKey];
      for (let i = 0; running; i++) {
        const startedIn = phase;
        const out = await reencrypt(client, {
          secrets_jwe: jwes[(i + n) % jwes.length]!,
          key_fingerprint: fingerprintForms(pair.publicKey).canonical,
          knot_jwk: knotJwk,
          user: USER,
          request_id: `rot-${key}-${n}-${i}`,
        });
        results.push({ key, out, phase: startedIn });
      }
    };
    // Each phase lasts until enough calls have completed in it, however fast this machine is today.
    const count = (key: string) => results.filter((r) => r.key === key).length;
    const until = (check: () => boolean) =>
      vi.waitFor(() => expect(check()).toBe(true), { timeout: 20_000, interval: 10 });
    const loops = [0, 1, 2, 3].map((n) => loop("old", n));

    await until(() => count("old") >= 8);
    store.add("dotva-new", newKey.privateKey, "active");
    await custody.reload();
    phase = 1;
    const newLoops = [0, 1].map((n) => loop("new", n));
    await until(() => count("new") >= 6);

    store.setState(oldKey.privateKey, "decrypt-only");
    await custody.reload();
    phase = 2;
    const atPhase2 = { old: count("old"), new: count("new") };
    await until(() => count("old") >= atPhase2.old + 8 && count("new") >= atPhase2.new + 6);

    // Something the store must refuse: the reload fails and leaves the set as it was.
    const broken = store.breakReload?.();
    if (broken) {
      await expect(custody.reload()).rejects.toThrow(broken.expectedError);
      broken.undo();
      const afterBroken = results.length;
      await until(() => results.length >= afterBroken + 4);
    }

    running = false;
    await Promise.all([...loops, ...newLoops]);
    client.close();

    const failures = results.filter((r) => !r.out.ok);
    expect(failures.map((f) => (f.out.ok ? "" : `${f.key}:${f.out.code}:${f.out.reason}`))).toEqual([]);
    expect(results.filter((r) => r.key === "old").length).toBeGreaterThan(20);
    expect(results.filter((r) => r.key === "new").length).toBeGreaterThan(10);
    const generations = new Set(log.audits().map((a) => a.key_generation));
    expect(generations.size).toBeGreaterThanOrEqual(3);
    if (broken) {
      expect(log.text).toContain("key reload failed; keeping the previous key set");
      expect(
        custody.keys
          .list()
          .map((k) => k.state)
          .sort(),
      ).toEqual(["active", "decrypt-only"]);
    }
  });

  it("a call that started on a key set finishes on it after the key is removed; later calls get NOT_FOUND", async () => {
    const gone = rsaKeyPair();
    store.add("dotva-gone", gone.privateKey, "active");
    await custody.reload();
    const client = custodyClient(custody.port, pki);
    const jwes = await Promise.all(Array.from({ length: 24 }, () => dotvaJwe(gone.publicKey)));
    const fingerprint = fingerprintForms(gone.publicKey).canonical;
    let reloadedAt = Number.POSITIVE_INFINITY;
    const call = async (jwe: string, id: string) => {
      const out = await reencrypt(client, {
        secrets_jwe: jwe,
        key_fingerprint: fingerprint,
        knot_jwk: knotJwk,
        user: USER,
        request_id: id,
      });
      return { out, afterReload: performance.now() > reloadedAt };
    };
    await call(jwes[0]!, "warm"); // the channel is connected before the race below
    // 24 calls queue behind 2 workers; once all have looked their key up, the key is removed.
    const before = lookups;
    const inFlight = jwes.map((jwe, i) => call(jwe, `gone-${i}`));
    const waitStart = performance.now();
    while (lookups < before + jwes.length && performance.now() - waitStart < 5000) {
      await new Promise((r) => setImmediate(r));
    }
    store.remove(gone.privateKey);
    await custody.reload();
    reloadedAt = performance.now();
    const outs = await Promise.all(inFlight);
    const after = await call(jwes[0]!, "after");
    client.close();
    expect(outs.map((o) => (o.out.ok ? "ok" : o.out.reason))).toEqual(jwes.map(() => "ok"));
    // Some of them completed only after the reload: they ran on the key set they started with.
    expect(outs.filter((o) => o.afterReload).length).toBeGreaterThan(0);
    expect(after.out.ok ? "ok" : [after.out.code, after.out.reason]).toEqual([
      status.NOT_FOUND,
      "KEY_NOT_FOUND",
    ]);
  });
});
