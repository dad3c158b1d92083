/**
 * The repository's queries, written once for both drivers. SQL uses `?` placeholders (the PostgreSQL
 * driver numbers them) and only syntax both engines share: ON CONFLICT upserts, RETURNING.
 */
import type {
  BindOutcome,
  CardLookup,
  CardView,
  DotvaCard,
  DotvaStoreResult,
  JobOutcome,
  KnotCardWord,
  KnotEventRecord,
  KnotRecordOutcome,
  MerchantAvailability,
  QuarantinedDelivery,
  QuarantineView,
  SendCardJob,
  StoredSecretsByFingerprint,
  TaskView,
  TransactionEventView,
  UnknownPartnerEvent,
} from "./repository.js";

export type Row = Record<string, unknown>;

/** One statement runner inside a transaction (or autocommit for reads). */
export interface SqlRunner {
  query(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  execute(sql: string, params?: readonly unknown[]): Promise<number>;
}

const num = (v: unknown): number => Number(v);
const optStr = (v: unknown): string | undefined => (v === null || v === undefined ? undefined : String(v));
const optNum = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));

/** The stored fields a redelivery is compared on, in the order they are reported. */
const DOTVA_FIELDS = [
  ["card_id", "cardId"],
  ["workspace_id", "workspaceId"],
  ["card_last4", "cardLast4"],
  ["card_bin", "cardBin"],
  ["key_fingerprint", "keyFingerprint"],
  ["secrets_jwe", "secretsJwe"],
] as const;

export async function storeDotvaCard(
  tx: SqlRunner,
  card: DotvaCard,
  contentDigest: string,
): Promise<DotvaStoreResult> {
  const inserted = await tx.execute(
    `INSERT INTO dotva_cards (card_uuid, card_id, workspace_id, card_last4, card_bin, key_fingerprint,
       secrets_jwe, received_at, content_digest)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (card_uuid) DO NOTHING`,
    [
      card.cardUuid,
      card.cardId,
      card.workspaceId,
      card.cardLast4,
      card.cardBin,
      card.keyFingerprint,
      card.secretsJwe,
      card.receivedAt,
      contentDigest,
    ],
  );
  if (inserted === 1) return { outcome: "created", differing: [] };
  const rows = await tx.query(
    `SELECT card_id, workspace_id, card_last4, card_bin, key_fingerprint, secrets_jwe, content_digest,
       unusable_reason FROM dotva_cards WHERE card_uuid = ?`,
    [card.cardUuid],
  );
  const existing = rows[0]!;
  if (existing.content_digest === contentDigest) return { outcome: "duplicate", differing: [] };
  const differing = DOTVA_FIELDS.filter(([column, field]) => String(existing[column]) !== card[field]).map(
    ([column]) => column,
  );
  // The first secrets stay authoritative unless custody already refused them: then the redelivery is
  // the only chance this card has, and it takes their place.
  const replace = existing.unusable_reason !== null && differing.includes("secrets_jwe");
  if (replace) {
    await tx.execute(
      `UPDATE dotva_cards SET card_id = ?, workspace_id = ?, card_last4 = ?, card_bin = ?, key_fingerprint = ?,
         secrets_jwe = ?, content_digest = ?, unusable_reason = NULL WHERE card_uuid = ?`,
      [
        card.cardId,
        card.workspaceId,
        card.cardLast4,
        card.cardBin,
        card.keyFingerprint,
        card.secretsJwe,
        contentDigest,
        card.cardUuid,
      ],
    );
  }
  const outcome = replace ? "replaced" : "conflict";
  await tx.execute(
    `INSERT INTO dotva_conflicts (card_uuid, content_digest, received_at, outcome, differing)
     VALUES (?, ?, ?, ?, ?)`,
    [card.cardUuid, contentDigest, card.receivedAt, outcome, differing.join(",")],
  );
  return { outcome, differing };
}

export async function markCardUnusable(tx: SqlRunner, cardUuid: string, reason: string): Promise<void> {
  await tx.execute("UPDATE dotva_cards SET unusable_reason = ? WHERE card_uuid = ?", [reason, cardUuid]);
}

