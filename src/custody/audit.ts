/**
 * The operator log and the audit record. One audit line per ReencryptForKnot call, whatever its outcome,
 * holding only: caller identity and the grant that admitted it, the policy version, request_id, the
 * source-key decision, key fingerprint,
 * recipient thumbprint and the policy rule that allowed (or the reason that refused) it, card last4,
 * outcome (OK or the reason code), gRPC status, duration. Nothing else from the request is ever logged: no JWE,
 * no profile, no fingerprint text that failed to parse, and no error messages from inside the worker.
 */
import { type DestinationStream, type Logger, pino } from "pino";

/**
 * Without a destination, logs go to stdout through an asynchronous buffered writer: a synchronous write
 * per audit line was the largest single cost on the main thread under load. pino flushes the buffer when
 * the process exits (including process.exit after a graceful shutdown).
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "custody" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

export interface AuditRecord {
  readonly caller: string;
  /** The allowlist entry (`uri:...` / `cn:...`) that admitted the caller. */
  readonly caller_rule?: string;
  /** Which grants decided: "global" or "file:<digest prefix>" of the caller policy file. */
  readonly policy_version?: string;
  /** Source side: any (global), fingerprint or label (the grant that allowed the key), or denied. */
  readonly source_key_basis?: string;
  readonly request_id?: string;
  readonly key_fingerprint?: string;
  readonly key_generation?: number;
  readonly recipient_thumbprint?: string;
  readonly recipient_basis?: string;
  /** For basis x5c: the policy entry (root file -> leaf name) the chain satisfied. */
  readonly recipient_rule?: string;
  /** Why the recipient was refused: NOT_PINNED or the x5c reason (LEAF_KEY_USAGE, ...). */
  readonly recipient_refusal?: string;
  readonly card_last4?: string;
  readonly outcome: string;
  readonly grpc_status: number;
  readonly duration_ms: number;
}

export function audit(logger: Logger, record: AuditRecord): void {
  logger.info({ audit: "ReencryptForKnot", ...record }, "audit");
}
