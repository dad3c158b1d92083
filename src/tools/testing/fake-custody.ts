/**
 * An in-test custody.v1.CardCustody server on 127.0.0.1 (plaintext gRPC; the gateway runs with
 * GATEWAY_CUSTODY_INSECURE in development mode against it). It re-encrypts with the project's crypto core, so
 * cards arrive at the Knot simulator for real; faults let gateway-only behaviour be tested: UNAVAILABLE
 * for the next N calls, a delay, and a call count.
 */
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { Server, ServerCredentials, type ServiceError, status } from "@grpc/grpc-js";
import type { CardCustodyHandlers } from "../../contract/generated/custody/v1/CardCustody.js";
import { loadCustodyProto, loadHealthProto } from "../../contract/proto.js";
import { parseKnotUser } from "../../core/card/knot-user.js";
import { parseCompactJwe } from "../../core/crypto/jwe-decrypt.js";
import { parseKnotJwk } from "../../core/crypto/knot-jwk.js";
import { reencryptForKnot } from "../../core/reencrypt.js";
import { privateKeyUnwrap } from "../../custody/keystore/private-key-unwrap.js";

export interface FakeCustody {
  readonly address: string;
  readonly publicKeyPem: string;
  readonly faults: { unavailableNext: number; delayMs: number };
  calls: number;
  close(): Promise<void>;
}

export async function startFakeCustody(): Promise<FakeCustody> {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 }) as {
    privateKey: KeyObject;
    publicKey: KeyObject;
  };
  const unwrap = privateKeyUnwrap(privateKey);
  const server = new Server();
  const state = {
    faults: { unavailableNext: 0, delayMs: 0 },
    calls: 0,
  };
  const handlers: CardCustodyHandlers = {
    ReencryptForKnot: (call, callback) => {
      state.calls++;
      void (async () => {
        if (state.faults.delayMs) await new Promise((r) => setTimeout(r, state.faults.delayMs));
        if (state.faults.unavailableNext > 0) {
          state.faults.unavailableNext--;
          const e = Object.assign(new Error("unavailable"), { code: status.UNAVAILABLE }) as ServiceError;
          return callback(e);
        }
        const r = call.request;
        try {
          const out = await reencryptForKnot({
            jwe: parseCompactJwe(r.secrets_jwe),
            unwrap,
            recipient: parseKnotJwk(r.knot_jwk),
            user: parseKnotUser(r.user),
            now: new Date(),
          });
          callback(null, {
            jwe: out.jwe,
            key_fingerprint: r.key_fingerprint,
            recipient_thumbprint: "",
            card_last4: out.cardLast4,
            card_bin: out.cardBin,
          });
        } catch {
          const e = Object.assign(new Error("invalid"), { code: status.INVALID_ARGUMENT }) as ServiceError;
          callback(e);
        }
      })();
    },
  };
  server.addService(loadCustodyProto().custody.v1.CardCustody.service, handlers);
  const health = loadHealthProto().grpc.health.v1.Health as unknown as { service: never };
  server.addService(health.service, {
    Check: (_c: unknown, cb: (e: null, r: { status: string }) => void) => cb(null, { status: "SERVING" }),
  } as never);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    get faults() {
      return state.faults;
    },
    get calls() {
      return state.calls;
    },
    set calls(v: number) {
      state.calls = v;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
      }),
  };
}
