/**
 * The operator log and the audit record. One audit record per ReencryptForKnot call, whatever its outcome,
 * written first to the audit chain (CUSTODY_AUDIT_FILE, src/custody/audit/sink.ts: synchronous, before
 * the caller is answered) and then, for operators, to the operator log with the chain's `audit_seq`. It holds only: caller identity and the grant that admitted it, the policy version, request_id, the
 * source-key decision, key fingerprint,
 * recipient thumbprint and the policy rule that allowed (or the reason that refused) it, card last4,
 * outcome (OK or the reason code), gRPC status, duration. Nothing else from the request is ever logged: no JWE,
 * no profile, no fingerprint text that failed to parse, and no error messages from inside the worker.
 */
import { type DestinationStream, type Logger, pino } from "pino";
import type { AuditSink } from "./audit/sink.js";
import { AuditUnavailableError, type GrpcFailure, toGrpcFailure } from "./errors.js";

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

/**
 * Records one finished call. When the chain cannot take the line (disk full, I/O error), `record` is
 * turned into an AUDIT_UNAVAILABLE outcome and that failure is returned: the caller must get it instead
 * of the call's result, so no answered call lacks its line.
 */
export function audit(
  logger: Logger,
  sink: AuditSink | undefined,
  record: { -readonly [K in keyof AuditRecord]: AuditRecord[K] },
): GrpcFailure | undefined {
  let seq: number | undefined;
  let failure: GrpcFailure | undefined;
  if (sink) {
    try {
      seq = sink.append("reencrypt", record);
    } catch (err) {
      logger.error(
        { reason: err instanceof Error ? err.message : String(err), file: sink.file },
        "audit write failed; the call is answered AUDIT_UNAVAILABLE",
      );
      failure = toGrpcFailure(
        new AuditUnavailableError("custody cannot record this call in its audit log; retry later"),
      );
      record.outcome = failure.code;
      record.grpc_status = failure.grpcStatus;
    }
  }
  logger.info(
    { audit: "ReencryptForKnot", ...record, ...(seq !== undefined ? { audit_seq: seq } : {}) },
    "audit",
  );
  return failure;
}
