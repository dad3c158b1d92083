/**
 * custody.v1.CardCustody/ReencryptForKnot: the boundary where a request is checked, in this order —
 * caller grant, per-caller limits, request fields (schema), the caller's recipient policy, the caller's
 * source-key grant, key lookup and state —
 * before one job goes to the worker pool. Every outcome produces one audit line, written before the
 * caller is answered, and, on failure, a status with a reason code (status-details.ts) and a message
 * that never quotes input.
 */
import { type ServerUnaryCall, type sendUnaryData, status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { ReencryptForKnotRequest__Output } from "../contract/generated/custody/v1/ReencryptForKnotRequest.js";
import type { ReencryptForKnotResponse } from "../contract/generated/custody/v1/ReencryptForKnotResponse.js";
import { parseKnotUser } from "../core/card/knot-user.js";
import { normalizeFingerprint } from "../core/crypto/fingerprint.js";
import { type ParsedJwe, parseCompactJwe } from "../core/crypto/jwe-decrypt.js";
import { cachedKnotJwkParser, type KnotRecipient } from "../core/crypto/knot-jwk.js";
import type { AuditSink } from "./audit/sink.js";
import { type AuditRecord, audit } from "./audit.js";
import { DeadlineTimer, effectiveDeadline } from "./call-deadline.js";
import { matcherText, type PeerIdentity } from "./caller-identity.js";
import type { CallerLimits } from "./caller-limits.js";
import { type CallerGrant, decideSourceKey, type Grants } from "./caller-policy.js";
import {
  CallerNotAllowedError,
  DeadlineExceededError,
  type GrpcFailure,
  KeyDisabledError,
  KeyNotFoundError,
  OverloadedError,
  RecipientNotAllowedError,
  RequestInvalidError,
  SourceKeyNotAllowedError,
  toGrpcFailure,
} from "./errors.js";
import type { KeyStore } from "./keystore/key-store.js";
import { type CustodyMetrics, NOT_ADMITTED } from "./metrics.js";
import type { ReencryptRunner } from "./reencryptor.js";
import { failureMetadata } from "./status-details.js";

const REQUEST_ID = /^[A-Za-z0-9._:/-]{1,128}$/;

export interface ServiceDeps {
  readonly keys: KeyStore;
  readonly reencryptor: ReencryptRunner;
  /** The grants in force now: read once per call, so a reload never splits one call across two policies. */
  readonly grants: () => Grants;
  readonly limits: CallerLimits;
  readonly defaultDeadlineMs: number;
  /** No call is worked on longer than this after it arrived, whatever deadline the client sent. */
  readonly maxCallDeadlineMs: number;
  readonly logger: Logger;
  /** The audit chain (CUSTODY_AUDIT_FILE); absent in development without one. */
  readonly audit?: AuditSink;
  /** Resolves the caller from the call's TLS peer certificate, as of now. */
  readonly callerOf: (call: ServerUnaryCall<unknown, unknown>) => PeerIdentity;
  /** Dev plaintext mode: no certificate, so no caller check (logged at start-up). */
  readonly skipCallerCheck: boolean;
  readonly clock?: () => Date;
  readonly metrics?: CustodyMetrics;
}

/** Thrown inside the handler to end the call with a failure the audit line records as is. */
class Refusal extends Error {
  constructor(readonly failure: GrpcFailure) {
    super(failure.code);
  }
}

function refuse(err: unknown): never {
  throw new Refusal(toGrpcFailure(err));
}

export function reencryptHandler(deps: ServiceDeps) {
  const clock = deps.clock ?? (() => new Date());
  const recipientFor = cachedKnotJwkParser();

  return async (
    call: ServerUnaryCall<ReencryptForKnotRequest__Output, ReencryptForKnotResponse>,
    callback: sendUnaryData<ReencryptForKnotResponse>,
  ): Promise<void> => {
    const started = performance.now();
    const deadline = new DeadlineTimer(
      effectiveDeadline(call.getDeadline(), Date.now(), {
        defaultMs: deps.defaultDeadlineMs,
        maxMs: deps.maxCallDeadlineMs,
      }),
      () =>
        new Refusal(
          toGrpcFailure(new DeadlineExceededError("the call's deadline (or custody's cap on it) passed")),
        ),
    );
    const peer = deps.skipCallerCheck ? undefined : deps.callerOf(call);
    const record: { -readonly [K in keyof AuditRecord]: AuditRecord[K] } = {
      caller: peer === undefined ? "(dev plaintext)" : peer.ok ? peer.identity.display : peer.display,
      outcome: "OK",
      grpc_status: status.OK,
      duration_ms: 0,
    };
    let release: (() => void) | undefined;
    let answer: (() => void) | undefined;
    const grants = deps.grants();
    record.policy_version = grants.version;
    try {
      let grant: CallerGrant | undefined;
      if (peer !== undefined) {
        if (!peer.ok) refuse(peer.error);
        grant = grants.grantFor(peer.identity);
        if (!grant)
          refuse(new CallerNotAllowedError("this client certificate may not call ReencryptForKnot"));
        record.caller_rule = matcherText(grant.matcher);
      } else {
        grant = grants.anonymous;
        if (!grant) refuse(new CallerNotAllowedError("no caller identity to authorize"));
      }
      release = deps.limits.tryAcquire(record.caller);
      if (!release)
        refuse(new OverloadedError("per-caller rate or concurrency limit reached; retry with backoff"));

      const req = call.request;
      if (req.request_id !== "" && !REQUEST_ID.test(req.request_id)) {
        refuse(new RequestInvalidError("request_id must be 1-128 characters of A-Z a-z 0-9 . _ : / -"));
      }
      if (req.request_id !== "") record.request_id = req.request_id;

      let fingerprint: string;
      try {
        fingerprint = normalizeFingerprint(req.key_fingerprint);
      } catch (err) {
        refuse(err);
      }
      // Parsed once, here: the worker gets these bytes and does not parse again.
      let jwe: ParsedJwe;
      try {
        jwe = parseCompactJwe(req.secrets_jwe);
      } catch (err) {
        refuse(err);
      }
      let recipient: KnotRecipient;
      try {
        recipient = recipientFor(req.knot_jwk);
      } catch (err) {
        refuse(err);
      }
      record.recipient_thumbprint = recipient.thumbprint;
      let user: ReturnType<typeof parseKnotUser>;
      try {
        user = parseKnotUser(req.user);
      } catch (err) {
        refuse(err);
      }

      const now = clock();
      const decision = await deadline.race(grant.recipients.decide(recipient, now));
      if (!decision.allowed) {
        record.recipient_refusal = decision.reason;
        refuse(
          new RecipientNotAllowedError(
            `knot_jwk is neither pinned nor certified for Knot by an x5c entry granted to this caller (${decision.reason})`,
          ),
        );
      }
      record.recipient_basis = decision.basis;
      if (decision.basis === "x5c") record.recipient_rule = decision.rule;
      if (decision.basis === "allow-any") {
        deps.logger.warn(
          { recipient_thumbprint: recipient.thumbprint },
          "DEV MODE: recipient allowed without policy",
        );
      }

      // Looked up once for the whole call: a reload from here on does not change the key it uses.
      const key = deps.keys.get(fingerprint);
      const source = decideSourceKey(grant, fingerprint, key?.info);
      if (!source.allowed) {
        record.source_key_basis = "denied";
        refuse(
          new SourceKeyNotAllowedError("this caller may not decrypt with the key named by key_fingerprint"),
        );
      }
      record.source_key_basis = source.basis;
      if (!key) refuse(new KeyNotFoundError("no custody key has this fingerprint"));
      record.key_fingerprint = key.info.fingerprint;
      record.key_generation = key.generation;
      if (key.info.state === "disabled")
        refuse(new KeyDisabledError("the key with this fingerprint is disabled"));

      if (Date.now() > deadline.at)
        refuse(new DeadlineExceededError("the deadline passed before custody started"));
      deps.metrics?.keyUses.inc({ fingerprint: key.info.fingerprint, state: key.info.state });
      const result = await deadline.race(
        deps.reencryptor.run(
          { jwe, knotJwk: req.knot_jwk, user, now: now.getTime(), deadline: deadline.at },
          key,
        ),
      );
      if (!result.ok) {
        if (result.internalKind)
          deps.logger.error({ kind: result.internalKind }, "unexpected error in worker");
        throw new Refusal(result.failure);
      }
      record.card_last4 = result.cardLast4;
      answer = () =>
        callback(null, {
          jwe: result.jwe,
          key_fingerprint: key.info.fingerprint,
          recipient_thumbprint: recipient.thumbprint,
          card_last4: result.cardLast4,
          card_bin: result.cardBin,
        });
    } catch (err) {
      if (!(err instanceof Refusal)) {
        // Only the class name: messages of unexpected errors may quote input.
        deps.logger.error(
          { kind: err instanceof Error ? err.name : typeof err },
          "unexpected error in handler",
        );
      }
      const failure = err instanceof Refusal ? err.failure : toGrpcFailure(err);
      record.outcome = failure.code;
      record.grpc_status = failure.grpcStatus;
      answer = () =>
        callback({ code: failure.grpcStatus, details: failure.message, metadata: failureMetadata(failure) });
    } finally {
      deadline.clear();
      release?.();
      record.duration_ms = Math.round((performance.now() - started) * 1000) / 1000;
      if (call.cancelled && record.outcome === "OK") record.outcome = "CANCELLED";
      // The audit line is written before the caller hears anything: an answered call always has its line.
      const unaudited = audit(deps.logger, deps.audit, record);
      if (unaudited) {
        answer = () =>
          callback({
            code: unaudited.grpcStatus,
            details: unaudited.message,
            metadata: failureMetadata(unaudited),
          });
      }
      if (deps.metrics) {
        deps.metrics.calls.inc({
          method: "ReencryptForKnot",
          outcome: record.outcome,
          caller: record.caller_rule !== undefined ? record.caller : NOT_ADMITTED,
        });
        deps.metrics.duration.observe({ method: "ReencryptForKnot" }, record.duration_ms / 1000);
      }
      answer?.();
    }
  };
}
