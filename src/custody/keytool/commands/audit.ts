import { verifyChainFile } from "../../audit/verify.js";
import type { KeyToolCommand } from "../command.js";
import { KeyToolError } from "../key-files.js";

/**
 * `audit verify FILE`: walks an audit chain (custody's CUSTODY_AUDIT_FILE or this CLI's own) from its
 * first line. Exit 0 with the line count, seq range and head hash (compare it with the head custody wrote
 * to its operator log); exit 1 naming the first bad line and what is wrong with it.
 */
export const audit: KeyToolCommand = {
  name: "audit",
  summary:
    "verify FILE: check an audit chain (custody's or this CLI's): every line's hash, seq and link to the one before",
  usage: "verify FILE",
  options: {},
  positionals: true,
  unaudited: true,
  async run(_values, io, positionals) {
    const [action, file, ...extra] = positionals;
    if (action !== "verify" || file === undefined || extra.length > 0) {
      throw new KeyToolError("usage: custody-keys audit verify FILE");
    }
    let verdict: ReturnType<typeof verifyChainFile>;
    try {
      verdict = verifyChainFile(file);
    } catch (err) {
      throw new KeyToolError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    if (!verdict.ok)
      throw new KeyToolError(`${file}: line ${verdict.line}: ${verdict.problem}: ${verdict.detail}`);
    const range = verdict.firstSeq !== undefined ? `seq ${verdict.firstSeq}..${verdict.lastSeq}` : "empty";
    io.out(
      `ok  ${file}: ${verdict.lines} lines, ${range}, head ${verdict.head}${verdict.writer ? `, writer ${verdict.writer}` : ""}`,
    );
  },
};
