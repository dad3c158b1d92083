/**
 * Interop: a Python grpcio client (Debian's /usr/bin/python3 with python3-grpcio and python3-grpc-tools,
 * not whatever python3 is first on PATH) generates its stubs from proto/custody/v1/custody.proto at test
 * time and calls custody over mTLS.
 */
import { execFile, execFileSync } from "node:child_process";
import { createPrivateKey } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { compactDecrypt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROTO_ROOT } from "../contract/proto.js";
import {
  baseEnv,
  reencryptRequest,
  rsaKeyPair,
  startTestCustody,
  tempDir,
  testPki,
} from "../tools/testing/custody-harness.js";
import { STORE_FACTORIES } from "../tools/testing/stores.js";
import type { RunningCustody } from "./server.js";

const PYTHON = "/usr/bin/python3";
const CLIENT = fileURLToPath(new URL("../tools/testing/python_client.py", import.meta.url));

describe("a Python grpcio client built from the .proto only", () => {
  const pki = testPki();
  const dotva = rsaKeyPair();
  const stubs = tempDir("pystubs");
  let custody: RunningCustody;

  beforeAll(async () => {
    execFileSync(
      PYTHON,
      [
        "-m",
        "grpc_tools.protoc",
        `-I${PROTO_ROOT}`,
        `--python_out=${stubs}`,
        `--grpc_python_out=${stubs}`,
        "custody/v1/custody.proto",
      ],
      { timeout: 30_000 },
    );
    const store = await STORE_FACTORIES[0]!.create(tempDir("pykeys"), [
      { name: "dotva", privateKey: dotva.privateKey, state: "active" },
    ]);
    ({ custody } = await startTestCustody(baseEnv(pki), store.source));
  });
  afterAll(async () => {
    await custody?.shutdown(2000);
  });

  // Asynchronous: the server runs in this process and must keep serving while Python waits.
  const callFromPython = async (who: "gateway" | "intruder", request: object) => {
    const file = join(stubs, `request-${who}.json`);
    writeFileSync(file, JSON.stringify(request));
    const pair = pki[who];
    const { stdout } = await promisify(execFile)(
      PYTHON,
      [CLIENT, stubs, String(custody.port), pki.caCert, pair.cert, pair.key, file],
      {
        timeout: 30_000,
        encoding: "utf8",
        env: { PATH: "/usr/bin:/bin" },
      },
    );
    return JSON.parse(stdout) as Record<string, unknown>;
  };

  it("re-encrypts a card, and sees the reason code of a refusal in the trailers", async () => {
    const request = await reencryptRequest(dotva.publicKey, readFileSync(pki.knotJwk, "utf8"), "python-1");
    const ok = await callFromPython("gateway", request);
    expect(ok.error).toBeUndefined();
    expect(ok.card_last4).toBe("4242");
    expect(ok.key_fingerprint).toBe(request.key_fingerprint);
    const { plaintext } = await compactDecrypt(
      ok.jwe as string,
      createPrivateKey(readFileSync(pki.knotPrivateKey)),
    );
    expect(JSON.parse(new TextDecoder().decode(plaintext)).card.number).toBe("4242424242424242");

    expect(await callFromPython("intruder", request)).toEqual({
      error: { code: "PERMISSION_DENIED", reason: "CALLER_NOT_ALLOWED" },
    });
  });
});
