/**
 * docs/operations.md's configuration and metrics references are generated from the code: this fails when
 * the committed text differs from what src/tools/docs/gen-docs.ts writes (a variable or metric added, renamed or
 * re-described without regenerating), and shows that the check notices an edited table.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CONFIG_VARIABLES } from "../../custody/config.js";
import { VARIABLES } from "../../gateway/config.js";
import { generatedParts, OPERATIONS_DOC, renderOperationsDoc } from "./gen-docs.js";

describe("docs/operations.md", () => {
  const doc = readFileSync(OPERATIONS_DOC, "utf8");

  it("holds exactly what src/tools/docs/gen-docs.ts generates (run `npx tsx src/tools/docs/gen-docs.ts` after a change)", () => {
    expect(renderOperationsDoc(doc)).toBe(doc);
  });

  it("lists every gateway and custody variable and every gateway metric", () => {
    for (const v of [...VARIABLES, ...CONFIG_VARIABLES]) expect(doc).toContain(`| \`${v.name}\``);
    for (const name of ["gateway_send_card_jobs_total", "gateway_knot_key_not_pinned_total"]) {
      expect(doc).toContain(`| \`${name}\``);
    }
  });

  it("the check notices a hand-edited or missing table", () => {
    const edited = doc.replace("| `GATEWAY_PORT` | `8080` |", "| `GATEWAY_PORT` | `9090` |");
    expect(edited).not.toBe(doc);
    expect(renderOperationsDoc(edited)).toBe(doc);
    const parts = generatedParts();
    expect(() =>
      renderOperationsDoc(doc.replace("<!-- END generated:gateway-metrics -->", ""), parts),
    ).toThrow(/generated:gateway-metrics/);
  });
});
