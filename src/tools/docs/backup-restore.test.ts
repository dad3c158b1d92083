/**
 * docs/operations.md's backup and restore commands, run as written (the `<!-- ops:NAME -->` shell blocks
 * extracted from the document): an online backup taken while the gateway's repository is open and
 * writing, then restored, holds what was stored before it and nothing after; on SQLite and PostgreSQL,
 * the PostgreSQL dump restored both into an empty database and over the live one.
 */

import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresRepository } from "../../gateway/storage/postgres.js";
import type { DotvaCard, GatewayRepository } from "../../gateway/storage/repository.js";
import { SqliteRepository } from "../../gateway/storage/sqlite.js";
import { startPostgres, type TestPostgres } from "../testing/postgres.js";
import { runShellBlock } from "../testing/shell-block.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const DOC = readFileSync(join(ROOT, "docs/operations.md"), "utf8");

function block(name: string): string {
  const m = new RegExp(`<!-- ops:${name} -->\\n\`\`\`sh\\n([\\s\\S]*?)\\n\`\`\``).exec(DOC);
  if (!m) throw new Error(`docs/operations.md has no ops:${name} block`);
  return m[1]!;
}

function run(script: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return runShellBlock(script, { env: { PATH: process.env.PATH ?? "", ...env } });
}

const card = (uuid: string, cardId: string): DotvaCard => ({
  cardUuid: uuid,
  cardId,
  workspaceId: "12",
  cardLast4: "4242",
  cardBin: "424242",
  keyFingerprint: `sha256:${"b".repeat(64)}`,
  secretsJwe: "h.k.i.c.t",
  receivedAt: Date.now(),
});

const tmp = mkdtempSync(join(tmpdir(), "gw-backup-"));
let pg: TestPostgres;
beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);
afterAll(() => {
  pg?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/** Stores a card, backs up, stores another, returns the backup file. */
async function backupBetweenWrites(repo: GatewayRepository, name: string, env: Record<string, string>) {
  const backupDir = join(tmp, `${name}-backups`);
  mkdirSync(backupDir, { mode: 0o700 });
  await repo.migrate();
  await repo.storeDotvaCard(card("before-backup", "1"), "a");
  const r = await run(block(`${name}-backup`), { ...env, BACKUP_DIR: backupDir });
  expect(r, r.out).toMatchObject({ code: 0 });
  await repo.storeDotvaCard(card("after-backup", "2"), "b");
  const files = readdirSync(backupDir);
  expect(files).toHaveLength(1);
  const file = join(backupDir, files[0]!);
  expect(statSync(file).mode & 0o777).toBe(0o600);
  return file;
}

async function expectRestored(repo: GatewayRepository) {
  await repo.migrate();
  expect(await repo.getCard("before-backup")).toMatchObject({ cardId: "1" });
  expect(await repo.getCard("after-backup")).toBeUndefined();
  await repo.close();
}

describe("docs/operations.md backup and restore", () => {
  it("SQLite: online backup while the repository is open, restored in place", async () => {
    const dir = join(tmp, "sqlite");
    mkdirSync(dir, { mode: 0o700 });
    const path = join(dir, "gateway.sqlite");
    const env = { GATEWAY_SQLITE_PATH: path };
    const repo = new SqliteRepository(path);
    const file = await backupBetweenWrites(repo, "sqlite", env);
    await repo.close();
    const r = await run(block("sqlite-restore"), { ...env, BACKUP_FILE: file });
    expect(r, r.out).toMatchObject({ code: 0 });
    expect(existsSync(`${path}.damaged`)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    await expectRestored(new SqliteRepository(path));
  });

  it("PostgreSQL: pg_dump while the repository is open; pg_restore into an empty database and over the live one", async () => {
    const url = pg.createDatabase("live");
    const repo = new PostgresRepository(url);
    const file = await backupBetweenWrites(repo, "pg", { GATEWAY_DATABASE_URL: url });
    await repo.close();
    const empty = pg.createDatabase("empty");
    for (const target of [empty, url]) {
      const r = await run(block("pg-restore"), { GATEWAY_DATABASE_URL: target, BACKUP_FILE: file });
      expect(r, r.out).toMatchObject({ code: 0 });
      await expectRestored(new PostgresRepository(target));
    }
  }, 60_000);
});
