/**
 * The gateway's one storage interface. Two drivers implement it (SQLite embedded, PostgreSQL for
 * several instances) and one test suite runs against both, so callers never branch on the driver.
 *
 * Every method that answers a partner resolves only after its transaction is durably committed.
 */

/**
 * A card.issued.secrets record as stored; `secretsJwe` is Dotva's ciphertext exactly as received. Ids
 * are decimal strings (Dotva sends numbers; strings keep every digit).
 */
export interface DotvaCard {
  readonly cardUuid: string;
  readonly cardId: string;
  readonly workspaceId: string;
  readonly cardLast4: string;
  readonly cardBin: string;
  readonly keyFingerprint: string;
  readonly secretsJwe: string;
  readonly receivedAt: number;
}

/**
 * - created: first delivery of this card_uuid;
 * - duplicate: same content again;
 * - conflict: different content, the first delivery stays authoritative (difference recorded);
 * - replaced: different secrets for a card whose stored secrets custody refused, so the new ones win.
 */
export type DotvaStoreOutcome = "created" | "duplicate" | "conflict" | "replaced";

export interface DotvaStoreResult {
  readonly outcome: DotvaStoreOutcome;
  /** Names of the fields that differ from the stored delivery (conflict, replaced). */
  readonly differing: readonly string[];
}

/** What GET /v1/cards shows: everything but the ciphertext. */
export interface CardView extends Omit<DotvaCard, "secretsJwe"> {
  readonly conflicts: number;
  /** Custody's reason code when it refused these secrets; a differing redelivery then replaces them. */
  readonly unusableReason?: string;
  /** When the card first reached Knot. */
  readonly firstSentAt?: number;
  /** When `secrets_jwe` was purged: the card can no longer be sent. */
  readonly secretsPurgedAt?: number;
}

/** The card a send-card job may use: the one bound to the task's user, as stored. */
export interface CardForSend {
  readonly cardUuid: string;
  readonly workspaceId: string;
  readonly cardId: string;
  readonly cardLast4: string;
  readonly cardBin: string;
  readonly keyFingerprint: string;
  /** Empty once purged. */
  readonly secretsJwe: string;
  readonly receivedAt: number;
  readonly firstSentAt?: number;
  readonly secretsPurgedAt?: number;
}

/**
 * - card: exactly one stored card matches the binding;
 * - not_bound: no card with this card_id is bound to this external_user_id (whoever else owns it);
 * - not_found: bound, but Dotva has not delivered that (workspace_id, card_id);
 * - ambiguous: several deliveries (different card_uuid) carry the same (workspace_id, card_id).
 */
export type CardLookup =
  | { readonly kind: "card"; readonly card: CardForSend }
  | { readonly kind: "not_bound" }
  | { readonly kind: "not_found"; readonly workspaceId: string }
  | { readonly kind: "ambiguous"; readonly workspaceId: string; readonly count: number };

/**
 * - created / unchanged: the card is (now) bound to this user;
 * - owned_by_another_user: another external_user_id owns this (workspace_id, card_id);
 * - card_id_ambiguous: this user already owns a card with this card_id in another workspace.
 */
export type BindOutcome = "created" | "unchanged" | "owned_by_another_user" | "card_id_ambiguous";

/**
 * A Dotva delivery that can never become valid: acknowledged, kept for humans, never retried. The body
 * itself is not kept (it may hold a `secrets_jwe`): only why it failed and which members it had.
 */
export interface QuarantinedDelivery {
  readonly digest: string;
  /** Which field broke the contract and how (never a value). */
  readonly reason: string;
  readonly event?: string;
  readonly cardUuid?: string;
  /** Member names of the body (memberNames()), never values. */
  readonly members: string;
  readonly receivedAt: number;
}

export type QuarantineView = Omit<QuarantinedDelivery, "digest"> & { readonly id: number };

/** A partner body we do not act on, kept as its event name, member names and why; never the body. */
export interface UnknownPartnerEvent {
  readonly source: "dotva" | "knot";
  readonly eventType: string;
  readonly digest: string;
  readonly members: string;
  readonly receivedAt: number;
  /** Why it was not understood when the event name is known (e.g. a field of the wrong type). */
  readonly reason?: string;
}

