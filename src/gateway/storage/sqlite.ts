/**
 * SQLite driver (better-sqlite3): the embedded default. WAL with synchronous=FULL makes every COMMIT
 * durable (fsync of the WAL) before the promise resolves.
 *
 * Group commit: writes queue up and run together in one transaction, each inside its own SAVEPOINT so
 * one failing write does not undo the others. One fsync then covers every write in the batch, which is
 * where the throughput comes from; nobody is answered before that fsync, so durability is unchanged.
 * Reads use a second connection, which in WAL mode sees only committed data.
 *
 * At rest: the database holds Dotva's ciphertext and cardholder profiles, so the file is created 0600
 * (SQLite gives its -wal and -shm files the database file's mode) in a directory created 0700, and
 * secure_delete overwrites the content of deleted rows and purged secrets instead of leaving it in free
 * pages.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { MIGRATIONS } from "./migrations.js";
import type * as q from "./sql.js";
import { purgeSecrets } from "./sql.js";
import { SqlRepository } from "./sql-repository.js";

type Op<T> = (tx: q.SqlRunner) => Promise<T>;

interface Pending {
  readonly op: Op<unknown>;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

function runner(db: Database.Database): q.SqlRunner {
  return {
    query: async (sql, params = []) => db.prepare(sql).all(...params) as q.Row[],
    execute: async (sql, params = []) => db.prepare(sql).run(...params).changes,
  };
}

/** Statement cache: better-sqlite3 compiles on prepare, and the same dozen statements run all day. */
function cachedRunner(db: Database.Database): q.SqlRunner {
  const cache = new Map<string, Database.Statement>();
  const stmt = (sql: string) => {
    let s = cache.get(sql);
    if (!s) {
      s = db.prepare(sql);
      cache.set(sql, s);
    }
    return s;
  };
  return {
    query: async (sql, params = []) => {
      const s = stmt(sql);
      if (s.reader) return s.all(...params) as q.Row[];
      s.run(...params);
      return [];
    },
    execute: async (sql, params = []) => stmt(sql).run(...params).changes,
  };
}

/**
 * Creates the database file 0600 before SQLite opens it (SQLite would use the process umask), and
 * narrows an existing file and its -wal/-shm companions to 0600 too.
 */
function ownerOnlyFiles(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  closeSync(openSync(path, "a", 0o600));
  for (const file of [path, `${path}-wal`, `${path}-shm`]) {
    if (existsSync(file)) chmodSync(file, 0o600);
  }
}

export class SqliteRepository extends SqlRepository {
  readonly driver = "sqlite";
  // One writer connection: claims are serialised by it, no row locks needed.
  protected readonly claimLock = "";
  private readonly writer: Database.Database;
  private readonly reader: Database.Database;
  private readonly w: q.SqlRunner;
  protected readonly r: q.SqlRunner;
  private queue: Pending[] = [];
  private flushing = false;
  private scheduled = false;

  constructor(path: string) {
    super();
    if (path !== ":memory:") ownerOnlyFiles(path);
    this.writer = new Database(path);
    this.writer.pragma("secure_delete = ON");
    this.writer.pragma("journal_mode = WAL");
    this.writer.pragma("synchronous = FULL");
    this.writer.pragma("busy_timeout = 5000");
    // An in-memory database exists per connection, so there the writer also serves reads.
    this.reader = path === ":memory:" ? this.writer : new Database(path);
    this.reader.pragma("busy_timeout = 5000");
    this.w = cachedRunner(this.writer);
    this.r = runner(this.reader);
  }

  async migrate(): Promise<void> {
    this.writer.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    );
    const apply = this.writer.transaction(() => {
      const done = new Set(
        (this.writer.prepare("SELECT version FROM schema_migrations").all() as { version: number }[]).map(
          (r) => r.version,
        ),
      );
      for (const m of MIGRATIONS) {
        if (done.has(m.version)) continue;
        this.writer.exec(m.sqlite);
        this.writer
          .prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
          .run(m.version, m.name, Date.now());
      }
    });
    apply.immediate();
  }

  protected write<T>(op: Op<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ op, resolve: resolve as (v: unknown) => void, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    // setImmediate: let every request already parsed in this I/O phase join the batch.
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    this.flushing = true;
    const results: { ok: boolean; value: unknown }[] = [];
    try {
      this.writer.exec("BEGIN IMMEDIATE");
      for (const p of batch) {
        this.writer.exec("SAVEPOINT op");
        try {
          const value = await p.op(this.w);
          this.writer.exec("RELEASE op");
          results.push({ ok: true, value });
        } catch (error) {
          this.writer.exec("ROLLBACK TO op");
          this.writer.exec("RELEASE op");
          results.push({ ok: false, value: error });
        }
      }
      this.writer.exec("COMMIT");
    } catch (error) {
      if (this.writer.inTransaction) this.writer.exec("ROLLBACK");
      for (const p of batch) p.reject(error);
      this.flushing = false;
      this.schedule();
      return;
    }
    this.flushing = false;
    batch.forEach((p, i) => {
      const r = results[i]!;
      if (r.ok) p.resolve(r.value);
      else p.reject(r.value);
    });
    if (this.queue.length > 0) this.schedule();
  }

  // A purged secrets_jwe still sits in the WAL frames written before the purge; a truncating checkpoint
  // moves the zeroed pages into the database file and empties the WAL.
  override purgeSecrets: SqlRepository["purgeSecrets"] = async (receivedBefore, sentBefore, now) => {
    const purged = await this.write((tx) => purgeSecrets(tx, receivedBefore, sentBefore, now));
    if (purged.length > 0) this.writer.pragma("wal_checkpoint(TRUNCATE)");
    return purged;
  };

  async ping(): Promise<void> {
    this.reader.prepare("SELECT 1").get();
  }

  async close(): Promise<void> {
    while (this.queue.length > 0 || this.flushing || this.scheduled) {
      await new Promise((r) => setImmediate(r));
    }
    if (this.reader !== this.writer) this.reader.close();
    this.writer.close();
  }
}
