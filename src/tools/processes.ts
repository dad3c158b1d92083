/**
 * Starting custody and the gateway as real processes (the demo, end-to-end tests and the benchmark use
 * this): free ports on 127.0.0.1, environment from the dev PKI, bounded start-up waits, and a kill that
 * can be SIGKILL for crash tests.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createPublicKey } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULTS as GATEWAY_DEFAULTS } from "../gateway/config.js";
import { KnotSimulator } from "./simulators/knot-simulator.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface Proc {
  readonly child: ChildProcess;
  /** Everything the process wrote, for diagnosis and for checking what was logged. */
  readonly output: () => string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function startTs(entry: string, env: Record<string, string>, args: string[] = []): Proc {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, entry), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const chunks: string[] = [];
  child.stdout?.on("data", (d) => chunks.push(String(d)));
  child.stderr?.on("data", (d) => chunks.push(String(d)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    child,
    output: () => chunks.join(""),
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  proc: Proc,
  ms = 30_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (proc.child.exitCode !== null) throw new Error(`${what} exited early:\n${proc.output().slice(-2000)}`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} not up within ${ms} ms:\n${proc.output().slice(-2000)}`);
}

export const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });

export const httpOk = async (url: string) => (await fetch(url, { signal: AbortSignal.timeout(2_000) })).ok;

/** The dev PKI layout written by src/tools/dev-pki.ts. */
export interface PkiLike {
  readonly caCert: string;
  readonly server: { cert: string; key: string };
  readonly gateway: { cert: string; key: string };
  readonly dotvaKeyDir: string;
}

/** Public key (SPKI PEM) of the active Dotva key in a file key store directory. */
export function dotvaPublicKeyPem(dir: string): string {
  const pem = readdirSync(dir).find((f) => f.endsWith(".pem") || f.endsWith(".key"));
  if (!pem) throw new Error(`no key file in ${dir}`);
  return createPublicKey(readFileSync(join(dir, pem)))
    .export({ type: "spki", format: "pem" })
    .toString();
}

/**
 * The Knot simulator serving the dev PKI's Knot key as kid `knot-dev` (the key custody's recipient pins
 * name), started on a free port.
 */
export async function startDevKnot(
  pki: { readonly knotPrivateKey: string },
  clientId: string,
  secret: string,
): Promise<KnotSimulator> {
  const knot = new KnotSimulator({
    clientId,
    secret,
    privateKeyPem: readFileSync(pki.knotPrivateKey, "utf8"),
    kid: "knot-dev",
  });
  await knot.start();
  return knot;
}

/**
 * Custody on a free loopback port, or on `extra.CUSTODY_LISTEN` (`127.0.0.1:<port>`) when a caller must
 * find it at the same address again, e.g. after a restart.
 */
export async function startCustodyProcess(
  pki: PkiLike,
  recipientPins: string[],
  extra: Record<string, string> = {},
): Promise<{ proc: Proc; address: string }> {
  const address = extra.CUSTODY_LISTEN ?? `127.0.0.1:${await freePort()}`;
  const port = Number(address.slice(address.lastIndexOf(":") + 1));
  const proc = startTs("src/custody/main.ts", {
    CUSTODY_LISTEN: address,
    CUSTODY_TLS_CERT: pki.server.cert,
    CUSTODY_TLS_KEY: pki.server.key,
    CUSTODY_TLS_CLIENT_CA: pki.caCert,
    CUSTODY_ALLOW_REENCRYPT: "uri:spiffe://card-custody.dev/gateway",
    CUSTODY_KEY_DIR: pki.dotvaKeyDir,
    CUSTODY_RECIPIENT_PINS: recipientPins.join(","),
    CUSTODY_WORKERS: "2",
    CUSTODY_LOG_LEVEL: "warn",
    CUSTODY_AUDIT_FILE: join(mkdtempSync(join(tmpdir(), "custody-audit-")), "audit.jsonl"),
    ...extra,
  });
  await waitUntil("custody", () => portOpen(port), proc);
  return { proc, address };
}

/**
 * The gateway's environment for a local run against started simulators and custody: what the demo and
 * the gateway benchmark both run. Everything production checks is on (Knot webhook signatures and
 * source allow-list, a Dotva sender check, mTLS to custody, SQLite under `work`), but GATEWAY_ENV is
 * development because the Knot simulator speaks plain http on loopback, which production refuses for
 * KNOT_BASE_URL. Unset variables take the configuration module's defaults.
 */
export function localGatewayEnv(opts: {
  readonly work: string;
  readonly pki: PkiLike;
  readonly custodyAddress: string;
  readonly knotUrl: string;
  readonly knotClientId: string;
  readonly knotClientSecret: string;
  readonly dotvaSharedSecret: string;
  readonly internalToken: string;
}): Record<string, string> {
  return {
    GATEWAY_ENV: "development",
    GATEWAY_LOG_LEVEL: "warn",
    GATEWAY_SQLITE_PATH: join(opts.work, "gateway.sqlite"),
    GATEWAY_INTERNAL_TOKEN: opts.internalToken,
    DOTVA_SHARED_SECRET: opts.dotvaSharedSecret,
    KNOT_BASE_URL: opts.knotUrl,
    KNOT_CLIENT_ID: opts.knotClientId,
    KNOT_CLIENT_SECRET: opts.knotClientSecret,
    KNOT_IP_ALLOWLIST: "127.0.0.1, ::1",
    GATEWAY_CUSTODY_ADDRESS: opts.custodyAddress,
    GATEWAY_CUSTODY_SERVER_NAME: "localhost",
    GATEWAY_CUSTODY_CA_FILE: opts.pki.caCert,
    GATEWAY_CUSTODY_CERT_FILE: opts.pki.gateway.cert,
    GATEWAY_CUSTODY_KEY_FILE: opts.pki.gateway.key,
  };
}

export async function startGatewayProcess(
  env: Record<string, string>,
): Promise<{ proc: Proc; url: string; internalUrl: string }> {
  const port = env.GATEWAY_PORT && env.GATEWAY_PORT !== "0" ? Number(env.GATEWAY_PORT) : await freePort();
  const proc = startTs("src/gateway/main.ts", { ...env, GATEWAY_PORT: String(port) });
  const url = `http://${env.GATEWAY_HOST ?? GATEWAY_DEFAULTS.GATEWAY_HOST}:${port}`;
  await waitUntil("gateway", () => httpOk(`${url}/healthz`), proc);
  return { proc, url, internalUrl: url };
}
