/** Picks the storage driver the configuration names and brings its schema up to date. */
import type { GatewayConfig } from "../config.js";
import { PostgresRepository } from "./postgres.js";
import type { GatewayRepository } from "./repository.js";
import { SqliteRepository } from "./sqlite.js";

export async function openRepository(storage: GatewayConfig["storage"]): Promise<GatewayRepository> {
  const repo =
    storage.driver === "postgres" ? new PostgresRepository(storage.url) : new SqliteRepository(storage.path);
  await repo.migrate();
  return repo;
}