export async function quarantineDotva(tx: SqlRunner, d: QuarantinedDelivery): Promise<boolean> {
  const n = await tx.execute(
    `INSERT INTO dotva_quarantine (digest, reason, event, card_uuid, members, received_at)
     VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING`,
    [d.digest, d.reason, d.event ?? null, d.cardUuid ?? null, d.members, d.receivedAt],
  );
  return n === 1;
}

export async function listQuarantine(tx: SqlRunner, limit: number): Promise<QuarantineView[]> {
  const rows = await tx.query(
    "SELECT id, reason, event, card_uuid, members, received_at FROM dotva_quarantine ORDER BY id DESC LIMIT ?",
    [limit],
  );
  return rows.map((r) => ({
    id: num(r.id),
    reason: String(r.reason),
    members: String(r.members),
    ...(r.event !== null ? { event: String(r.event) } : {}),
    ...(r.card_uuid !== null ? { cardUuid: String(r.card_uuid) } : {}),
    receivedAt: num(r.received_at),
  }));
}

export async function recordUnknownEvent(tx: SqlRunner, e: UnknownPartnerEvent): Promise<void> {
  await tx.execute(
    `INSERT INTO unknown_events (source, event_type, digest, members, received_at, reason) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (source, digest) DO NOTHING`,
    [e.source, e.eventType, e.digest, e.members, e.receivedAt, e.reason ?? null],
  );
}

export async function countUnknownEvents(tx: SqlRunner, source: string): Promise<number> {
  const rows = await tx.query("SELECT COUNT(*) AS n FROM unknown_events WHERE source = ?", [source]);
  return num(rows[0]?.n ?? 0);
}

export async function getCard(tx: SqlRunner, cardUuid: string): Promise<CardView | undefined> {
  const rows = await tx.query(
    `SELECT c.card_uuid, c.card_id, c.workspace_id, c.card_last4, c.card_bin, c.key_fingerprint,
       c.unusable_reason, c.received_at, c.first_sent_at, c.secrets_purged_at,
       (SELECT COUNT(*) FROM dotva_conflicts x WHERE x.card_uuid = c.card_uuid) AS conflicts
     FROM dotva_cards c WHERE c.card_uuid = ?`,
    [cardUuid],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    cardUuid: String(r.card_uuid),
    cardId: String(r.card_id),
    workspaceId: String(r.workspace_id),
    cardLast4: String(r.card_last4),
    cardBin: String(r.card_bin),
    keyFingerprint: String(r.key_fingerprint),
    receivedAt: num(r.received_at),
    conflicts: num(r.conflicts),
    ...(r.unusable_reason !== null ? { unusableReason: String(r.unusable_reason) } : {}),
    ...(r.first_sent_at !== null ? { firstSentAt: num(r.first_sent_at) } : {}),
    ...(r.secrets_purged_at !== null ? { secretsPurgedAt: num(r.secrets_purged_at) } : {}),
  };
}

export async function findCardForTask(
  tx: SqlRunner,
  externalUserId: string,
  knotCardId: string,
): Promise<CardLookup> {
  // Only through the user's own binding: a card_id alone, matched across workspaces, would let a task
  // of one user name another user's card.
  const owners = await tx.query(
    "SELECT workspace_id FROM card_owners WHERE external_user_id = ? AND card_id = ?",
    [externalUserId, knotCardId],
  );
  const owner = owners[0];
  if (!owner) return { kind: "not_bound" };
  const workspaceId = String(owner.workspace_id);
  const rows = await tx.query(
    `SELECT card_uuid, workspace_id, card_id, card_last4, card_bin, key_fingerprint, secrets_jwe, received_at,
       first_sent_at, secrets_purged_at
     FROM dotva_cards WHERE workspace_id = ? AND card_id = ?`,
    [workspaceId, knotCardId],
  );
  if (rows.length === 0) return { kind: "not_found", workspaceId };
  if (rows.length > 1) return { kind: "ambiguous", workspaceId, count: rows.length };
  const r = rows[0]!;
  return {
    kind: "card",
    card: {
      cardUuid: String(r.card_uuid),
      workspaceId: String(r.workspace_id),
      cardId: String(r.card_id),
      cardLast4: String(r.card_last4),
      cardBin: String(r.card_bin),
      keyFingerprint: String(r.key_fingerprint),
      secretsJwe: String(r.secrets_jwe),
      receivedAt: num(r.received_at),
      ...(r.first_sent_at !== null ? { firstSentAt: num(r.first_sent_at) } : {}),
      ...(r.secrets_purged_at !== null ? { secretsPurgedAt: num(r.secrets_purged_at) } : {}),
    },
  };
}

