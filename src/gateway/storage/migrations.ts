/**
 * Versioned schema migrations, applied in order at start-up. A migration is never edited once
 * released: changes come as a new version. Each carries the SQL for both drivers so the schemas stay
 * the same shape.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sqlite: string;
  readonly postgres: string;
}

const v1Tables = (t: { bigint: string; serial: string }) => `
CREATE TABLE dotva_cards (
  card_uuid TEXT PRIMARY KEY,
  card_id TEXT NOT NULL,
  workspace_id TEXT NOT NULL,
  card_last4 TEXT NOT NULL,
  card_bin TEXT NOT NULL,
  key_fingerprint TEXT NOT NULL,
  secrets_jwe TEXT NOT NULL,
  event_created_at TEXT NOT NULL,
  received_at ${t.bigint} NOT NULL,
  content_digest TEXT NOT NULL
);
CREATE INDEX dotva_cards_card_id ON dotva_cards (card_id);
CREATE TABLE dotva_conflicts (
  id ${t.serial},
  card_uuid TEXT NOT NULL,
  content_digest TEXT NOT NULL,
  received_at ${t.bigint} NOT NULL
);
CREATE INDEX dotva_conflicts_card ON dotva_conflicts (card_uuid);
CREATE TABLE unknown_events (
  id ${t.serial},
  source TEXT NOT NULL,
  event_type TEXT NOT NULL,
  digest TEXT NOT NULL,
  body TEXT NOT NULL,
  received_at ${t.bigint} NOT NULL,
  UNIQUE (source, digest)
);
CREATE TABLE knot_events (
  id ${t.serial},
  digest TEXT NOT NULL UNIQUE,
  event TEXT NOT NULL,
  session_id TEXT,
  task_id TEXT,
  external_user_id TEXT,
  merchant_id TEXT,
  knot_timestamp ${t.bigint} NOT NULL,
  received_at ${t.bigint} NOT NULL,
  body TEXT NOT NULL
);
CREATE INDEX knot_events_task ON knot_events (task_id);
CREATE TABLE knot_tasks (
  task_id TEXT PRIMARY KEY,
  session_id TEXT,
  merchant_id TEXT,
  merchant_name TEXT,
  external_user_id TEXT,
  card_id TEXT,
  state TEXT NOT NULL,
  state_timestamp ${t.bigint} NOT NULL,
  failure_reason TEXT,
  send_card INTEGER,
  send_card_note TEXT,
  updated_at ${t.bigint} NOT NULL
);
CREATE TABLE knot_merchants (
  merchant_id TEXT NOT NULL,
  type TEXT NOT NULL,
  platform TEXT NOT NULL,
  merchant_name TEXT,
  status TEXT NOT NULL,
  sdk TEXT,
  status_timestamp ${t.bigint} NOT NULL,
  updated_at ${t.bigint} NOT NULL,
  PRIMARY KEY (merchant_id, type, platform)
);
CREATE TABLE cardholders (
  external_user_id TEXT PRIMARY KEY,
  profile TEXT NOT NULL,
  updated_at ${t.bigint} NOT NULL
);
CREATE TABLE send_jobs (
  task_id TEXT PRIMARY KEY,
  knot_card_id TEXT NOT NULL,
  external_user_id TEXT NOT NULL,
  received_at ${t.bigint} NOT NULL,
  deadline_at ${t.bigint} NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  lease_owner TEXT,
  lease_until ${t.bigint},
  completed_at ${t.bigint},
  error_code TEXT,
  error_message TEXT,
  knot_status INTEGER
);
CREATE INDEX send_jobs_runnable ON send_jobs (state, deadline_at);
`;

/**
 * Partner contracts as documented (issue 12): Dotva's envelope has no created_at; a card whose secrets
 * custody refused can be replaced by a redelivery; differing redeliveries say which fields differ;
 * deliveries that can never become valid are quarantined instead of refused; unrecognised partner
 * bodies say why; merchant availability is per SDK version too; Knot transaction events are kept.
 *
 * `sdk_key` makes the nullable SDK version part of a primary key: 'v' || sdk for a version, '-' for
 * none (PostgreSQL allows no NULL in a primary key, and the two forms cannot collide).
 */