/** A validated Knot webhook, reduced to what storage needs. `digest` deduplicates Knot's retries. */
export interface KnotEventRecord {
  readonly digest: string;
  readonly event: string;
  readonly sessionId?: string;
  readonly taskId?: string;
  readonly externalUserId?: string;
  readonly merchantId?: string;
  readonly merchantName?: string;
  readonly cardId?: string;
  /** CARD_FAILED `data.reason` exactly as Knot sent it. */
  readonly failureReason?: string;
  /** Knot's own timestamp (ms); only a newer event moves a task's state. */
  readonly timestamp: number;
  readonly receivedAt: number;
  /** MERCHANT_STATUS_UPDATE only. */
  readonly availability?: {
    readonly type: string;
    readonly platform: string;
    readonly status: string;
    readonly sdk: string | null;
  };
  /** NEW_TRANSACTIONS_AVAILABLE and UPDATED_TRANSACTIONS_AVAILABLE (`updated` ids, in order). */
  readonly transactions?: { readonly ids: readonly string[] };
  /** AUTHENTICATED only: what to do about the card. */
  readonly sendCard?:
    | {
        readonly send: true;
        readonly deadlineAt: number;
        /** Leases the new job to this worker in the same transaction, saving a claim round-trip. */
        readonly claimBy?: { readonly owner: string; readonly leaseUntil: number };
      }
    | { readonly send: false };
}

/**
 * "recorded_with_job": a new send-card job was created (and leased to `claimBy` if given);
 * "session_conflict": another body was already accepted for this (event, session_id), the only pair
 * Knot's signature covers; nothing was written.
 */
export type KnotRecordOutcome = "recorded" | "recorded_with_job" | "duplicate" | "session_conflict";

export type JobState = "pending" | "running" | "sent" | "failed";

export interface SendCardJob {
  readonly taskId: string;
  readonly knotCardId: string;
  readonly externalUserId: string;
  readonly receivedAt: number;
  readonly deadlineAt: number;
  readonly state: JobState;
  readonly attempts: number;
  /**
   * Set when a POST /card for this job began and no answer was recorded: the card may have reached
   * Knot (a crash between Knot's 200 and finishJob).
   */
  readonly postStartedAt?: number;
}

/**
 * What Knot's own webhooks say about a task's card, the only sign the protocol gives that a POST /card
 * arrived (Knot's /card has no idempotency key):
 * - received: CARD_UPDATING or CARD_UPDATED, Knot has the card;
 * - failed: CARD_FAILED, Knot ended the task (its documented reason with it);
 * - silent: nothing yet.
 */
export type KnotCardWord =
  | { readonly kind: "received"; readonly event: string }
  | { readonly kind: "failed"; readonly reason?: string }
  | { readonly kind: "silent" };

export interface TaskView {
  readonly taskId: string;
  readonly sessionId?: string;
  readonly merchantId?: string;
  readonly merchantName?: string;
  readonly externalUserId?: string;
  readonly cardId?: string;
  readonly state: string;
  readonly failureReason?: string;
  readonly sendCard?: boolean;
  readonly sendCardNote?: string;
  readonly job?: {
    readonly state: JobState;
    readonly attempts: number;
    readonly receivedAt: number;
    readonly deadlineAt: number;
    readonly completedAt?: number;
    readonly errorCode?: string;
    readonly errorMessage?: string;
    readonly knotStatus?: number;
  };
  readonly updatedAt: number;
}

export interface MerchantAvailability {
  readonly merchantId: string;
  readonly merchantName?: string;
  readonly type: string;
  readonly platform: string;
  readonly status: string;
  readonly sdk: string | null;
  readonly updatedAt: number;
}

export interface TransactionEventView {
  readonly event: string;
  readonly externalUserId?: string;
  readonly merchantId?: string;
  readonly merchantName?: string;
  /** UPDATED_TRANSACTIONS_AVAILABLE's `updated[].id`; empty for NEW_TRANSACTIONS_AVAILABLE. */
  readonly transactionIds: readonly string[];
  readonly timestamp: number;
  readonly receivedAt: number;
}

export interface JobOutcome {
  readonly state: "sent" | "failed";
  /** The card that reached Knot (state sent): its first send starts the post-send purge clock. */
  readonly sentCardUuid?: string;
  readonly completedAt: number;
  readonly errorCode?: string;
  readonly errorMessage?: string;
  readonly knotStatus?: number;
}

