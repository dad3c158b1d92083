/**
 * The gateway process: `tsx src/gateway/main.ts` (or `npm run gateway`). `--help` lists the
 * configuration variables. SIGTERM/SIGINT stop accepting webhooks, let running send-card jobs finish,
 * and close storage.
 */
import { startGateway } from "./app.js";
import { ConfigError, helpText, loadConfig } from "./config.js";
import { runKeyUsage } from "./key-usage-cli.js";

if (process.argv[2] === "key-usage") {
  process.exit(
    await runKeyUsage(process.argv.slice(3), process.env, {
      out: (line) => process.stdout.write(`${line}\n`),
      err: (line) => process.stderr.write(`${line}\n`),
    }),
  );
}

if (process.argv.includes("--help") || process.argv.includes("-h")) {
  process.stdout.write(helpText());
  process.exit(0);
}

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`gateway: configuration error: ${error.message}\n`);
    process.exit(2);
  }
  throw error;
}

// Signal handlers come first, so a SIGTERM that arrives while the gateway starts still closes it cleanly
// (storage closed, jobs handed on) instead of killing the process with the default action.
let gateway: Awaited<ReturnType<typeof startGateway>> | undefined;
let stopRequested = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    stopRequested = true;
    void gateway?.close().then(() => process.exit(0));
  });
}
gateway = await startGateway(config);
if (stopRequested) void gateway.close().then(() => process.exit(0));
