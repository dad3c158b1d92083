/**
 * A closed-loop HTTP load generator on keep-alive sockets (node:http), bounded by a duration: each of
 * `concurrency` loops sends its next request as soon as the previous answer arrives.
 */
import { Agent, request } from "node:http";

export interface LoadResult {
  readonly ok: number;
  readonly failed: number;
  readonly seconds: number;
  readonly perSecond: number;
}

export async function closedLoop(o: {
  url: string;
  concurrency: number;
  seconds: number;
  body: (i: number) => { text: string; headers: Record<string, string> };
}): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency });
  const target = new URL(o.url);
  let i = 0;
  let ok = 0;
  let failed = 0;
  const start = performance.now();
  const end = start + o.seconds * 1000;
  const one = (n: number) =>
    new Promise<number>((resolve) => {
      const { text, headers } = o.body(n);
      const req = request(
        {
          agent,
          host: target.hostname,
          port: target.port,
          path: target.pathname,
          method: "POST",
          headers: { ...headers, "content-length": Buffer.byteLength(text) },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        },
      );
      req.on("error", () => resolve(0));
      req.end(text);
    });
  const loop = async () => {
    while (performance.now() < end) {
      if ((await one(i++)) === 200) ok++;
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, loop));
  const seconds = (performance.now() - start) / 1000;
  agent.destroy();
  return { ok, failed, seconds, perSecond: ok / seconds };
}
