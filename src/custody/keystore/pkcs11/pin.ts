/**
 * Reads the token user PIN from where the config says it is. The PIN is read again at every login
 * (start-up and each recovery), so it is not kept in the store between logins and an operator can
 * rotate the file without a restart.
 */
import { readFileSync, statSync } from "node:fs";
import { KeyStoreError } from "../errors.js";
import type { Pkcs11StoreConfig } from "./config.js";

export class PinSourceError extends KeyStoreError {
  readonly code = "PKCS11_PIN_SOURCE_INVALID";
}

export function readPin(source: Pkcs11StoreConfig["pin"]): string {
  if ("env" in source) {
    const value = process.env[source.env];
    if (value === undefined || value === "")
      throw new PinSourceError(`environment variable ${source.env} is empty`);
    return value;
  }
  let text: string;
  try {
    if ((statSync(source.file).mode & 0o077) !== 0) {
      throw new PinSourceError(`PIN file ${source.file} is accessible to group or others; chmod 600 it`);
    }
    text = readFileSync(source.file, "utf8");
  } catch (err) {
    if (err instanceof PinSourceError) throw err;
    throw new PinSourceError(
      `PIN file ${source.file} cannot be read (${(err as NodeJS.ErrnoException).code})`,
    );
  }
  const pin = text.replace(/[\r\n]+$/, "");
  if (pin === "") throw new PinSourceError(`PIN file ${source.file} is empty`);
  return pin;
}
