/**
 * The transport reference of bench:custody: a grpc-js server for custody.v1.CardCustody on the same
 * proto, the same listener and mutual TLS (src/custody/listener.ts, tls.ts) and the same server options as custody,
 * whose ReencryptForKnot answers at once with a real custody response replayed from a file. Its CPU per
 * call is what TLS, HTTP/2 and protobuf cost custody before any work of its own.
 *
 * Environment: ECHO_LISTEN (host:port), ECHO_TLS_CERT, ECHO_TLS_KEY, ECHO_TLS_CLIENT_CA (PEM files),
 * ECHO_RESPONSE (JSON file of one ReencryptForKnotResponse). Prints "listening" when bound.
 *
 * ECHO_ONE_BY_ONE=1 (diagnostic, `bench:custody --echo-one-by-one`): answers are queued and released one
 * per 1 ms timer tick, as custody's answers come back one at a time from its workers, instead of all the
 * calls of a burst in the same event-loop turn. Shows what answering one call per turn, each after a
 * wake-up (here the timer's, in custody a worker's message), costs besides the transport itself.
 *
 * ECHO_CORE=1 (bench:custody's "core floor"): instead of replaying, each call runs the re-encryption core
 * on this thread, as custody's inline mode does, with the key store custody's own configuration names
 * (the CUSTODY_* variables bench:custody gives custody: the same key file or token, sessions and
 * mechanism), and nothing else custody does per call: no caller grant, limits, recipient policy, key
 * state check, deadline, audit line, metrics or log. Its CPU per call is what any custody built on
 * grpc-js and node:crypto spends at least with that store, so it bounds the efficiency from above on
 * this stack, and custody's CPU over it is what custody's own checks and records cost.
 */
import { readFileSync } from "node:fs";
import { Server } from "@grpc/grpc-js";
import pino from "pino";
import type { ReencryptForKnotRequest__Output } from "../../contract/generated/custody/v1/ReencryptForKnotRequest.js";
import type { ReencryptForKnotResponse } from "../../contract/generated/custody/v1/ReencryptForKnotResponse.js";
import { loadCustodyProto } from "../../contract/proto.js";
import { parseKnotUser } from "../../core/card/knot-user.js";
import { normalizeFingerprint } from "../../core/crypto/fingerprint.js";
import { parseCompactJwe } from "../../core/crypto/jwe-decrypt.js";
import { cachedKnotJwkParser } from "../../core/crypto/knot-jwk.js";
import { reencryptForKnot } from "../../core/reencrypt.js";
import { loadConfig } from "../../custody/config.js";
import type { KeyStore } from "../../custody/keystore/key-store.js";
import { listenCustody } from "../../custody/listener.js";
import { openKeyStore } from "../../custody/open-key-store.js";
import { MutualTls } from "../../custody/tls.js";

const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};
const response = JSON.parse(readFileSync(env("ECHO_RESPONSE"), "utf8")) as ReencryptForKnotResponse;
const server = new Server({
  "grpc.max_receive_message_length": 64 * 1024,
  "grpc.max_send_message_length": 1024 * 1024,
  "grpc.max_concurrent_streams": 4096,
});
type Answer = (err: Error | null, res?: ReencryptForKnotResponse) => void;
type Call = { request: ReencryptForKnotRequest__Output };
const oneByOne = process.env.ECHO_ONE_BY_ONE === "1";
const waiting: Answer[] = [];
if (oneByOne) setInterval(() => waiting.shift()?.(null, response), 1);

/** The core floor (ECHO_CORE): parse, re-encrypt, answer; the same Error.stackTraceLimit as custody. */
function coreHandler(keys: KeyStore) {
  Error.stackTraceLimit = 0;
  const recipientFor = cachedKnotJwkParser();
  return (call: Call, callback: Answer) => {
    const req = call.request;
    const recipient = recipientFor(req.knot_jwk);
    const key = keys.get(normalizeFingerprint(req.key_fingerprint));
    if (!key) return callback(new Error("no such key"));
    reencryptForKnot({
      jwe: parseCompactJwe(req.secrets_jwe),
      unwrap: key.unwrap,
      recipient,
      user: parseKnotUser(req.user),
      now: new Date(),
    }).then(
      (out) =>
        callback(null, {
          jwe: out.jwe,
          key_fingerprint: req.key_fingerprint,
          recipient_thumbprint: recipient.thumbprint,
          card_last4: out.cardLast4,
          card_bin: out.cardBin,
        }),
      (err: Error) => callback(err),
    );
  };
}

const coreKeys =
  process.env.ECHO_CORE === "1" ? await openKeyStore(loadConfig(process.env).keyStore) : undefined;
server.addService(loadCustodyProto().custody.v1.CardCustody.service, {
  ReencryptForKnot: coreKeys
    ? coreHandler(coreKeys)
    : (_call: Call, callback: Answer) => {
        if (oneByOne) waiting.push(callback);
        else callback(null, response);
      },
});
const tls = new MutualTls(
  {
    cert: readFileSync(env("ECHO_TLS_CERT")),
    key: readFileSync(env("ECHO_TLS_KEY")),
    clientCa: readFileSync(env("ECHO_TLS_CLIENT_CA")),
  },
  { handshakeTimeoutMs: 5000 },
);
const [, host, port] = /^(.*):(\d+)$/.exec(env("ECHO_LISTEN")) ?? [];
await listenCustody(server, {
  host: host!.replace(/^\[|\]$/g, ""),
  port: Number(port),
  tls,
  limits: { maxConnections: 1024, maxHandshakes: 1024 },
  logger: pino({ level: "warn" }),
});
process.stdout.write("listening\n");
process.once("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
