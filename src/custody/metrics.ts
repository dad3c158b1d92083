/**
 * Custody's Prometheus metrics, served only when CUSTODY_METRICS_LISTEN is set, on a listener of their
 * own (plain HTTP, loopback by default): the gRPC port stays mTLS-only and a scraper needs no client
 * certificate. Label values come from fixed sets or from what custody itself vouches for: the method
 * name, the outcome code, the caller's SPIFFE ID only once a grant admitted it (others are counted as
 * "(not admitted)", so certificates nobody granted cannot grow the series), the canonical fingerprint
 * and state of a key in the store. Nothing from a request body is ever a label.
 */
import { createServer, type Server } from "node:http";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export const NOT_ADMITTED = "(not admitted)";

export class CustodyMetrics {
  readonly registry = new Registry();
  readonly calls = new Counter({
    name: "custody_calls_total",
    help: "Calls by method, outcome (OK or the reason code) and admitted caller (SPIFFE ID; others '(not admitted)')",
    labelNames: ["method", "outcome", "caller"] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: "custody_call_duration_seconds",
    help: "Time in the handler, by method",
    labelNames: ["method"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly keyUses = new Counter({
    name: "custody_key_uses_total",
    help: "Jobs sent to a worker by Dotva key (canonical fingerprint) and the key's state at the time",
    labelNames: ["fingerprint", "state"] as const,
    registers: [this.registry],
  });
  readonly certificateExpiry = new Gauge({
    name: "custody_certificate_expiry_timestamp_seconds",
    help: "notAfter of the server certificate in use (certificate=server) and of the earliest-expiring client CA certificate (certificate=client_ca); updated on every TLS reload",
    labelNames: ["certificate"] as const,
    registers: [this.registry],
  });

  constructor(queueDepth: () => number) {
    new Gauge({
      name: "custody_worker_queue_depth",
      help: "Re-encryption jobs waiting for a worker (CUSTODY_MAX_QUEUE refuses beyond)",
      registers: [this.registry],
      collect() {
        this.set(queueDepth());
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: "custody_" });
  }

  setCertificateExpiry(server: Date, clientCa: Date): void {
    this.certificateExpiry.set({ certificate: "server" }, server.getTime() / 1000);
    this.certificateExpiry.set({ certificate: "client_ca" }, clientCa.getTime() / 1000);
  }
}

/** GET /metrics on host:port; anything else is 404. Resolves with the bound port. */
export function serveMetrics(
  metrics: CustodyMetrics,
  host: string,
  port: number,
): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.method !== "GET" || req.url !== "/metrics") {
      res.writeHead(404).end();
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": metrics.registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const address = server.address();
      resolve({ server, port: typeof address === "object" && address ? address.port : port });
    });
  });
}
