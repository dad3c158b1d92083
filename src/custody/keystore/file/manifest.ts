/**
 * The key directory's manifest (`manifest.json`): per-key state and creation time, keyed by the
 * fingerprint computed from the key itself, so renaming a file cannot change which key a state applies to.
 * Written only by the key CLI; the service reads it.
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { isCanonicalFingerprint } from "../../../core/crypto/fingerprint.js";
import { KeyStoreError } from "../errors.js";
import { KEY_STATES } from "../key-store.js";

export const MANIFEST_FILE = "manifest.json";

const entrySchema = z.strictObject({
  state: z.enum(KEY_STATES),
  created: z.iso.datetime().optional(),
  /** File the key was written to; informational, the fingerprint is what binds. */
  file: z.string().optional(),
});

export const manifestSchema = z.strictObject({
  version: z.literal(1),
  keys: z.record(
    z.string().refine(isCanonicalFingerprint, "manifest keys must be canonical sha256:<hex> fingerprints"),
    entrySchema,
  ),
});

export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestEntry = z.infer<typeof entrySchema>;

export class ManifestError extends KeyStoreError {
  readonly code = "KEY_MANIFEST_INVALID";
}

/** An absent manifest is an empty one: every key then loads as active. */
export function readManifest(dir: string): Manifest {
  let text: string;
  try {
    text = readFileSync(join(dir, MANIFEST_FILE), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { version: 1, keys: {} };
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ManifestError(`${MANIFEST_FILE} is not JSON`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    // zod wraps a bad record key in a generic "Invalid key"; say what a key must be.
    const message =
      issue.code === "invalid_key" ? "keys must be canonical sha256:<hex> fingerprints" : issue.message;
    throw new ManifestError(`${MANIFEST_FILE}: ${issue.path.join(".") || "(root)"}: ${message}`);
  }
  return parsed.data;
}

/** Atomic replace: a reload running concurrently sees the old or the new manifest, never half of one. */
export function writeManifest(dir: string, manifest: Manifest): void {
  const tmp = join(dir, `.${MANIFEST_FILE}.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, join(dir, MANIFEST_FILE));
}
