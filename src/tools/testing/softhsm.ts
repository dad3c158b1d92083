/**
 * A throwaway SoftHSM2 token in a temporary directory, never the system token directory. SoftHSM2
 * reads SOFTHSM2_CONF when the library is initialised, so a test file calls `createTestToken` before
 * opening any store, and one token serves the whole file (token set-up is cheap, RSA key generation
 * is not).
 */
import { execFileSync } from "node:child_process";
import { constants, createPublicKey, publicEncrypt } from "node:crypto";
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CanonicalFingerprint } from "../../core/crypto/fingerprint.js";
import { type Pkcs11StoreConfigInput, parsePkcs11Config } from "../../custody/keystore/pkcs11/config.js";
import { Pkcs11KeyStore } from "../../custody/keystore/pkcs11/pkcs11-key-store.js";

export const SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so";

export interface TestToken {
  readonly dir: string;
  readonly tokenDir: string;
  readonly label: string;
  readonly pinFile: string;
  /** Store config for this token; `keys` defaults to every key pair. */
  config(extra?: Partial<Pkcs11StoreConfigInput>): Pkcs11StoreConfigInput;
  /** Runs pkcs11-tool against this token, logged in. */
  tool(...args: string[]): string;
  /** Generates a non-extractable, sensitive RSA key pair inside the token with OpenSC's pkcs11-tool. */
  generateWithPkcs11Tool(label: string, idHex: string): void;
  /** Moves the token directory away (root ignores chmod 000, a rename really makes it unreachable). */
  hide(): void;
  restore(): void;
  remove(): void;
}

export function createTestToken(label = "custody-test"): TestToken {
  const dir = mkdtempSync(join(tmpdir(), "softhsm-"));
  const tokenDir = join(dir, "tokens");
  const conf = join(dir, "softhsm2.conf");
  writeFileSync(conf, `directories.tokendir = ${tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  mkdirSync(tokenDir);
  process.env.SOFTHSM2_CONF = conf;
  const pin = `pin-${process.pid}`;
  const pinFile = join(dir, "pin");
  writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 });
  const env = { ...process.env, SOFTHSM2_CONF: conf };
  execFileSync(
    "softhsm2-util",
    ["--init-token", "--free", "--label", label, "--so-pin", "so-secret", "--pin", pin],
    {
      env,
      stdio: "pipe",
    },
  );
  const tool = (...args: string[]) =>
    execFileSync(
      "pkcs11-tool",
      ["--module", SOFTHSM_MODULE, "--token-label", label, "--login", "--pin", pin, ...args],
      { env, stdio: "pipe", encoding: "utf8" },
    );
  return {
    dir,
    tokenDir,
    label,
    pinFile,
    config: (extra = {}) => ({
      modulePath: SOFTHSM_MODULE,
      token: { label },
      pin: { file: pinFile },
      keys: "all",
      ...extra,
    }),
    tool,
    generateWithPkcs11Tool: (keyLabel, idHex) => {
      tool(
        "--keypairgen",
        "--key-type",
        "rsa:2048",
        "--label",
        keyLabel,
        "--id",
        idHex,
        "--usage-decrypt",
        "--sensitive",
      );
    },
    hide: () => renameSync(tokenDir, `${tokenDir}.hidden`),
    restore: () => renameSync(`${tokenDir}.hidden`, tokenDir),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface StoreOnOneKey {
  readonly store: Pkcs11KeyStore;
  readonly fingerprint: CanonicalFingerprint;
  /** `cek` encrypted RSA-OAEP-256 to the key, as Dotva wraps a content key. */
  readonly ciphertext: Buffer;
  /** Every change of the store's health signal, in order. */
  readonly health: boolean[];
}

/**
 * A store over `token` after pkcs11-tool generated one key pair in it, with a content key wrapped to that
 * key: the set-up of the store's fault and overload tests.
 */
export async function openStoreOnNewKey(
  token: TestToken,
  key: { readonly label: string; readonly idHex: string },
  config: Partial<Pkcs11StoreConfigInput>,
  cek: Buffer,
): Promise<StoreOnOneKey> {
  token.generateWithPkcs11Tool(key.label, key.idHex);
  const store = await Pkcs11KeyStore.open(parsePkcs11Config(token.config(config)));
  const health: boolean[] = [];
  store.health.onChange((up) => health.push(up));
  const only = store.list()[0]!;
  const ciphertext = publicEncrypt(
    {
      key: createPublicKey({ key: only.spki, format: "der", type: "spki" }),
      padding: constants.RSA_PKCS1_OAEP_PADDING,
      oaepHash: "sha256",
    },
    cek,
  );
  return { store, fingerprint: only.fingerprint, ciphertext, health };
}
