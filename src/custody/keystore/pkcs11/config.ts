/**
 * Configuration of the PKCS#11 key store, validated once at the boundary; the store only ever sees a
 * Pkcs11StoreConfig. Operators usually write PKCS#11 URIs (see uri.ts), which `configFromUris` turns
 * into this shape, so both spellings end up checked by the same schema.
 *
 * The PIN is named by its source (a file or an environment variable), never given as a value: a value
 * in config would end up in process listings, shell history and support tickets.
 */
import { z } from "zod";
import { KeyStoreError } from "../errors.js";
import { parsePkcs11Uri } from "./uri.js";

export const MECHANISMS = ["auto", "rsa-pkcs-oaep", "rsa-x509"] as const;
export type MechanismChoice = (typeof MECHANISMS)[number];
/** What a key ends up using after probing. */
export type KeyMechanism = Exclude<MechanismChoice, "auto">;

const hexId = z
  .string()
  .regex(/^([0-9a-fA-F]{2})+$/, "a CKA_ID is given as hex bytes")
  .transform((hex) => hex.toLowerCase());

const keySelectorSchema = z
  .strictObject({ label: z.string().min(1).max(256).optional(), id: hexId.optional() })
  .refine((s) => s.label !== undefined || s.id !== undefined, "a key selector names a label, an id or both");

const tokenSchema = z
  .strictObject({
    label: z.string().min(1).max(32).optional(),
    serial: z.string().min(1).max(16).optional(),
    slotId: z.int().min(0).optional(),
  })
  .refine(
    (t) => t.label !== undefined || t.serial !== undefined || t.slotId !== undefined,
    "the token is named by label, serial or slot id",
  );

const pinSchema = z.union([
  z.strictObject({ file: z.string().min(1) }),
  z.strictObject({ env: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "an environment variable name") }),
]);

export const pkcs11ConfigSchema = z.strictObject({
  modulePath: z.string().startsWith("/", "module path must be absolute"),
  token: tokenSchema,
  pin: pinSchema,
  /** "all": every RSA private key with a public twin; otherwise exactly the keys listed. */
  keys: z.union([z.literal("all"), z.array(keySelectorSchema).min(1)]),
  mechanism: z.enum(MECHANISMS).default("auto"),
  /** Sessions opened (and private operations in flight) at once; size it to the token's parallelism. */
  sessions: z.int().min(1).max(64).default(4),
  /** A token operation not done by then fails the call with UNAVAILABLE and marks the token unhealthy. */
  operationTimeoutMs: z.int().min(50).max(60_000).default(5_000),
  /** How often an idle store checks that the token still answers. */
  healthCheckIntervalMs: z.int().min(50).max(600_000).default(5_000),
  /** Directory holding manifest.json (key states), same format as the file store's. */
  manifestDir: z.string().min(1).optional(),
});

export type Pkcs11StoreConfig = z.output<typeof pkcs11ConfigSchema>;
export type Pkcs11StoreConfigInput = z.input<typeof pkcs11ConfigSchema>;
export type KeySelector = z.output<typeof keySelectorSchema>;

export class Pkcs11ConfigError extends KeyStoreError {
  readonly code = "PKCS11_CONFIG_INVALID";
}

export function parsePkcs11Config(input: unknown): Pkcs11StoreConfig {
  const parsed = pkcs11ConfigSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Pkcs11ConfigError(`pkcs11 config ${issue.path.join(".") || "(root)"}: ${issue.message}`);
  }
  return parsed.data;
}

/** `file:/path` (RFC 7512's usual form) or `env:NAME`. */
function pinFromSource(source: string): Pkcs11StoreConfigInput["pin"] {
  if (source.startsWith("file:")) {
    const path = source.slice("file:".length).replace(/^\/\/(?=\/)/, "");
    return { file: path };
  }
  if (source.startsWith("env:")) return { env: source.slice("env:".length) };
  throw new Pkcs11ConfigError("pin-source must be file:/path or env:NAME");
}

/**
 * One or more key URIs on the same token. A URI without object and id selects every RSA key pair on
 * the token. Settings not expressible in a URI (mechanism, sessions, timeouts) come from `extra`.
 */
export function configFromUris(
  uris: readonly string[],
  extra: Partial<Omit<Pkcs11StoreConfigInput, "token" | "keys">> = {},
): Pkcs11StoreConfig {
  if (uris.length === 0) throw new Pkcs11ConfigError("at least one PKCS#11 URI is needed");
  const parsed = uris.map((uri) => parsePkcs11Uri(uri));
  const first = parsed[0]!;
  for (const uri of parsed) {
    if (uri.type !== undefined && uri.type !== "private") {
      throw new Pkcs11ConfigError("key URIs name private keys (type=private)");
    }
    if (uri.token !== first.token || uri.serial !== first.serial || uri.slotId !== first.slotId) {
      throw new Pkcs11ConfigError("all key URIs must name the same token");
    }
  }
  const modulePath = extra.modulePath ?? parsed.find((u) => u.modulePath)?.modulePath;
  const pinSource = parsed.find((u) => u.pinSource)?.pinSource;
  const selectAll = parsed.some((u) => u.object === undefined && u.id === undefined);
  return parsePkcs11Config({
    ...extra,
    modulePath,
    pin: extra.pin ?? (pinSource === undefined ? undefined : pinFromSource(pinSource)),
    token: { label: first.token, serial: first.serial, slotId: first.slotId },
    keys: selectAll
      ? "all"
      : parsed.map((u) => ({ label: u.object, id: u.id === undefined ? undefined : u.id.toString("hex") })),
  });
}
