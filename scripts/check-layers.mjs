#!/usr/bin/env node
/**
 * The architecture, enforced: each part of src/ may import only the parts below it, and the pure core
 * may import no I/O and no transport. `npm run build` and the test command run this; it exits 1 and names
 * every offending import. Tests (*.test.ts) may import anything: they never ship.
 *
 *   tools    simulators, dev PKI, SoftHSM helpers, benches, demo, test support (never in an image)
 *   gateway  Fastify webhook gateway            custody  gRPC service, key stores, key CLI
 *   contract proto loading, generated types, reason codes shared by gateway and custody
 *   core     JWE, JWK, fingerprints, card payload mapping: pure functions
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const SRC = join(ROOT, "src");

/** Which parts each part may import (itself included). */
const ALLOWED_PARTS = {
  core: ["core"],
  contract: ["contract", "core"],
  custody: ["custody", "contract", "core"],
  gateway: ["gateway", "contract", "core"],
  tools: ["tools", "gateway", "custody", "contract", "core"],
};

/** The only packages the pure core may use: computation, no I/O, no transport. */
const CORE_PACKAGES = new Set(["node:crypto", "node:buffer", "zod"]);

function* sourceFiles(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* sourceFiles(path);
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts")) yield path;
  }
}

const IMPORT =
  /(?:^|[^.\w])(?:import|export)\s[^;]*?\sfrom\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/gms;

const partOf = (file) => relative(SRC, file).split("/")[0];
const problems = [];
for (const file of sourceFiles(SRC)) {
  const part = partOf(file);
  const allowed = ALLOWED_PARTS[part];
  const where = relative(ROOT, file);
  if (!allowed) {
    problems.push(`${where}: src/${part}/ is not a known part (${Object.keys(ALLOWED_PARTS).join(", ")})`);
    continue;
  }
  const text = readFileSync(file, "utf8");
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    if (spec.startsWith(".")) {
      const target = normalize(join(dirname(file), spec));
      const targetPart = target.startsWith(SRC) ? partOf(target) : "(outside src)";
      if (!allowed.includes(targetPart))
        problems.push(`${where}: ${part} may not import ${targetPart} (${spec})`);
    } else if (part === "core" && !CORE_PACKAGES.has(spec)) {
      problems.push(`${where}: the pure core may not import ${spec}`);
    }
  }
}

if (problems.length > 0) {
  console.error(
    `layer check: ${problems.length} import(s) break the architecture:\n  ${problems.join("\n  ")}`,
  );
  process.exit(1);
}
console.log("layer check: every import points down");
