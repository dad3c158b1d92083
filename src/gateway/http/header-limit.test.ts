/**
 * The gateway's header size limit, on the real listener (Node's HTTP parser enforces it before Fastify
 * sees the request): a request whose headers exceed 16 KiB is answered 431 and its connection closed.
 */
import { connect } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { gatewayConfig } from "../../tools/testing/gateway-env.js";
import { type RunningGateway, startGateway } from "../app.js";

let gw: RunningGateway;

beforeAll(async () => {
  gw = await startGateway(
    gatewayConfig({
      knotUrl: "http://127.0.0.1:9",
      custodyAddress: "127.0.0.1:9",
      extra: { GATEWAY_HOST: "127.0.0.1" },
    }),
  );
});
afterAll(async () => {
  await gw?.close();
});

/** Sends one raw request with a header of `bytes` bytes; resolves with the status line and whether the server closed. */
function requestWithHeader(bytes: number): Promise<{ status: string; closed: boolean }> {
  const { port } = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), "127.0.0.1");
    let text = "";
    socket.on("data", (d) => {
      text += d.toString("latin1");
    });
    socket.on("error", reject);
    socket.on("close", () => resolve({ status: text.split("\r\n")[0] ?? "", closed: true }));
    socket.write(
      `GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Padding: ${"a".repeat(bytes)}\r\nConnection: close\r\n\r\n`,
    );
  });
}

it("answers a request whose headers exceed 16 KiB with 431 and closes the connection", async () => {
  const big = await requestWithHeader(17 * 1024);
  expect(big.status).toBe("HTTP/1.1 431 Request Header Fields Too Large");
  expect(big.closed).toBe(true);
  const fits = await requestWithHeader(15 * 1024);
  expect(fits.status).not.toContain("431");
  expect(fits.status).toMatch(/^HTTP\/1\.1 \d{3}/);
});