const v2Tables = (t: { bigint: string; serial: string }) => `
ALTER TABLE dotva_cards DROP COLUMN event_created_at;
ALTER TABLE dotva_cards ADD COLUMN unusable_reason TEXT;
ALTER TABLE dotva_conflicts ADD COLUMN outcome TEXT NOT NULL DEFAULT 'conflict';
ALTER TABLE dotva_conflicts ADD COLUMN differing TEXT NOT NULL DEFAULT '';
CREATE TABLE dotva_quarantine (
  id ${t.serial},
  digest TEXT NOT NULL UNIQUE,
  reason TEXT NOT NULL,
  event TEXT,
  card_uuid TEXT,
  body TEXT NOT NULL,
  received_at ${t.bigint} NOT NULL
);
ALTER TABLE unknown_events ADD COLUMN reason TEXT;
CREATE TABLE knot_merchant_availability (
  merchant_id TEXT NOT NULL,
  type TEXT NOT NULL,
  platform TEXT NOT NULL,
  sdk_key TEXT NOT NULL,
  sdk TEXT,
  merchant_name TEXT,
  status TEXT NOT NULL,
  status_timestamp ${t.bigint} NOT NULL,
  updated_at ${t.bigint} NOT NULL,
  PRIMARY KEY (merchant_id, type, platform, sdk_key)
);
INSERT INTO knot_merchant_availability (merchant_id, type, platform, sdk_key, sdk, merchant_name, status,
  status_timestamp, updated_at)
  SELECT merchant_id, type, platform, COALESCE('v' || sdk, '-'), sdk, merchant_name, status, status_timestamp,
    updated_at FROM knot_merchants;
DROP TABLE knot_merchants;
CREATE TABLE knot_transaction_events (
  id ${t.serial},
  digest TEXT NOT NULL UNIQUE,
  event TEXT NOT NULL,
  external_user_id TEXT,
  merchant_id TEXT,
  merchant_name TEXT,
  transaction_ids TEXT NOT NULL,
  knot_timestamp ${t.bigint} NOT NULL,
  received_at ${t.bigint} NOT NULL
);
CREATE INDEX knot_transaction_events_user ON knot_transaction_events (external_user_id);
`;

/**
 * Issue 13 (replay, ownership, data at rest):
 * - no raw partner body is stored any more: quarantined and unrecognised deliveries keep their reason
 *   and the member names they had, Knot events the fields already extracted;
 * - `secrets_jwe` is purged (emptied, `secrets_purged_at` set) after a retention period, or soon after
 *   the card was first sent (`first_sent_at`);
 * - one accepted body per Knot (event, session_id), the pair Knot's signature covers;
 * - the card of a Knot task must be bound to the task's external_user_id (`card_owners`), and is then
 *   looked up by (workspace_id, card_id).
 */
const v3Tables = (t: { bigint: string }) => `
ALTER TABLE dotva_cards ADD COLUMN first_sent_at ${t.bigint};
ALTER TABLE dotva_cards ADD COLUMN secrets_purged_at ${t.bigint};
CREATE INDEX dotva_cards_workspace_card ON dotva_cards (workspace_id, card_id);
ALTER TABLE dotva_quarantine DROP COLUMN body;
ALTER TABLE dotva_quarantine ADD COLUMN members TEXT NOT NULL DEFAULT '';
ALTER TABLE unknown_events DROP COLUMN body;
ALTER TABLE unknown_events ADD COLUMN members TEXT NOT NULL DEFAULT '';
ALTER TABLE knot_events DROP COLUMN body;
CREATE TABLE knot_session_events (
  event TEXT NOT NULL,
  session_id TEXT NOT NULL,
  digest TEXT NOT NULL,
  task_id TEXT,
  received_at ${t.bigint} NOT NULL,
  PRIMARY KEY (event, session_id)
);
INSERT INTO knot_session_events (event, session_id, digest, task_id, received_at)
  SELECT e.event, e.session_id, e.digest, e.task_id, e.received_at FROM knot_events e
  WHERE e.id IN (SELECT MIN(id) FROM knot_events WHERE session_id IS NOT NULL GROUP BY event, session_id);
CREATE TABLE card_owners (
  workspace_id TEXT NOT NULL,
  card_id TEXT NOT NULL,
  external_user_id TEXT NOT NULL,
  bound_at ${t.bigint} NOT NULL,
  PRIMARY KEY (workspace_id, card_id),
  UNIQUE (external_user_id, card_id)
);
`;

/**
 * Issue 17 (the crash window between Knot's 200 and our record of it): `post_started_at` is written
 * durably before each POST /card, so whoever holds the job next knows a POST may have reached Knot
 * without its answer being recorded.
 */
const v4Tables = (t: { bigint: string }) => `
ALTER TABLE send_jobs ADD COLUMN post_started_at ${t.bigint};
`;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "cards, Knot events, tasks, merchants, cardholders, send-card jobs",
    sqlite: v1Tables({ bigint: "INTEGER", serial: "INTEGER PRIMARY KEY AUTOINCREMENT" }),
    postgres: v1Tables({ bigint: "BIGINT", serial: "BIGSERIAL PRIMARY KEY" }),
  },
  {
    version: 2,
    name: "partner contracts as documented: quarantine, replaceable unusable cards, availability per SDK, transaction events",
    sqlite: v2Tables({ bigint: "INTEGER", serial: "INTEGER PRIMARY KEY AUTOINCREMENT" }),
    postgres: v2Tables({ bigint: "BIGINT", serial: "BIGSERIAL PRIMARY KEY" }),
  },
  {
    version: 3,
    name: "no raw bodies, secrets purge, one body per Knot (event, session_id), card owners",
    sqlite: v3Tables({ bigint: "INTEGER" }),
    postgres: v3Tables({ bigint: "BIGINT" }),
  },
  {
    version: 4,
    name: "send-card jobs record that a POST /card began",
    sqlite: v4Tables({ bigint: "INTEGER" }),
    postgres: v4Tables({ bigint: "BIGINT" }),
  },
];