export async function bindCard(
  tx: SqlRunner,
  externalUserId: string,
  workspaceId: string,
  cardId: string,
  now: number,
): Promise<BindOutcome> {
  const owner = await tx.query(
    "SELECT external_user_id FROM card_owners WHERE workspace_id = ? AND card_id = ?",
    [workspaceId, cardId],
  );
  if (owner[0])
    return String(owner[0].external_user_id) === externalUserId ? "unchanged" : "owned_by_another_user";
  const inserted = await tx.execute(
    `INSERT INTO card_owners (workspace_id, card_id, external_user_id, bound_at) VALUES (?, ?, ?, ?)
     ON CONFLICT DO NOTHING`,
    [workspaceId, cardId, externalUserId, now],
  );
  if (inserted === 1) return "created";
  // Lost a race for the same card, or the user owns this card_id in another workspace already.
  const again = await tx.query(
    "SELECT external_user_id FROM card_owners WHERE workspace_id = ? AND card_id = ?",
    [workspaceId, cardId],
  );
  if (again[0])
    return String(again[0].external_user_id) === externalUserId ? "unchanged" : "owned_by_another_user";
  return "card_id_ambiguous";
}

export async function purgeSecrets(
  tx: SqlRunner,
  receivedBefore: number,
  sentBefore: number,
  now: number,
): Promise<string[]> {
  const rows = await tx.query(
    `UPDATE dotva_cards SET secrets_jwe = '', secrets_purged_at = ?
     WHERE secrets_purged_at IS NULL AND (received_at <= ? OR first_sent_at <= ?)
     RETURNING card_uuid`,
    [now, receivedBefore, sentBefore],
  );
  return rows.map((r) => String(r.card_uuid));
}

export async function storedSecretsByFingerprint(tx: SqlRunner): Promise<StoredSecretsByFingerprint[]> {
  const rows = await tx.query(
    `SELECT key_fingerprint, COUNT(*) AS with_secrets,
       SUM(CASE WHEN first_sent_at IS NULL THEN 1 ELSE 0 END) AS unsent
     FROM dotva_cards WHERE secrets_purged_at IS NULL
     GROUP BY key_fingerprint ORDER BY key_fingerprint`,
  );
  return rows.map((r) => ({
    keyFingerprint: String(r.key_fingerprint),
    withSecrets: num(r.with_secrets),
    unsent: num(r.unsent),
  }));
}

export async function deleteCardholder(tx: SqlRunner, externalUserId: string): Promise<boolean> {
  const profiles = await tx.execute("DELETE FROM cardholders WHERE external_user_id = ?", [externalUserId]);
  const bindings = await tx.execute("DELETE FROM card_owners WHERE external_user_id = ?", [externalUserId]);
  return profiles + bindings > 0;
}

const SEND_CARD_FALSE_NOTE =
  "AUTHENTICATED carried send_card=false (Knot needs no card for this task, e.g. Google Keychain or MassSwitcher); nothing sent";

