/**
 * The gateway's one storage interface. Two drivers implement it (SQLite embedded, PostgreSQL for
 * several instances) and one test suite runs against both, so callers never branch on the driver.
 *
 * Every method that answers a partner resolves only after its transaction is durably committed.
 */

/** A card.issued.secrets record as stored; `secretsJwe` is Dotva's ciphertext exactly as received. */
export interface DotvaCard {
  readonly cardUuid: string;
  readonly cardId: string;
  readonly workspaceId: string;
  readonly cardLast4: string;
  readonly cardBin: string;
  readonly keyFingerprint: string;
  readonly secretsJwe: string;
  readonly eventCreatedAt: string;
  readonly receivedAt: number;
}

export type DotvaStoreOutcome = "created" | "duplicate" | "conflict";

/** What GET /v1/cards shows: everything but the ciphertext. */
export interface CardView extends Omit<DotvaCard, "secretsJwe"> {
  readonly conflicts: number;
}

export interface UnknownPartnerEvent {
  readonly source: "dotva" | "knot";
  readonly eventType: string;
  readonly digest: string;
  readonly body: string;
  readonly receivedAt: number;
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
  readonly failureReason?: string;
  /** Knot's own timestamp (ms); only a newer event moves a task's state. */
  readonly timestamp: number;
  readonly receivedAt: number;
  readonly body: string;
  /** MERCHANT_STATUS_UPDATE only. */
  readonly availability?: {
    readonly type: string;
    readonly platform: string;
    readonly status: string;
    readonly sdk?: string;
  };
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

/** "recorded_with_job": a new send-card job was created (and leased to `claimBy` if given). */
export type KnotRecordOutcome = "recorded" | "recorded_with_job" | "duplicate";

export type JobState = "pending" | "running" | "sent" | "failed";

export interface SendCardJob {
  readonly taskId: string;
  readonly knotCardId: string;
  readonly externalUserId: string;
  readonly receivedAt: number;
  readonly deadlineAt: number;
  readonly state: JobState;
  readonly attempts: number;
}

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
  readonly sdk?: string;
  readonly updatedAt: number;
}

export interface JobOutcome {
  readonly state: "sent" | "failed";
  readonly completedAt: number;
  readonly errorCode?: string;
  readonly errorMessage?: string;
  readonly knotStatus?: number;
}

export interface GatewayRepository {
  readonly driver: "sqlite" | "postgres";
  /** Applies pending migrations; safe to call from several instances at once. */
  migrate(): Promise<void>;
  storeDotvaCard(card: DotvaCard, contentDigest: string): Promise<DotvaStoreOutcome>;
  recordUnknownEvent(event: UnknownPartnerEvent): Promise<void>;
  countUnknownEvents(source: "dotva" | "knot"): Promise<number>;
  getCard(cardUuid: string): Promise<CardView | undefined>;
  /** Knot's data.card_id is ours: matched to the Dotva card_id first, then card_uuid. */
  findCardForKnot(
    knotCardId: string,
  ): Promise<Pick<DotvaCard, "cardUuid" | "secretsJwe" | "keyFingerprint"> | undefined>;
  recordKnotEvent(event: KnotEventRecord): Promise<KnotRecordOutcome>;
  getTask(taskId: string): Promise<TaskView | undefined>;
  listMerchants(): Promise<MerchantAvailability[]>;
  putCardholder(externalUserId: string, profile: unknown, now: number): Promise<"created" | "updated">;
  getCardholder(externalUserId: string): Promise<unknown | undefined>;
  /**
   * Takes up to `limit` runnable jobs (pending, or running with an expired lease) whose deadline has
   * not passed, leasing them to `owner` until `leaseUntil`. Two workers never hold the same job.
   */
  claimJobs(owner: string, now: number, leaseUntil: number, limit: number): Promise<SendCardJob[]>;
  /** Extends a lease; false when the job is no longer ours (another worker took it). */
  renewLease(taskId: string, owner: string, leaseUntil: number): Promise<boolean>;
  /** Records the end of a job; ignored (false) when `owner` no longer holds it. */
  finishJob(taskId: string, owner: string, outcome: JobOutcome): Promise<boolean>;
  /** Marks jobs whose deadline passed without anyone holding them as failed; returns their task ids. */
  expireJobs(now: number): Promise<string[]>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
