/**
 * `custody-keys <command> [options]`: the key CLI security teams run on the custody host. It works on
 * the key directory only, never over the network. Returns the process exit code.
 */
import { parseArgs } from "node:util";
import type { KeyToolCommand, KeyToolIo } from "./command.js";
import { COMMANDS } from "./commands/index.js";

export function usage(commands: readonly KeyToolCommand[] = COMMANDS): string {
  return [
    "usage: custody-keys <command> [options]   (--dir defaults to $CUSTODY_KEY_DIR)",
    "",
    ...commands.flatMap((c) => [`  ${c.name} ${c.usage}`, `      ${c.summary}`]),
  ].join("\n");
}

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
  try {
    const { values } = parseArgs({
      args: [...rest],
      options: command.options,
      strict: true,
      allowPositionals: false,
    });
    // No command declares `multiple: true`, so every value is a single string or boolean.
    await command.run(values as Record<string, string | boolean | undefined>, io);
    return 0;
  } catch (err) {
    io.err(`custody-keys ${command.name}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
