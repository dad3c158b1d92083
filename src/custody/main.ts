/**
 * `custody` entry point: configuration from the environment, SIGHUP reloads keys, TLS material and the caller policy, SIGTERM/SIGINT drain
 * and exit. `--help` lists the configuration variables.
 */

import { createLogger } from "./audit.js";
import { ConfigError, configHelp, loadConfig } from "./config.js";
import { coreDumpProblem } from "./core-dumps.js";
import { startCustody } from "./server.js";

if (process.argv.includes("--help") || process.argv.includes("-h")) {
  process.stdout.write(`${configHelp()}\n`);
  process.exit(0);
}

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`custody: configuration error: ${err.message}\n(run with --help for the variables)\n`);
  process.exit(2);
}

const logger = createLogger(config.logLevel);
const coreDumps = coreDumpProblem();
if (coreDumps !== undefined) {
  if (config.env === "production") {
    process.stderr.write(`custody: refusing to start: ${coreDumps}\n`);
    process.exit(2);
  }
  logger.warn({ reason: coreDumps }, "DEV MODE: core dumps are not off");
}
// Signal handlers come first: a SIGTERM that arrives while custody starts (an orchestrator can send one as
// soon as it sees the "listening" line) still drains and exits 0 instead of killing the process outright.
let custody: Awaited<ReturnType<typeof startCustody>> | undefined;
let stopRequested = false;
const stop = (signal: string) => {
  if (stopRequested) return;
  stopRequested = true;
  logger.info({ signal }, "draining in-flight calls");
  custody?.shutdown().then(() => process.exit(0));
};
process.once("SIGTERM", () => stop("SIGTERM"));
process.once("SIGINT", () => stop("SIGINT"));
try {
  const running = await startCustody(config, { logger });
  custody = running;
  process.on("SIGHUP", () => {
    running.reloadTls();
    running.reloadCallerPolicy();
    running.reload().catch(() => undefined);
  });
  if (stopRequested) running.shutdown().then(() => process.exit(0));
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(
      `custody: configuration error: ${err.message}\n(run with --help for the variables)\n`,
    );
    process.exit(2);
  }
  logger.fatal({ reason: err instanceof Error ? err.message : String(err) }, "custody failed to start");
  process.exit(1);
}
