/** Knot API client against the Knot simulator: Basic auth and Knot-Version, key cache TTL, redirects. */
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KnotSimulator } from "../tools/simulators/knot-simulator.js";
import { KnotClient } from "./knot/client.js";

const sim = new KnotSimulator({ clientId: "id", secret: "secret" });
let clock = 0;
let offOrigin: Server;
let offOriginUrl = "";

beforeAll(async () => {
  await sim.start();
  // Answers every request with a redirect to another origin: credentials must not follow it.
  offOrigin = createServer((_req, res) => {
    res.writeHead(307, { location: `${sim.url}/card` }).end();
  });
  await new Promise<void>((r) => offOrigin.listen(0, "127.0.0.1", r));
  offOriginUrl = `http://127.0.0.1:${(offOrigin.address() as { port: number }).port}`;
});
afterAll(async () => {
  await sim.close();
  await new Promise((r) => offOrigin.close(r));
});

const client = (over: Partial<ConstructorParameters<typeof KnotClient>[0]> = {}) =>
  new KnotClient({
    baseUrl: sim.url,
    clientId: "id",
    clientSecret: "secret",
    jwkTtlMs: 1_000,
    now: () => clock,
    ...over,
  });

describe("KnotClient", () => {
  it("caches the key for its TTL, shares one fetch between concurrent callers, refetches after", async () => {
    const c = client();
    const before = sim.jwkRequests;
    const [a, b] = await Promise.all([c.jwk(1_000), c.jwk(1_000)]);
    expect(JSON.parse(a)).toEqual(sim.publicJwk);
    expect(b).toBe(a);
    clock += 999;
    await c.jwk(1_000);
    expect(sim.jwkRequests - before).toBe(1);
    clock += 2;
    await c.jwk(1_000);
    expect(sim.jwkRequests - before).toBe(2);
    c.invalidateJwk();
    await c.jwk(1_000);
    expect(sim.jwkRequests - before).toBe(3);
  });

  it("reports a wrong secret as a non-retryable key failure", async () => {
    await expect(client({ clientSecret: "wrong" }).jwk(1_000)).rejects.toMatchObject({
      code: "KNOT_KEY_UNAVAILABLE",
      retryable: false,
      knotStatus: 401,
    });
  });

  it("returns Knot's status and error_code for POST /card", async () => {
    expect(await client().postCard("1", "a.b.c.d.e", 1_000)).toEqual({
      status: 400,
      errorCode: "INVALID_JWE",
    });
  });

  it("re-sends the POST on a same-origin redirect and refuses one to another origin", async () => {
    sim.faults.redirectOnce = true;
    sim.faults.failNext = 1;
    const before = sim.cardRequests;
    expect((await client().postCard("1", "a.b.c.d.e", 1_000)).status).toBe(503);
    expect(sim.cardRequests - before).toBe(2);
    await expect(client({ baseUrl: offOriginUrl }).postCard("1", "x", 1_000)).rejects.toMatchObject({
      code: "KNOT_REDIRECT_REFUSED",
      retryable: false,
    });
  });

  it("turns an unreachable Knot into a retryable error", async () => {
    await expect(client({ baseUrl: "http://127.0.0.1:9" }).postCard("1", "x", 500)).rejects.toMatchObject({
      code: "KNOT_UNREACHABLE",
      retryable: true,
    });
  });
});
