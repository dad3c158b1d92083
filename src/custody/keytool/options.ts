/** Reading the CLI's shared options into typed values; errors name the option. */
import { readFileSync } from "node:fs";
import { KEY_STATES, type KeyState } from "../keystore/key-store.js";
import { KeyToolError } from "./key-files.js";

type Values = Record<string, string | boolean | undefined>;

export function keyDir(values: Values): string {
  const dir = (values.dir as string | undefined) ?? process.env.CUSTODY_KEY_DIR;
  if (!dir) throw new KeyToolError("--dir is required (or set CUSTODY_KEY_DIR)");
  return dir;
}

export function passphrase(values: Values, option = "passphrase-file"): Buffer | undefined {
  const file =
    (values[option] as string | undefined) ??
    (option === "passphrase-file" ? process.env.CUSTODY_KEY_PASSPHRASE_FILE : undefined);
  if (!file) return undefined;
  const bytes = readFileSync(file);
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d)) end--;
  return bytes.subarray(0, end);
}

export function required(values: Values, option: string): string {
  const value = values[option];
  if (typeof value !== "string" || value.length === 0) throw new KeyToolError(`--${option} is required`);
  return value;
}

export function keyState(values: Values, fallback?: KeyState): KeyState {
  const value = (values.state as string | undefined) ?? fallback;
  if (!KEY_STATES.includes(value as KeyState))
    throw new KeyToolError(`--state must be one of ${KEY_STATES.join(", ")}`);
  return value as KeyState;
}
