/**
 * RFC 7512 PKCS#11 URIs, the way operators already name token keys (OpenSSL engines, p11-kit,
 * Cloudflare gokeyless): `pkcs11:token=custody;object=dotva-2026;type=private?module-path=/usr/lib/
 * softhsm/libsofthsm2.so&pin-source=file:/etc/custody/pin`.
 *
 * Only the attributes below are understood; anything else is refused rather than ignored, because a
 * misspelt attribute silently widening which key is used is worse than a start-up error. `pin-value`
 * is refused too: a PIN inside a URI ends up in config files, process listings and logs.
 */

import { KeyStoreError } from "../errors.js";

const PATH_ATTRIBUTES = new Set([
  "token",
  "manufacturer",
  "serial",
  "model",
  "object",
  "id",
  "type",
  "slot-id",
  "slot-description",
  "slot-manufacturer",
  "library-manufacturer",
  "library-description",
  "library-version",
]);
const QUERY_ATTRIBUTES = new Set(["module-path", "module-name", "pin-source"]);
const OBJECT_TYPES = new Set(["private", "public", "cert", "secret-key", "data"]);

export class Pkcs11UriError extends KeyStoreError {
  readonly code = "PKCS11_URI_INVALID";
}

export interface Pkcs11Uri {
  readonly token?: string;
  readonly manufacturer?: string;
  readonly serial?: string;
  readonly model?: string;
  readonly slotId?: number;
  /** CKA_LABEL of the key. */
  readonly object?: string;
  /** CKA_ID of the key, as bytes. */
  readonly id?: Buffer;
  readonly type?: string;
  readonly modulePath?: string;
  /** As written, e.g. `file:/etc/custody/pin` or `env:CUSTODY_PKCS11_PIN`. */
  readonly pinSource?: string;
}

function percentDecode(text: string, attribute: string): Buffer {
  if (/%(?![0-9a-fA-F]{2})/.test(text)) {
    throw new Pkcs11UriError(`PKCS#11 URI attribute ${attribute} has a malformed percent escape`);
  }
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "%") {
      bytes.push(Number.parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(text[i]!, "utf8"));
    }
  }
  return Buffer.from(bytes);
}

function splitAttributes(part: string, separator: string, allowed: Set<string>, into: Map<string, string>) {
  if (part === "") return;
  for (const pair of part.split(separator)) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new Pkcs11UriError("PKCS#11 URI attributes are name=value pairs");
    const name = pair.slice(0, eq).toLowerCase();
    if (name === "pin-value") {
      throw new Pkcs11UriError(
        "PKCS#11 URI pin-value is refused: give the PIN by pin-source=file:... or env:...",
      );
    }
    if (!allowed.has(name)) throw new Pkcs11UriError(`PKCS#11 URI attribute ${name} is not supported`);
    if (into.has(name)) throw new Pkcs11UriError(`PKCS#11 URI attribute ${name} appears twice`);
    into.set(name, pair.slice(eq + 1));
  }
}

export function parsePkcs11Uri(uri: string): Pkcs11Uri {
  if (!/^pkcs11:/i.test(uri)) throw new Pkcs11UriError("a PKCS#11 URI starts with pkcs11:");
  const rest = uri.slice("pkcs11:".length);
  const q = rest.indexOf("?");
  const path = new Map<string, string>();
  const query = new Map<string, string>();
  splitAttributes(q < 0 ? rest : rest.slice(0, q), ";", PATH_ATTRIBUTES, path);
  splitAttributes(q < 0 ? "" : rest.slice(q + 1), "&", QUERY_ATTRIBUTES, query);

  const text = (map: Map<string, string>, name: string) => {
    const raw = map.get(name);
    return raw === undefined ? undefined : percentDecode(raw, name).toString("utf8");
  };
  const type = text(path, "type");
  if (type !== undefined && !OBJECT_TYPES.has(type)) {
    throw new Pkcs11UriError(`PKCS#11 URI type must be one of ${[...OBJECT_TYPES].join(", ")}`);
  }
  const slot = text(path, "slot-id");
  if (slot !== undefined && !/^[0-9]{1,10}$/.test(slot)) {
    throw new Pkcs11UriError("PKCS#11 URI slot-id is a decimal number");
  }
  const id = path.get("id");
  const result: Record<string, unknown> = {
    token: text(path, "token"),
    manufacturer: text(path, "manufacturer"),
    serial: text(path, "serial"),
    model: text(path, "model"),
    slotId: slot === undefined ? undefined : Number(slot),
    object: text(path, "object"),
    id: id === undefined ? undefined : percentDecode(id, "id"),
    type,
    modulePath: text(query, "module-path"),
    pinSource: text(query, "pin-source"),
  };
  for (const key of Object.keys(result)) if (result[key] === undefined) delete result[key];
  return result as Pkcs11Uri;
}

/** Characters RFC 7512 lets stand unescaped in a path attribute value. */
function percentEncode(bytes: Buffer, everyByte: boolean): string {
  let out = "";
  for (const byte of bytes) {
    const ch = String.fromCharCode(byte);
    out +=
      !everyByte && /[A-Za-z0-9\-._~:[\]@!$'()*+,=&]/.test(ch)
        ? ch
        : `%${byte.toString(16).padStart(2, "0").toUpperCase()}`;
  }
  return out;
}

/** The URI naming one token key, for KeyInfo.source and operator output; never carries a PIN source. */
export function formatKeyUri(token: string, label: string, id: Buffer): string {
  const parts = [`token=${percentEncode(Buffer.from(token, "utf8"), false)}`];
  if (label !== "") parts.push(`object=${percentEncode(Buffer.from(label, "utf8"), false)}`);
  if (id.length > 0) parts.push(`id=${percentEncode(id, true)}`);
  parts.push("type=private");
  return `pkcs11:${parts.join(";")}`;
}
