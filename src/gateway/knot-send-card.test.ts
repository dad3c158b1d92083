/**
 * POST /card on the wire, against plain node:http servers standing in for Knot and for another host:
 * the body is `{task_id, jwe}` with task_id a JSON number written with every digit, Basic auth and
 * Knot-Version 2.0; 307/308 are followed (method, body and credentials kept) only to allow-listed Knot
 * origins; 301/302/303 and a 3xx without Location are final failures; Retry-After is read.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { KnotClient, parseRetryAfter, sendCardBody } from "./knot/client.js";

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage["headers"];
  readonly body: string;
}
type Answer = { status: number; headers?: Record<string, string>; body?: string };

async function server(answer: (req: Seen) => Answer) {
  const seen: Seen[] = [];
  const s: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const r = {
        method: req.method!,
        url: req.url!,
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      };
      seen.push(r);
      const a = answer(r);
      res.writeHead(a.status, { "content-type": "application/json", ...a.headers }).end(a.body ?? "{}");
    });
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return { seen, url: `http://127.0.0.1:${(s.address() as { port: number }).port}`, close: () => s.close() };
}

let knot: Awaited<ReturnType<typeof server>>;
let mirror: Awaited<ReturnType<typeof server>>;
let other: Awaited<ReturnType<typeof server>>;
let next: Answer[] = [];

beforeAll(async () => {
  knot = await server(() => next.shift() ?? { status: 200, body: '{"message":"Success"}' });
  mirror = await server(() => ({ status: 200, body: '{"message":"Success"}' }));
  other = await server(() => ({ status: 200, body: '{"message":"Success"}' }));
});
afterAll(() => {
  knot.close();
  mirror.close();
  other.close();
});
beforeEach(() => {
  next = [];
  for (const s of [knot, mirror, other]) s.seen.length = 0;
});

const client = () =>
  new KnotClient({
    baseUrl: knot.url,
    clientId: "bd271e95-14e6-47ab-9f4f-225898f69183",
    clientSecret: "cf819749c0574616ba93b5935b8cf108",
    jwkTtlMs: 1_000,
    allowedOrigins: [mirror.url],
  });
const BASIC = `Basic ${Buffer.from("bd271e95-14e6-47ab-9f4f-225898f69183:cf819749c0574616ba93b5935b8cf108").toString("base64")}`;

describe("POST /card", () => {
  it("writes task_id as a JSON number with every digit, with Basic auth and Knot-Version 2.0", async () => {
    const big = "123456789012345678901234567890";
    expect((await client().postCard(big, "h.k.i.c.t", 2_000)).status).toBe(200);
    const req = knot.seen[0]!;
    expect(req).toMatchObject({ method: "POST", url: "/card" });
    expect(req.body).toBe(`{"task_id":${big},"jwe":"h.k.i.c.t"}`);
    expect(req.headers).toMatchObject({
      authorization: BASIC,
      "knot-version": "2.0",
      "content-type": "application/json",
    });
    // The seed's own example value round-trips as a number.
    expect(JSON.parse(sendCardBody("408321", "ey"))).toEqual({ task_id: 408321, jwe: "ey" });
    expect(() => sendCardBody("12a", "x")).toThrow(/decimal integer/);
  });

  it.each([307, 308])(
    "follows %i to an allow-listed Knot origin with method, body and credentials",
    async (status) => {
      next = [{ status, headers: { location: `${mirror.url}/card` } }];
      expect((await client().postCard("25605", "h.k.i.c.t", 2_000)).status).toBe(200);
      expect(mirror.seen).toHaveLength(1);
      expect(mirror.seen[0]).toMatchObject({
        method: "POST",
        url: "/card",
        body: '{"task_id":25605,"jwe":"h.k.i.c.t"}',
      });
      expect(mirror.seen[0]!.headers.authorization).toBe(BASIC);
    },
  );

  it("never sends credentials or the card to an origin outside the allow-list", async () => {
    next = [{ status: 307, headers: { location: `${other.url}/card` } }];
    await expect(client().postCard("25605", "h.k.i.c.t", 2_000)).rejects.toMatchObject({
      code: "KNOT_REDIRECT_REFUSED",
      retryable: false,
      knotStatus: 307,
    });
    expect(other.seen).toHaveLength(0);
  });

  it.each([301, 302, 303])(
    "%i to a POST is a final failure recorded with the Location; no GET is sent",
    async (status) => {
      next = [{ status, headers: { location: `${mirror.url}/card/v2` } }];
      const err = await client()
        .postCard("25605", "h.k.i.c.t", 2_000)
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "KNOT_REDIRECT_NOT_FOLLOWED", retryable: false, knotStatus: status });
      expect((err as Error).message).toContain(`${mirror.url}/card/v2`);
      expect(mirror.seen).toHaveLength(0);
      expect(knot.seen).toHaveLength(1);
    },
  );

  it("a 3xx without Location is a final failure", async () => {
    next = [{ status: 307 }];
    await expect(client().postCard("25605", "x", 2_000)).rejects.toMatchObject({
      code: "KNOT_REDIRECT_WITHOUT_LOCATION",
      retryable: false,
      knotStatus: 307,
    });
  });

  it("stops a redirect loop", async () => {
    next = Array.from({ length: 5 }, () => ({ status: 307, headers: { location: "/card" } }));
    await expect(client().postCard("25605", "x", 2_000)).rejects.toMatchObject({
      code: "KNOT_REDIRECT_LOOP",
    });
    expect(knot.seen).toHaveLength(4);
  });

  it("reports Knot's documented error code and Retry-After", async () => {
    next = [
      {
        status: 400,
        body: '{"error_type":"INVALID_INPUT","error_code":"INVALID_JWE","error_message":"invalid jwe","display_message":null}',
      },
      { status: 429, headers: { "retry-after": "2" } },
    ];
    expect(await client().postCard("1", "x", 2_000)).toEqual({ status: 400, errorCode: "INVALID_JWE" });
    expect(await client().postCard("1", "x", 2_000)).toEqual({ status: 429, retryAfterMs: 2_000 });
  });
});

describe("GET /jwe/key", () => {
  it("follows a 302 for the key (a GET stays a GET) within the allow-list", async () => {
    next = [{ status: 302, headers: { location: `${mirror.url}/jwe/key` } }];
    await client().jwk(2_000);
    expect(mirror.seen[0]).toMatchObject({ method: "GET", url: "/jwe/key" });
    expect(mirror.seen[0]!.headers).toMatchObject({ authorization: BASIC, "knot-version": "2.0" });
  });
});

describe("Retry-After", () => {
  it("reads delta-seconds and HTTP-dates, ignores garbage", () => {
    expect(parseRetryAfter("3", 0)).toBe(3_000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6_000);
    expect(parseRetryAfter("soon", 0)).toBeUndefined();
    expect(parseRetryAfter(null, 0)).toBeUndefined();
  });
});