export async function recordKnotEvent(tx: SqlRunner, e: KnotEventRecord): Promise<KnotRecordOutcome> {
  if (e.sessionId !== undefined) {
    // Knot's signature covers only (event, session_id) and the body's length: the first body accepted
    // for the pair is the one Knot signed as far as we can tell, and any other body under it is refused.
    const claimed = await tx.execute(
      `INSERT INTO knot_session_events (event, session_id, digest, task_id, received_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (event, session_id) DO NOTHING`,
      [e.event, e.sessionId, e.digest, e.taskId ?? null, e.receivedAt],
    );
    if (claimed === 0) {
      const first = await tx.query(
        "SELECT digest FROM knot_session_events WHERE event = ? AND session_id = ?",
        [e.event, e.sessionId],
      );
      if (String(first[0]?.digest) !== e.digest) return "session_conflict";
    }
  }
  const inserted = await tx.execute(
    `INSERT INTO knot_events (digest, event, session_id, task_id, external_user_id, merchant_id,
       knot_timestamp, received_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING`,
    [
      e.digest,
      e.event,
      e.sessionId ?? null,
      e.taskId ?? null,
      e.externalUserId ?? null,
      e.merchantId ?? null,
      e.timestamp,
      e.receivedAt,
    ],
  );
  if (inserted === 0) return "duplicate";

  if (e.taskId !== undefined) {
    const sendCard = e.sendCard === undefined ? null : e.sendCard.send ? 1 : 0;
    const note = e.sendCard?.send === false ? SEND_CARD_FALSE_NOTE : null;
    // Knot may deliver out of order (retries minutes apart): only a newer event moves the state,
    // while identifying fields are filled in from whichever event has them.
    await tx.execute(
      `INSERT INTO knot_tasks (task_id, session_id, merchant_id, merchant_name, external_user_id, card_id,
         state, state_timestamp, failure_reason, send_card, send_card_note, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (task_id) DO UPDATE SET
         session_id = COALESCE(knot_tasks.session_id, excluded.session_id),
         merchant_id = COALESCE(knot_tasks.merchant_id, excluded.merchant_id),
         merchant_name = COALESCE(knot_tasks.merchant_name, excluded.merchant_name),
         external_user_id = COALESCE(knot_tasks.external_user_id, excluded.external_user_id),
         card_id = COALESCE(knot_tasks.card_id, excluded.card_id),
         state = CASE WHEN excluded.state_timestamp >= knot_tasks.state_timestamp
                      THEN excluded.state ELSE knot_tasks.state END,
         failure_reason = CASE WHEN excluded.state_timestamp >= knot_tasks.state_timestamp
                      THEN excluded.failure_reason ELSE knot_tasks.failure_reason END,
         state_timestamp = CASE WHEN excluded.state_timestamp >= knot_tasks.state_timestamp
                      THEN excluded.state_timestamp ELSE knot_tasks.state_timestamp END,
         send_card = COALESCE(excluded.send_card, knot_tasks.send_card),
         send_card_note = COALESCE(excluded.send_card_note, knot_tasks.send_card_note),
         updated_at = excluded.updated_at`,
      [
        e.taskId,
        e.sessionId ?? null,
        e.merchantId ?? null,
        e.merchantName ?? null,
        e.externalUserId ?? null,
        e.cardId ?? null,
        e.event,
        e.timestamp,
        e.failureReason ?? null,
        sendCard,
        note,
        e.receivedAt,
      ],
    );
    if (e.sendCard?.send === true) {
      const claim = e.sendCard.claimBy;
      const created = await tx.execute(
        `INSERT INTO send_jobs (task_id, knot_card_id, external_user_id, received_at, deadline_at, state, attempts,
           lease_owner, lease_until)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_id) DO NOTHING`,
        [
          e.taskId,
          e.cardId ?? "",
          e.externalUserId ?? "",
          e.receivedAt,
          e.sendCard.deadlineAt,
          claim ? "running" : "pending",
          claim ? 1 : 0,
          claim?.owner ?? null,
          claim?.leaseUntil ?? null,
        ],
      );
      // A task already has its job when Knot sent a second, different AUTHENTICATED for it.
      if (created === 1) return "recorded_with_job";
    }
  }

  if (e.availability && e.merchantId !== undefined) {
    const a = e.availability;
    await tx.execute(
      `INSERT INTO knot_merchant_availability (merchant_id, type, platform, sdk_key, sdk, merchant_name, status,
         status_timestamp, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (merchant_id, type, platform, sdk_key) DO UPDATE SET
         merchant_name = COALESCE(excluded.merchant_name, knot_merchant_availability.merchant_name),
         status = excluded.status,
         status_timestamp = excluded.status_timestamp, updated_at = excluded.updated_at
       WHERE excluded.status_timestamp >= knot_merchant_availability.status_timestamp`,
      [
        e.merchantId,
        a.type,
        a.platform,
        a.sdk === null ? "-" : `v${a.sdk}`,
        a.sdk,
        e.merchantName ?? null,
        a.status,
        e.timestamp,
        e.receivedAt,
      ],
    );
  }
  if (e.transactions) {
    await tx.execute(
      `INSERT INTO knot_transaction_events (digest, event, external_user_id, merchant_id, merchant_name,
         transaction_ids, knot_timestamp, received_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      [
        e.digest,
        e.event,
        e.externalUserId ?? null,
        e.merchantId ?? null,
        e.merchantName ?? null,
        JSON.stringify(e.transactions.ids),
        e.timestamp,
        e.receivedAt,
      ],
    );
  }
  return "recorded";
}

export async function getTask(tx: SqlRunner, taskId: string): Promise<TaskView | undefined> {
  const rows = await tx.query(
    `SELECT t.*, j.state AS job_state, j.attempts, j.received_at AS job_received_at, j.deadline_at,
       j.completed_at, j.error_code, j.error_message, j.knot_status
     FROM knot_tasks t LEFT JOIN send_jobs j ON j.task_id = t.task_id WHERE t.task_id = ?`,
    [taskId],
  );
  const r = rows[0];
  if (!r) return undefined;
  const jobState = optStr(r.job_state);
  return {
    taskId: String(r.task_id),
    sessionId: optStr(r.session_id),
    merchantId: optStr(r.merchant_id),
    merchantName: optStr(r.merchant_name),
    externalUserId: optStr(r.external_user_id),
    cardId: optStr(r.card_id),
    state: String(r.state),
    failureReason: optStr(r.failure_reason),
    sendCard: r.send_card === null || r.send_card === undefined ? undefined : num(r.send_card) === 1,
    sendCardNote: optStr(r.send_card_note),
    job:
      jobState === undefined
        ? undefined
        : {
            state: jobState as NonNullable<TaskView["job"]>["state"],
            attempts: num(r.attempts),
            receivedAt: num(r.job_received_at),
            deadlineAt: num(r.deadline_at),
            completedAt: optNum(r.completed_at),
            errorCode: optStr(r.error_code),
            errorMessage: optStr(r.error_message),
            knotStatus: optNum(r.knot_status),
          },
    updatedAt: num(r.updated_at),
  };
}

export async function listMerchants(tx: SqlRunner): Promise<MerchantAvailability[]> {
  const rows = await tx.query(
    "SELECT * FROM knot_merchant_availability ORDER BY merchant_id, type, platform, sdk_key",
  );
  return rows.map((r) => ({
    merchantId: String(r.merchant_id),
    merchantName: optStr(r.merchant_name),
    type: String(r.type),
    platform: String(r.platform),
    sdk: r.sdk === null || r.sdk === undefined ? null : String(r.sdk),
    status: String(r.status),
    updatedAt: num(r.updated_at),
  }));
}

export async function listTransactionEvents(
  tx: SqlRunner,
  externalUserId: string | undefined,
  limit: number,
): Promise<TransactionEventView[]> {
  const rows = await tx.query(
    `SELECT * FROM knot_transaction_events ${externalUserId === undefined ? "" : "WHERE external_user_id = ?"}
     ORDER BY id DESC LIMIT ?`,
    externalUserId === undefined ? [limit] : [externalUserId, limit],
  );
  return rows.map((r) => ({
    event: String(r.event),
    externalUserId: optStr(r.external_user_id),
    merchantId: optStr(r.merchant_id),
    merchantName: optStr(r.merchant_name),
    transactionIds: JSON.parse(String(r.transaction_ids)) as string[],
    timestamp: num(r.knot_timestamp),
    receivedAt: num(r.received_at),
  }));
}

export async function putCardholder(
  tx: SqlRunner,
  externalUserId: string,
  profile: unknown,
  now: number,
): Promise<"created" | "updated"> {
  const existed = await tx.query("SELECT 1 AS one FROM cardholders WHERE external_user_id = ?", [
    externalUserId,
  ]);
  await tx.execute(
    `INSERT INTO cardholders (external_user_id, profile, updated_at) VALUES (?, ?, ?)
     ON CONFLICT (external_user_id) DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at`,
    [externalUserId, JSON.stringify(profile), now],
  );
  return existed.length > 0 ? "updated" : "created";
}

export async function getCardholder(tx: SqlRunner, externalUserId: string): Promise<unknown | undefined> {
  const rows = await tx.query("SELECT profile FROM cardholders WHERE external_user_id = ?", [externalUserId]);
  return rows[0] ? JSON.parse(String(rows[0].profile)) : undefined;
}

function toJob(r: Row): SendCardJob {
  return {
    taskId: String(r.task_id),
    knotCardId: String(r.knot_card_id),
    externalUserId: String(r.external_user_id),
    receivedAt: num(r.received_at),
    deadlineAt: num(r.deadline_at),
    state: String(r.state) as SendCardJob["state"],
    attempts: num(r.attempts),
    ...(r.post_started_at !== null && r.post_started_at !== undefined
      ? { postStartedAt: num(r.post_started_at) }
      : {}),
  };
}

/** `lockClause` is PostgreSQL's `FOR UPDATE SKIP LOCKED`; SQLite has one writer and needs none. */
export async function claimJobs(
  tx: SqlRunner,
  owner: string,
  now: number,
  leaseUntil: number,
  limit: number,
  lockClause: string,
): Promise<SendCardJob[]> {
  const rows = await tx.query(
    `UPDATE send_jobs SET state = 'running', lease_owner = ?, lease_until = ?, attempts = attempts + 1
     WHERE task_id IN (
       SELECT task_id FROM send_jobs
       WHERE state IN ('pending', 'running') AND (lease_until IS NULL OR lease_until < ?) AND deadline_at > ?
       ORDER BY deadline_at LIMIT ? ${lockClause})
     RETURNING *`,
    [owner, leaseUntil, now, now, limit],
  );
  return rows.map(toJob);
}

export async function renewLease(
  tx: SqlRunner,
  taskId: string,
  owner: string,
  leaseUntil: number,
): Promise<boolean> {
  const n = await tx.execute(
    "UPDATE send_jobs SET lease_until = ? WHERE task_id = ? AND lease_owner = ? AND state = 'running'",
    [leaseUntil, taskId, owner],
  );
  return n === 1;
}

export async function beginPost(
  tx: SqlRunner,
  taskId: string,
  owner: string,
  at: number,
  leaseUntil: number,
): Promise<boolean> {
  const n = await tx.execute(
    `UPDATE send_jobs SET post_started_at = ?, lease_until = ?
     WHERE task_id = ? AND lease_owner = ? AND state = 'running'`,
    [at, leaseUntil, taskId, owner],
  );
  return n === 1;
}

export async function knotCardWord(tx: SqlRunner, taskId: string): Promise<KnotCardWord> {
  const rows = await tx.query(
    `SELECT DISTINCT event FROM knot_events
     WHERE task_id = ? AND event IN ('CARD_UPDATING', 'CARD_UPDATED', 'CARD_FAILED')`,
    [taskId],
  );
  const events = rows.map((r) => String(r.event));
  const received = events.find((e) => e !== "CARD_FAILED");
  if (received !== undefined) return { kind: "received", event: received };
  if (events.length === 0) return { kind: "silent" };
  const task = await tx.query("SELECT failure_reason FROM knot_tasks WHERE task_id = ?", [taskId]);
  return { kind: "failed", ...(task[0]?.failure_reason ? { reason: String(task[0].failure_reason) } : {}) };
}

export async function finishJob(
  tx: SqlRunner,
  taskId: string,
  owner: string,
  o: JobOutcome,
): Promise<boolean> {
  const n = await tx.execute(
    `UPDATE send_jobs SET state = ?, completed_at = ?, error_code = ?, error_message = ?, knot_status = ?,
       lease_owner = NULL, lease_until = NULL
     WHERE task_id = ? AND lease_owner = ? AND state = 'running'`,
    [
      o.state,
      o.completedAt,
      o.errorCode ?? null,
      o.errorMessage ?? null,
      o.knotStatus ?? null,
      taskId,
      owner,
    ],
  );
  if (n === 1 && o.state === "sent" && o.sentCardUuid !== undefined) {
    await tx.execute(
      "UPDATE dotva_cards SET first_sent_at = COALESCE(first_sent_at, ?) WHERE card_uuid = ?",
      [o.completedAt, o.sentCardUuid],
    );
  }
  return n === 1;
}

export async function expireJobs(tx: SqlRunner, now: number): Promise<string[]> {
  const rows = await tx.query(
    `UPDATE send_jobs SET state = 'failed', completed_at = ?, error_code = 'DEADLINE_EXCEEDED',
       error_message = COALESCE(error_message, 'no attempt finished before the deadline'),
       lease_owner = NULL, lease_until = NULL
     WHERE state IN ('pending', 'running') AND deadline_at <= ? AND (lease_until IS NULL OR lease_until < ?)
     RETURNING task_id`,
    [now, now, now],
  );
  return rows.map((r) => String(r.task_id));
}
