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
 */
import { readFileSync } from "node:fs";
import { Server } from "@grpc/grpc-js";
import pino from "pino";
import type { ReencryptForKnotResponse } from "../../contract/generated/custody/v1/ReencryptForKnotResponse.js";
import { loadCustodyProto } from "../../contract/proto.js";
import { listenCustody } from "../../custody/listener.js";
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
type Answer = (err: null, res: ReencryptForKnotResponse) => void;
const oneByOne = process.env.ECHO_ONE_BY_ONE === "1";
const waiting: Answer[] = [];
if (oneByOne) setInterval(() => waiting.shift()?.(null, response), 1);
server.addService(loadCustodyProto().custody.v1.CardCustody.service, {
  ReencryptForKnot: (_call: unknown, callback: Answer) => {
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
