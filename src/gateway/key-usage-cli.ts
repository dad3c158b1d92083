/**
 * `gateway key-usage`: asks a running gateway how many stored cards still need a Dotva key
 * (GET /v1/keys/{fingerprint}/usage), for the security team before it retires the key. The gateway owns
 * the card data, so the question goes to its internal API rather than to custody or the database.
 *
 * Exit codes, for scripts: 0 = no stored secrets_jwe references the key (it may be retired),
 * 3 = some still do, 2 = usage error, 1 = the gateway could not answer.
 */
import { createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { rsaJwkThumbprint, spkiFingerprint } from "../core/crypto/fingerprint.js";

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

export const KEY_USAGE_HELP = `usage: gateway key-usage (--fingerprint FP [--jwk-thumbprint T] | --public-key FILE) [--url URL]

  --fingerprint FP     the key's SHA-256 SPKI fingerprint (sha256:<hex>, as custody-keys list prints it)
  --jwk-thumbprint T   also count cards Dotva named by the key's RFC 7638 thumbprint
                       (base64url: write --jwk-thumbprint=T when T starts with "-")
  --public-key FILE    the key's public PEM (custody-keys public): both of the above from it
  --url URL            the gateway's internal API base URL [default: $GATEWAY_INTERNAL_URL]

The bearer token is read from $GATEWAY_INTERNAL_TOKEN or the file named by $GATEWAY_INTERNAL_TOKEN_FILE.
Exit 0: no stored card needs the key; 3: some still do; 2: usage error; 1: the gateway did not answer.`;

class UsageError extends Error {}

function token(env: NodeJS.ProcessEnv): string {
  if (env.GATEWAY_INTERNAL_TOKEN) return env.GATEWAY_INTERNAL_TOKEN;
  if (env.GATEWAY_INTERNAL_TOKEN_FILE) {
    try {
      return readFileSync(env.GATEWAY_INTERNAL_TOKEN_FILE, "utf8").replace(/\r?\n$/, "");
    } catch {
      throw new UsageError("GATEWAY_INTERNAL_TOKEN_FILE: cannot read the file it names");
    }
  }
  throw new UsageError("set GATEWAY_INTERNAL_TOKEN or GATEWAY_INTERNAL_TOKEN_FILE");
}

function keyOf(values: { fingerprint?: string; "jwk-thumbprint"?: string; "public-key"?: string }): {
  fingerprint: string;
  thumbprint?: string;
} {
  if (values["public-key"] !== undefined) {
    if (values.fingerprint !== undefined || values["jwk-thumbprint"] !== undefined)
      throw new UsageError("give --public-key or --fingerprint, not both");
    try {
      const key = createPublicKey(readFileSync(values["public-key"]));
      const jwk = key.export({ format: "jwk" });
      if (jwk.kty !== "RSA" || !jwk.n || !jwk.e) throw new UsageError("not RSA");
      return {
        fingerprint: spkiFingerprint(key.export({ type: "spki", format: "der" })),
        thumbprint: rsaJwkThumbprint({ n: jwk.n, e: jwk.e }),
      };
    } catch {
      throw new UsageError("--public-key: not a readable RSA public key in PEM");
    }
  }
  if (values.fingerprint === undefined) throw new UsageError("--fingerprint or --public-key is required");
  return {
    fingerprint: values.fingerprint,
    ...(values["jwk-thumbprint"] !== undefined ? { thumbprint: values["jwk-thumbprint"] } : {}),
  };
}

export async function runKeyUsage(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  io: CliIo,
): Promise<number> {
  let url: URL;
  let bearer: string;
  let key: { fingerprint: string; thumbprint?: string };
  try {
    const { values } = parseArgs({
      args: [...argv],
      options: {
        fingerprint: { type: "string" },
        "jwk-thumbprint": { type: "string" },
        "public-key": { type: "string" },
        url: { type: "string" },
        help: { type: "boolean" },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      io.out(KEY_USAGE_HELP);
      return 0;
    }
    key = keyOf(values);
    const base = values.url ?? env.GATEWAY_INTERNAL_URL;
    if (!base) throw new UsageError("--url or GATEWAY_INTERNAL_URL is required");
    url = new URL(
      `v1/keys/${encodeURIComponent(key.fingerprint)}/usage`,
      base.endsWith("/") ? base : `${base}/`,
    );
    if (key.thumbprint) url.searchParams.set("jwk_thumbprint", key.thumbprint);
    bearer = token(env);
  } catch (error) {
    io.err(`gateway key-usage: ${error instanceof Error ? error.message : String(error)}`);
    io.err(KEY_USAGE_HELP);
    return 2;
  }
  let res: Response;
  try {
    res = await fetch(url, {
      headers: { authorization: `Bearer ${bearer}` },
      signal: AbortSignal.timeout(30_000),
    });
  } catch {
    io.err(`gateway key-usage: no answer from ${url.origin}`);
    return 1;
  }
  const body = (await res.json().catch(() => ({}))) as {
    fingerprint?: string;
    withSecrets?: number;
    unsent?: number;
    spellings?: string[];
    error?: { code: string; message: string };
  };
  if (res.status !== 200 || typeof body.withSecrets !== "number") {
    const why = body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${res.status}`;
    io.err(`gateway key-usage: ${why}`);
    return res.status === 400 ? 2 : 1;
  }
  io.out(JSON.stringify(body));
  io.out(
    body.withSecrets === 0
      ? `${body.fingerprint}: no stored card needs this key`
      : `${body.fingerprint}: ${body.withSecrets} stored cards still need this key (${body.unsent} never sent)`,
  );
  return body.withSecrets === 0 ? 0 : 3;
}
