/**
 * A throw-away PostgreSQL for one test file: initdb into a temp directory owned by `postgres` (the
 * server refuses to run as root), listening on 127.0.0.1 at a free port and on a socket in that
 * directory. Stopped and removed by `stop()`.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../processes.js";

export interface TestPostgres {
  readonly url: string;
  /** A fresh database on the same server, for isolating tests. */
  createDatabase(name: string): string;
  stop(): void;
}

function pgBin(name: string): string {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) {
    const p = join(root, v, "bin", name);
    if (existsSync(p)) return p;
  }
  throw new Error(`PostgreSQL binary ${name} not found under ${root} (run scripts/provision.sh)`);
}

function asPostgres(args: string[]): string {
  const asRoot = process.getuid?.() === 0;
  const [cmd, ...rest] = asRoot ? ["runuser", "-u", "postgres", "--", ...args] : args;
  return execFileSync(cmd!, rest, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
}

export async function startPostgres(): Promise<TestPostgres> {
  const dir = mkdtempSync(join(tmpdir(), "gw-pg-"));
  chmodSync(dir, 0o700);
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    chownSync(dir, uid, gid);
  }
  const data = join(dir, "data");
  asPostgres([pgBin("initdb"), "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"]);
  const port = await freePort();
  const opts = `-h 127.0.0.1 -p ${port} -k ${dir} -c fsync=off -c full_page_writes=off -c max_connections=100`;
  asPostgres([pgBin("pg_ctl"), "-D", data, "-o", opts, "-l", join(dir, "log"), "-w", "-t", "30", "start"]);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    createDatabase(name) {
      asPostgres([pgBin("createdb"), "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", name]);
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    stop() {
      const args = [pgBin("pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"];
      const asRoot = process.getuid?.() === 0;
      spawnSync(asRoot ? "runuser" : args[0]!, asRoot ? ["-u", "postgres", "--", ...args] : args.slice(1), {
        timeout: 30_000,
        stdio: "ignore",
      });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
