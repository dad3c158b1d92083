/**
 * `custody-keys <command> [options]`: the key CLI security teams run on the custody host. It works on
 * the key directory only, never over the network. Returns the process exit code. Every key action is
 * recorded in the CLI's audit chain when one is named (audit-trail.ts).
 */
import { parseArgs } from "node:util";
import { auditFileOf, keyToolLine, type OpenTrail, openKeyToolTrail } from "./audit-trail.js";
import type { KeyToolCommand, KeyToolIo } from "./command.js";
import { COMMANDS } from "./commands/index.js";

export function usage(commands: readonly KeyToolCommand[] = COMMANDS): string {
  return [
    "usage: custody-keys <command> [options]   (--dir defaults to $CUSTODY_KEY_DIR)",
    "  every key command also takes --audit-file FILE (default $CUSTODY_KEYS_AUDIT_FILE): the CLI's audit chain",
    "",
    ...commands.flatMap((c) => [`  ${c.name} ${c.usage}`, `      ${c.summary}`]),
  ].join("\n");
}

const AUDIT_OPTION = { "audit-file": { type: "string" } } as const;

export async function runKeyTool(
  argv: readonly string[],
  io: KeyToolIo,
  commands: readonly KeyToolCommand[] = COMMANDS,
): Promise<number> {
  const [name, ...rest] = argv;
  const command = commands.find((c) => c.name === name);
  if (!command || rest.includes("--help")) {
    (command || name === "--help" || name === undefined ? io.out : io.err)(usage(commands));
    return command || name === "--help" ? 0 : 2;
  }
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...rest],
      options: command.unaudited ? command.options : { ...command.options, ...AUDIT_OPTION },
      strict: true,
      allowPositionals: command.positionals === true,
    }) as { values: Record<string, string | boolean | undefined>; positionals: string[] });
  } catch (err) {
    io.err(`custody-keys ${command.name}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }

  const auditFile = command.unaudited ? undefined : auditFileOf(values);
  let trail: OpenTrail | undefined;
  if (auditFile !== undefined) {
    // No audit, no action: a key change nobody can account for does not happen.
    try {
      trail = await openKeyToolTrail(auditFile);
    } catch (err) {
      io.err(`custody-keys ${command.name}: audit file: ${err instanceof Error ? err.message : String(err)}`);
      return 1;
    }
  } else if (!command.unaudited) {
    io.err(
      "custody-keys: warning: no audit file (--audit-file or CUSTODY_KEYS_AUDIT_FILE): this action is not recorded",
    );
  }

  // Output waits for the audit line, as custody's answers do.
  const out: string[] = [];
  const did: Record<string, string | number | boolean> = {};
  const buffered: KeyToolIo = {
    out: (line) => (trail ? out.push(line) : io.out(line)),
    err: io.err,
    record: (fields) => Object.assign(did, fields),
  };
  let failure: string | undefined;
  try {
    // No command declares `multiple: true`, so every value is a single string or boolean.
    await command.run(values, buffered, positionals);
  } catch (err) {
    failure = err instanceof Error ? err.message : String(err);
  }
  let code = failure === undefined ? 0 : 1;
  if (trail) {
    try {
      trail.write(
        keyToolLine(
          command.name,
          values,
          did,
          failure === undefined ? { ok: true } : { ok: false, error: failure },
        ),
      );
    } catch (err) {
      io.err(
        `custody-keys ${command.name}: the action ran but its audit line was not written: ${err instanceof Error ? err.message : String(err)}`,
      );
      code = 1;
    } finally {
      trail.close();
    }
    for (const line of out) io.out(line);
  }
  if (failure !== undefined) io.err(`custody-keys ${command.name}: ${failure}`);
  return code;
}
