// The images' HEALTHCHECK (Dockerfile): plain JavaScript run by the image's node, no shell, no curl.
//   node healthcheck.mjs gateway   GET /healthz on 127.0.0.1:$GATEWAY_PORT
//   node healthcheck.mjs custody   grpc.health.v1.Health/Check over mTLS on 127.0.0.1:<port of
//                                  $CUSTODY_LISTEN> when HEALTHCHECK_TLS_CERT, HEALTHCHECK_TLS_KEY and
//                                  HEALTHCHECK_TLS_CA name a probe identity (one CUSTODY_ALLOW_HEALTH
//                                  admits); without them a TCP connect, since custody answers nothing
//                                  to a client without a certificate.
// Exit 0 = healthy, 1 = not; one line on stderr says why.
import { readFileSync } from "node:fs";
import { connect } from "node:net";

const TIMEOUT_MS = 2_500;

function fail(why) {
  process.stderr.write(`unhealthy: ${why}\n`);
  process.exit(1);
}

function portOf(listen, variable) {
  const port = Number(/:(\d+)$/.exec(listen ?? "")?.[1]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`${variable} has no port`);
  return port;
}

async function gateway() {
  const port = Number(process.env.GATEWAY_PORT ?? "8080");
  const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  if (!res.ok) fail(`/healthz answered ${res.status}`);
}

function tcp(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port, timeout: TIMEOUT_MS });
    socket.once("connect", () => {
      socket.destroy();
      resolve();
    });
    socket.once("timeout", () => fail(`no connection to port ${port} within ${TIMEOUT_MS} ms`));
    socket.once("error", (e) => fail(`connect to port ${port}: ${e.code ?? e.message}`));
  });
}

// HealthCheckRequest{service:""} encodes to no bytes; the response's status is field 1, a varint
// (1 = SERVING): two bytes, decoded here so the probe needs no .proto file.
async function grpcHealth(port, files) {
  const grpc = await import("@grpc/grpc-js");
  const credentials = grpc.credentials.createSsl(
    readFileSync(files.ca),
    readFileSync(files.key),
    readFileSync(files.cert),
  );
  const Client = grpc.makeGenericClientConstructor(
    {
      Check: {
        path: "/grpc.health.v1.Health/Check",
        requestStream: false,
        responseStream: false,
        requestSerialize: () => Buffer.alloc(0),
        requestDeserialize: () => ({}),
        responseSerialize: () => Buffer.alloc(0),
        responseDeserialize: (b) => ({ status: b.length === 2 && b[0] === 0x08 ? b[1] : 0 }),
      },
    },
    "Health",
  );
  const options = process.env.HEALTHCHECK_TLS_SERVER_NAME
    ? { "grpc.ssl_target_name_override": process.env.HEALTHCHECK_TLS_SERVER_NAME }
    : {};
  const client = new Client(`127.0.0.1:${port}`, credentials, options);
  const status = await new Promise((resolve) => {
    client.Check({}, { deadline: Date.now() + TIMEOUT_MS }, (err, res) => {
      if (err) fail(`Health/Check: ${grpc.status[err.code] ?? err.code}`);
      resolve(res.status);
    });
  });
  client.close();
  if (status !== 1) fail(`Health/Check status ${status}, not SERVING`);
}

async function custody() {
  const port = portOf(process.env.CUSTODY_LISTEN ?? "127.0.0.1:7443", "CUSTODY_LISTEN");
  const files = {
    cert: process.env.HEALTHCHECK_TLS_CERT,
    key: process.env.HEALTHCHECK_TLS_KEY,
    ca: process.env.HEALTHCHECK_TLS_CA,
  };
  if (files.cert && files.key && files.ca) await grpcHealth(port, files);
  else await tcp(port);
}

const service = process.argv[2];
if (service === "gateway") await gateway().catch((e) => fail(e.message));
else if (service === "custody") await custody().catch((e) => fail(e.message));
else fail("usage: healthcheck.mjs custody|gateway");
process.exit(0);
