/**
 * PostgreSQL driver (pg) for several gateway instances on one database. Every write is its own
 * transaction on a pooled connection (PostgreSQL groups concurrent commits itself); send-card jobs are
 * claimed with FOR UPDATE SKIP LOCKED so two instances never take the same job.
 */
import pg from "pg";
import { MIGRATIONS } from "./migrations.js";
import type * as q from "./sql.js";
import { SqlRepository } from "./sql-repository.js";

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

export class PostgresRepository extends SqlRepository {
  readonly driver = "postgres";
  protected readonly claimLock = "FOR UPDATE SKIP LOCKED";
  private readonly pool: pg.Pool;
  protected readonly r: q.SqlRunner;

  constructor(connectionString: string, poolSize = 10) {
    super();
    this.pool = new pg.Pool({ connectionString, max: poolSize, connectionTimeoutMillis: 5_000 });
    // An idle client erroring (server restart) must not crash the process; the next query reconnects.
    this.pool.on("error", () => {});
    this.r = runner(this.pool);
  }

  protected async write<T>(op: (tx: q.SqlRunner) => Promise<T>): Promise<T> {
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
    await this.write(async (tx) => {
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

  async ping(): Promise<void> {
    await this.pool.query("SELECT 1");
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
