/**
 * PostgreSQL driver (pg) for several gateway instances on one database. Every write is its own
 * transaction on a pooled connection (PostgreSQL groups concurrent commits itself); send-card jobs are
 * claimed with FOR UPDATE SKIP LOCKED so two instances never take the same job.
 */
import pg from "pg";
import { MIGRATIONS } from "./migrations.js";
import type { GatewayRepository } from "./repository.js";
import * as q from "./sql.js";

/** `?` placeholders to `$n`; the shared SQL never contains a literal question mark. */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

function runner(client: pg.Pool | pg.PoolClient): q.SqlRunner {
  return {
    query: async (sql, params = []) => (await client.query(numbered(sql), params as unknown[])).rows,
    execute: async (sql, params = []) =>
      (await client.query(numbered(sql), params as unknown[])).rowCount ?? 0,
  };
}

// Any fixed number both instances agree on: serialises concurrent migrations at start-up.
const MIGRATION_LOCK = 0x6761_7465;

export class PostgresRepository implements GatewayRepository {
  readonly driver = "postgres";
  private readonly pool: pg.Pool;
  private readonly r: q.SqlRunner;

  constructor(connectionString: string, poolSize = 10) {
    this.pool = new pg.Pool({ connectionString, max: poolSize, connectionTimeoutMillis: 5_000 });
    // An idle client erroring (server restart) must not crash the process; the next query reconnects.
    this.pool.on("error", () => {});
    this.r = runner(this.pool);
  }

  private async tx<T>(op: (tx: q.SqlRunner) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      const result = await op(runner(client));
      await client.query("COMMIT");
      return result;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  async migrate(): Promise<void> {
    await this.tx(async (tx) => {
      await tx.execute(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
      await tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
      );
      const done = new Set(
        (await tx.query("SELECT version FROM schema_migrations")).map((r) => Number(r.version)),
      );
      for (const m of MIGRATIONS) {
        if (done.has(m.version)) continue;
        for (const statement of m.postgres.split(";").filter((s) => s.trim())) await tx.execute(statement);
        await tx.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", [
          m.version,
          m.name,
          Date.now(),
        ]);
      }
    });
  }

  storeDotvaCard: GatewayRepository["storeDotvaCard"] = (card, digest) =>
    this.tx((tx) => q.storeDotvaCard(tx, card, digest));
  recordUnknownEvent: GatewayRepository["recordUnknownEvent"] = (e) =>
    this.tx((tx) => q.recordUnknownEvent(tx, e));
  countUnknownEvents: GatewayRepository["countUnknownEvents"] = (source) =>
    q.countUnknownEvents(this.r, source);
  getCard: GatewayRepository["getCard"] = (uuid) => q.getCard(this.r, uuid);
  findCardForKnot: GatewayRepository["findCardForKnot"] = (id) => q.findCardForKnot(this.r, id);
  recordKnotEvent: GatewayRepository["recordKnotEvent"] = (e) => this.tx((tx) => q.recordKnotEvent(tx, e));
  getTask: GatewayRepository["getTask"] = (id) => q.getTask(this.r, id);
  listMerchants: GatewayRepository["listMerchants"] = () => q.listMerchants(this.r);
  putCardholder: GatewayRepository["putCardholder"] = (id, profile, now) =>
    this.tx((tx) => q.putCardholder(tx, id, profile, now));
  getCardholder: GatewayRepository["getCardholder"] = (id) => q.getCardholder(this.r, id);
  claimJobs: GatewayRepository["claimJobs"] = (owner, now, leaseUntil, limit) =>
    this.tx((tx) => q.claimJobs(tx, owner, now, leaseUntil, limit, "FOR UPDATE SKIP LOCKED"));
  renewLease: GatewayRepository["renewLease"] = (id, owner, leaseUntil) =>
    this.tx((tx) => q.renewLease(tx, id, owner, leaseUntil));
  finishJob: GatewayRepository["finishJob"] = (id, owner, outcome) =>
    this.tx((tx) => q.finishJob(tx, id, owner, outcome));
  expireJobs: GatewayRepository["expireJobs"] = (now) => this.tx((tx) => q.expireJobs(tx, now));

  async ping(): Promise<void> {
    await this.pool.query("SELECT 1");
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
