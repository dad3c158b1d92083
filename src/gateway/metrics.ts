/**
 * Prometheus metrics. Label values come from fixed sets (event names from Knot's documented list or
 * "unknown", outcomes from the code), so a hostile sender cannot grow the series count.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly webhooks = new Counter({
    name: "gateway_webhooks_total",
    help: "Partner webhooks by source, event and outcome",
    labelNames: ["source", "event", "outcome"] as const,
    registers: [this.registry],
  });
  readonly webhooksInFlight = new Gauge({
    name: "gateway_webhooks_in_flight",
    help: "Partner webhooks admitted and not yet answered, by source (each capped by GATEWAY_MAX_WEBHOOKS_IN_FLIGHT)",
    labelNames: ["source"] as const,
    registers: [this.registry],
  });
  readonly webhooksShed = new Counter({
    name: "gateway_webhooks_shed_total",
    help: "Partner webhooks answered 503 OVERLOADED before anything was stored, by source and reason (event_loop_delay, in_flight)",
    labelNames: ["source", "reason"] as const,
    registers: [this.registry],
  });
  readonly dotvaConflicts = new Counter({
    name: "gateway_dotva_conflicts_total",
    help: "Dotva redeliveries of a known card_uuid with different content: conflict (first kept) or replaced (stored secrets were refused by custody)",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  readonly dotvaQuarantined = new Counter({
    name: "gateway_dotva_quarantined_total",
    help: "Dotva deliveries that can never become valid, acknowledged and kept in quarantine, by kind",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly knotKeyNotPinned = new Counter({
    name: "gateway_knot_key_not_pinned_total",
    help: "Send-card jobs failed because custody refused Knot's current key (not pinned): alert on any increase",
    registers: [this.registry],
  });
  readonly knotWebhooksRefused = new Counter({
    name: "gateway_knot_webhooks_refused_total",
    help: "Signed Knot webhooks refused as replays: session_conflict (another body already accepted for the event and session_id) or stale_timestamp; alert on any increase",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly sendCardRefused = new Counter({
    name: "gateway_send_card_refused_total",
    help: "Send-card jobs refused before anything was sent because the card does not belong to the task (CARD_NOT_OWNED, CARD_AMBIGUOUS) or custody's card is not the stored one (CARD_MISMATCH); alert on any increase",
    labelNames: ["code"] as const,
    registers: [this.registry],
  });
  readonly secretsPurged = new Counter({
    name: "gateway_secrets_purged_total",
    help: "Stored secrets_jwe purged after their retention period",
    registers: [this.registry],
  });
  readonly sendCardLatency = new Histogram({
    name: "gateway_send_card_latency_seconds",
    help: "Time from AUTHENTICATED receipt to Knot's 200 on POST /card",
    buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15],
    registers: [this.registry],
  });
  readonly sendCardRetries = new Counter({
    name: "gateway_send_card_retries_total",
    help: "Send-card retries by reason",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly sendCardOutcomes = new Counter({
    name: "gateway_send_card_jobs_total",
    help: "Finished send-card jobs by outcome and error code",
    labelNames: ["outcome", "code"] as const,
    registers: [this.registry],
  });
  readonly sendCardUncertain = new Counter({
    name: "gateway_send_card_uncertain_posts_total",
    help: "Jobs resumed after a POST /card whose answer was never recorded, by how that was resolved",
    labelNames: ["resolution"] as const,
    registers: [this.registry],
  });
  readonly deadlineMisses = new Counter({
    name: "gateway_send_card_deadline_misses_total",
    help: "Send-card jobs that did not get Knot's 200 within the deadline",
    registers: [this.registry],
  });

  constructor(collectDefaults = true) {
    if (collectDefaults) collectDefaultMetrics({ register: this.registry, prefix: "gateway_" });
  }
}
