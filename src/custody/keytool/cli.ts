/** Entry point of the `custody-keys` bin (see run.ts). */
import { runKeyTool } from "./run.js";

process.exitCode = await runKeyTool(process.argv.slice(2), {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
});
