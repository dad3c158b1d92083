/**
 * Writes the generated parts of docs/operations.md from the code that defines them, so the reference
 * cannot drift: the gateway's VARIABLES table, custody's CONFIG_VARIABLES, and the gateway's metrics as
 * registered. Each part sits between `<!-- BEGIN generated:NAME -->` and `<!-- END generated:NAME -->`;
 * everything outside the markers is prose the generator never touches.
 *
 *   tsx src/tools/docs/gen-docs.ts          rewrite the generated parts in place
 *   tsx src/tools/docs/gen-docs.ts --check  exit 1 when the committed file differs from what would be written
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { CONFIG_VARIABLES } from "../../custody/config.js";
import { VARIABLES } from "../../gateway/config.js";
import { GatewayMetrics } from "../../gateway/metrics.js";

export const OPERATIONS_DOC = fileURLToPath(new URL("../../../docs/operations.md", import.meta.url));

const cell = (text: string) => text.replaceAll("|", "\\|").replaceAll("\n", " ");
const code = (text: string) => `\`${text.replaceAll("`", "")}\``;

function variablesTable(
  rows: readonly { name: string; help: string; default?: string | undefined; secret?: boolean | undefined }[],
): string {
  return [
    "| variable | default | meaning |",
    "|---|---|---|",
    ...rows.map(
      (v) =>
        `| ${code(v.name)}${v.secret ? ` (secret; or ${code(`${v.name}_FILE`)})` : ""} | ${v.default !== undefined ? code(v.default) : "—"} | ${cell(v.help)} |`,
    ),
  ].join("\n");
}

function metricsTable(): string {
  const metrics = new GatewayMetrics(false).registry.getMetricsAsArray() as unknown as readonly {
    name: string;
    help: string;
    type: string;
    labelNames?: readonly string[];
  }[];
  return [
    "| metric | type | labels | meaning |",
    "|---|---|---|---|",
    ...[...metrics]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map(
        (m) =>
          `| ${code(m.name)} | ${m.type} | ${m.labelNames?.length ? m.labelNames.map(code).join(", ") : "—"} | ${cell(m.help)} |`,
      ),
    "",
    "Also Node.js process metrics (prom-client defaults) prefixed `gateway_`, e.g.",
    "`gateway_process_resident_memory_bytes`, `gateway_nodejs_eventloop_lag_seconds`.",
  ].join("\n");
}

export function generatedParts(): Record<string, string> {
  return {
    "gateway-config": variablesTable(VARIABLES),
    "custody-config": variablesTable(CONFIG_VARIABLES),
    "gateway-metrics": metricsTable(),
  };
}

/** `doc` with every generated part replaced; throws when a part's markers are missing. */
export function renderOperationsDoc(doc: string, parts = generatedParts()): string {
  let out = doc;
  for (const [name, body] of Object.entries(parts)) {
    const begin = `<!-- BEGIN generated:${name} (src/tools/docs/gen-docs.ts; do not edit) -->`;
    const end = `<!-- END generated:${name} -->`;
    const from = out.indexOf(begin);
    const to = out.indexOf(end);
    if (from < 0 || to < from) throw new Error(`docs/operations.md: markers of generated:${name} missing`);
    out = `${out.slice(0, from + begin.length)}\n${body}\n${out.slice(to)}`;
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const current = readFileSync(OPERATIONS_DOC, "utf8");
  const next = renderOperationsDoc(current);
  if (process.argv.includes("--check")) {
    if (next !== current) {
      console.error("docs/operations.md is out of date: run `npx tsx src/tools/docs/gen-docs.ts`");
      process.exitCode = 1;
    }
  } else if (next !== current) {
    writeFileSync(OPERATIONS_DOC, next);
  }
}
