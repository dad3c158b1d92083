/** A stand-in for our gateway as the simulators see it: records each request and answers from a script. */

import { readFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";

export interface Recorded {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface Receiver {
  readonly url: string;
  readonly requests: Recorded[];
  close(): Promise<void>;
}

/** Answers the n-th request with `statuses[n]` (the last one repeating), body `{}`. */
export async function receiver(statuses: readonly number[] = [200]): Promise<Receiver> {
  const requests: Recorded[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      requests.push({
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      });
      const status = statuses[Math.min(requests.length, statuses.length) - 1]!;
      res.writeHead(status, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** A partner document's example body, as committed under testdata/fixtures/partners. */
export function fixtureText(name: string): string {
  return readFileSync(new URL(`../../../testdata/fixtures/partners/${name}`, import.meta.url), "utf8");
}

export const fixture = (name: string): unknown => JSON.parse(fixtureText(name));

/** The structure of a JSON value: member names in order and JSON types, values left out. */
export function shapeOf(value: unknown): unknown {
  if (Array.isArray(value)) return value.length === 0 ? [] : [shapeOf(value[0])];
  if (value === null) return "null";
  if (typeof value === "object") {
    return Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, shapeOf(v)]);
  }
  return typeof value === "bigint" ? "number" : typeof value;
}
