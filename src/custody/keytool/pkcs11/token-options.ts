/**
 * How the token commands of `custody-keys` find the token: the same RFC 7512 URI the service is
 * configured with (`--uri` or $CUSTODY_PKCS11_URI, with module-path and pin-source), so an operator
 * names the token once. Key states live in a manifest.json in the state directory (`--state-dir` or
 * $CUSTODY_PKCS11_STATE_DIR), the same file format and rules as the file store's.
 */
import { configFromUris } from "../../keystore/pkcs11/config.js";
import type { TokenAccess } from "../../keystore/pkcs11/token-admin.js";
import { KeyToolError } from "../key-files.js";

type Values = Record<string, string | boolean | undefined>;

export const TOKEN_OPTIONS = {
  pkcs11: { type: "boolean" },
  uri: { type: "string" },
  "state-dir": { type: "string" },
} as const;

export const TOKEN_USAGE = "--pkcs11 [--uri PKCS11_URI] [--state-dir DIR]";

export function tokenAccess(values: Values): TokenAccess {
  const uri = (values.uri as string | undefined) ?? process.env.CUSTODY_PKCS11_URI;
  if (!uri) throw new KeyToolError("--uri is required with --pkcs11 (or set CUSTODY_PKCS11_URI)");
  const { modulePath, token, pin } = configFromUris(uri.split(/\s+/).filter((u) => u !== ""));
  return { modulePath, token, pin };
}

export function stateDir(values: Values): string | undefined {
  return (values["state-dir"] as string | undefined) ?? process.env.CUSTODY_PKCS11_STATE_DIR;
}

const LABEL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function keyLabel(values: Values): string {
  const label = values.label;
  if (typeof label !== "string" || !LABEL.test(label)) {
    throw new KeyToolError("--label: letters, digits, dot, dash, underscore; 1-64");
  }
  return label;
}