/** Stored cards that still hold `secrets_jwe`, per `key_fingerprint` exactly as Dotva spelled it. */
export interface StoredSecretsByFingerprint {
  readonly keyFingerprint: string;
  /** Cards whose `secrets_jwe` is not purged. */
  readonly withSecrets: number;
  /** Of those, cards never sent to Knot. */
  readonly unsent: number;
}

export interface GatewayRepository {
  readonly driver: "sqlite" | "postgres";
  /** Applies pending migrations; safe to call from several instances at once. */
  migrate(): Promise<void>;
  storeDotvaCard(card: DotvaCard, contentDigest: string): Promise<DotvaStoreResult>;
  /** Records that custody refused this card's secrets, so a differing redelivery may replace them. */
  markCardUnusable(cardUuid: string, reason: string): Promise<void>;
  /** Keeps a delivery that can never become valid; false when the same bytes were already kept. */
  quarantineDotva(delivery: QuarantinedDelivery): Promise<boolean>;
  listQuarantine(limit: number): Promise<QuarantineView[]>;
  recordUnknownEvent(event: UnknownPartnerEvent): Promise<void>;
  countUnknownEvents(source: "dotva" | "knot"): Promise<number>;
  getCard(cardUuid: string): Promise<CardView | undefined>;
  /**
   * The card Knot's `data.card_id` names for a task of `externalUserId`: only through that user's
   * binding, which fixes the workspace, then by (workspace_id, card_id).
   */
  findCardForTask(externalUserId: string, knotCardId: string): Promise<CardLookup>;
  /** Records that `externalUserId` owns Dotva's (workspace_id, card_id). */
  bindCard(externalUserId: string, workspaceId: string, cardId: string, now: number): Promise<BindOutcome>;
  /**
   * Empties `secrets_jwe` of cards delivered at or before `receivedBefore` or first sent at or before
   * `sentBefore`; returns their card_uuids.
   */
  purgeSecrets(receivedBefore: number, sentBefore: number, now: number): Promise<string[]>;
  /** Unpurged secrets grouped by the stored `key_fingerprint` text (key-usage question before retiring a key). */
  storedSecretsByFingerprint(): Promise<StoredSecretsByFingerprint[]>;
  recordKnotEvent(event: KnotEventRecord): Promise<KnotRecordOutcome>;
  getTask(taskId: string): Promise<TaskView | undefined>;
  listMerchants(): Promise<MerchantAvailability[]>;
  /** Transaction events, newest first, optionally for one external_user_id. */
  listTransactionEvents(externalUserId: string | undefined, limit: number): Promise<TransactionEventView[]>;
  putCardholder(externalUserId: string, profile: unknown, now: number): Promise<"created" | "updated">;
  getCardholder(externalUserId: string): Promise<unknown | undefined>;
  /** Removes a cardholder's profile and card bindings; false when there was neither. */
  deleteCardholder(externalUserId: string): Promise<boolean>;
  /**
   * Takes up to `limit` runnable jobs (pending, or running with an expired lease) whose deadline has
   * not passed, leasing them to `owner` until `leaseUntil`. Two workers never hold the same job.
   */
  claimJobs(owner: string, now: number, leaseUntil: number, limit: number): Promise<SendCardJob[]>;
  /** Extends a lease; false when the job is no longer ours (another worker took it). */
  renewLease(taskId: string, owner: string, leaseUntil: number): Promise<boolean>;
  /**
   * Records, durably and before the request leaves, that a POST /card begins at `at` (and extends the
   * lease); false when the job is no longer ours.
   */
  beginPost(taskId: string, owner: string, at: number, leaseUntil: number): Promise<boolean>;
  /** Knot's CARD_UPDATING / CARD_UPDATED / CARD_FAILED for this task, if any arrived. */
  knotCardWord(taskId: string): Promise<KnotCardWord>;
  /** Records the end of a job; ignored (false) when `owner` no longer holds it. */
  finishJob(taskId: string, owner: string, outcome: JobOutcome): Promise<boolean>;
  /** Marks jobs whose deadline passed without anyone holding them as failed; returns their task ids. */
  expireJobs(now: number): Promise<string[]>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
