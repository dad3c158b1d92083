/**
 * What the token commands do, as functions: keys as the service will see them (fingerprint from the
 * public object, state from the manifest), new keys recorded in the manifest, lookups by label or
 * any fingerprint form.
 */
import { normalizeFingerprint } from "../../../core/crypto/fingerprint.js";
import { readManifest, writeManifest } from "../../keystore/file/manifest.js";
import type { KeyState } from "../../keystore/key-store.js";
import type { DiscoveredKey } from "../../keystore/pkcs11/discovery.js";
import { type AdminSession, listTokenKeys } from "../../keystore/pkcs11/token-admin.js";
import { formatKeyUri } from "../../keystore/pkcs11/uri.js";
import { KeyToolError } from "../key-files.js";

export interface TokenKeyRow {
  readonly fingerprint: string;
  readonly aliases: readonly string[];
  readonly state: KeyState;
  readonly bits: number;
  readonly created?: string;
  readonly label: string;
  readonly uri: string;
}

export function describeTokenKeys(admin: AdminSession, tokenLabel: string, stateDir?: string): TokenKeyRow[] {
  const manifest = stateDir === undefined ? undefined : readManifest(stateDir);
  return listTokenKeys(admin).map((key) => {
    const entry = manifest?.keys[key.forms.canonical];
    return {
      fingerprint: key.forms.canonical,
      aliases: key.forms.aliases,
      state: entry?.state ?? "active",
      bits: key.modulusBits,
      ...(entry?.created ? { created: entry.created } : {}),
      label: key.label,
      uri: formatKeyUri(tokenLabel, key.label, key.id),
    };
  });
}

/** The token key named by label or by any accepted fingerprint form; exactly one must match. */
export function findTokenKey(admin: AdminSession, name: string): DiscoveredKey {
  const keys = listTokenKeys(admin);
  let wanted: string | undefined;
  try {
    wanted = normalizeFingerprint(name);
  } catch {
    wanted = undefined;
  }
  const matches = keys.filter(
    (k) => k.label === name || k.forms.canonical === wanted || k.forms.aliases.includes(wanted ?? ""),
  );
  if (matches.length !== 1) {
    throw new KeyToolError(
      matches.length === 0 ? `no token key is named ${name}` : `${matches.length} token keys match ${name}`,
    );
  }
  return matches[0]!;
}

export function assertLabelFree(admin: AdminSession, label: string): void {
  if (listTokenKeys(admin).some((k) => k.label === label)) {
    throw new KeyToolError(`the token already holds a key labelled ${label}; choose another label`);
  }
}

export function recordState(
  stateDir: string | undefined,
  key: DiscoveredKey,
  state: KeyState,
  created?: Date,
) {
  if (stateDir === undefined) {
    if (state !== "active")
      throw new KeyToolError("--state-dir is needed to record a state other than active");
    return;
  }
  const manifest = readManifest(stateDir);
  const fingerprint = key.forms.canonical;
  manifest.keys[fingerprint] = {
    ...manifest.keys[fingerprint],
    state,
    ...(created ? { created: created.toISOString() } : {}),
  };
  writeManifest(stateDir, manifest);
}
