/**
 * The PKCS#11 key store: RSA-OAEP-256 unwrap with keys that never leave the token.
 *
 * Availability model. The store is either up or down. A token failure (session handle invalid, device
 * removed, token gone, an operation past its deadline, a failed background check) takes it down: the
 * health listeners hear it at once, calls fail fast with KeyStoreUnavailableError, and a recovery loop
 * re-initialises the library, re-opens and logs in the sessions and finds the keys again (their object
 * handles change) until the token answers. A call that hit the failure itself waits for one recovery
 * attempt and retries once, so a token blip (sessions closed under us) costs latency, not errors.
 * Load is not a failure: a call that waits the whole operation timeout without getting a session
 * (every session busy with operations that are still within their deadlines) is refused with
 * KeyStoreOverloadedError (OVERLOADED, RESOURCE_EXHAUSTED) and leaves the store up; re-initialising a
 * library that is merely busy would drop every operation in flight and turn a burst into an outage.
 *
 * Decryption failures stay uniform (docs/design.md invariant 2): a ciphertext that does not decrypt
 * yields a random content key, as in the file store, and a failure makes the same token calls as a
 * success, one C_DecryptInit and one C_Decrypt. Only return codes that can mean nothing but a gone
 * session, login or token take the store down; any other error of the token's own OAEP is a decrypt
 * failure, so a token that reports bad padding with an odd return code does not become a padding
 * oracle, and a token that is sick rather than the ciphertext bad is found by the background check.
 */
import { randomBytes } from "node:crypto";
import { type Logger, pino } from "pino";
import { GCM_KEY_BYTES } from "../../../core/crypto/aes-gcm.js";
import type { CanonicalFingerprint } from "../../../core/crypto/fingerprint.js";
import { KeyStoreOverloadedError, KeyStoreUnavailableError } from "../errors.js";
import { readManifest } from "../file/manifest.js";
import { KeyIndex } from "../key-index.js";
import type { Key, KeyInfo, ManagedKeyStore, ReloadResult } from "../key-store.js";
import type { KeyMechanism, Pkcs11StoreConfig } from "./config.js";
import { assertKeyProtected, type DiscoveredKey, discoverKeys, KeyDiscoveryError } from "./discovery.js";
import { finishOaep, probeMechanism, tokenDecrypt } from "./mechanism.js";
import {
  acquireModule,
  findSlot,
  isPkcs11Error,
  type PKCS11,
  pkcs11js,
  readAttributes,
  reinitializeModule,
  releaseModule,
  tokenLabel,
} from "./module.js";
import { loginWithPin } from "./pin.js";
import { type PooledSession, SessionPool } from "./session-pool.js";
import { formatKeyUri } from "./uri.js";

export interface TokenKeyInfo extends KeyInfo {
  /** How this key decrypts: the token's OAEP, or raw RSA in the token plus OAEP decoding here. */
  readonly mechanism: KeyMechanism;
  readonly id: Buffer;
}

interface TokenKey {
  readonly info: TokenKeyInfo;
  readonly key: DiscoveredKey;
}

interface KeySet {
  /** Counts key sets built (start-up, reloads, recoveries), like the file store's generation. */
  readonly generation: number;
  /** Which connection the object handles belong to; a recovery makes every older handle stale. */
  readonly epoch: number;
  readonly index: KeyIndex<TokenKeyInfo>;
  readonly byFingerprint: ReadonlyMap<string, TokenKey>;
  /** Keys left out of this set, for the operator (private keys without a public twin). */
  readonly warnings: readonly string[];
}

/** Return values that can only mean the session, login or token is gone, never the ciphertext. */
const TOKEN_GONE = [
  "CKR_SESSION_HANDLE_INVALID",
  "CKR_SESSION_CLOSED",
  "CKR_DEVICE_REMOVED",
  "CKR_DEVICE_ERROR",
  "CKR_TOKEN_NOT_PRESENT",
  "CKR_TOKEN_NOT_RECOGNIZED",
  "CKR_USER_NOT_LOGGED_IN",
  "CKR_KEY_HANDLE_INVALID",
  "CKR_OBJECT_HANDLE_INVALID",
  "CKR_CRYPTOKI_NOT_INITIALIZED",
  "CKR_SLOT_ID_INVALID",
];

class TokenFailure extends Error {
  override readonly name = "TokenFailure";
}

class OperationTimeout extends Error {
  override readonly name = "OperationTimeout";
}

const UNAVAILABLE = "the key store (PKCS#11 token) is unavailable; retry later";
const unavailable = () => new KeyStoreUnavailableError(UNAVAILABLE);
const overloaded = () =>
  new KeyStoreOverloadedError(
    "every PKCS#11 session stayed busy for the whole wait; retry with backoff (or raise CUSTODY_PKCS11_SESSIONS if the token has the capacity)",
  );

function errorName(err: unknown): string {
  if (err instanceof Error && (err.name === "Pkcs11Error" || err.name === "NativeError")) return err.message;
  return err instanceof Error ? err.name : "unknown";
}

export class Pkcs11KeyStore implements ManagedKeyStore {
  private readonly pool = new SessionPool(unavailable, overloaded);
  private keys: KeySet = {
    generation: 0,
    epoch: 0,
    index: new KeyIndex([]),
    byFingerprint: new Map(),
    warnings: [],
  };
  private epoch = 0;
  private mechanisms = new Map<string, KeyMechanism>();
  private up = false;
  private closed = false;
  private recovering: Promise<boolean> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private healthTimer: NodeJS.Timeout | undefined;
  private retryDelayMs = 0;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly listeners = new Set<(healthy: boolean) => void>();
  private slot: Buffer | undefined;
  private label = "";
  private reinitialisations = 0;
  private sessionWaitsTimedOut = 0;

  private constructor(
    private readonly config: Pkcs11StoreConfig,
    private readonly lib: PKCS11,
    private readonly log: Logger,
  ) {}

  /** Throws when the token, the PIN or the keys are not usable: the service must not start without keys. */
  static async open(
    config: Pkcs11StoreConfig,
    log: Logger = pino({ level: "silent" }),
  ): Promise<Pkcs11KeyStore> {
    const lib = acquireModule(config.modulePath);
    const store = new Pkcs11KeyStore(config, lib, log.child({ keystore: "pkcs11" }));
    try {
      await store.connect(false);
    } catch (err) {
      await store.close();
      throw err;
    }
    store.setUp(true);
    store.scheduleHealthCheck();
    return store;
  }

  /** A key of the current set; its unwrap keeps using that set (and the key's new handle after a recovery). */
  get(fingerprint: string): (Key & { readonly info: TokenKeyInfo }) | undefined {
    const set = this.keys;
    const info = set.index.lookup(fingerprint);
    if (info === undefined) return undefined;
    return {
      info,
      generation: set.generation,
      unwrap: (encryptedKey) => this.unwrapIn(set, info.fingerprint, encryptedKey),
    };
  }

  list(): readonly TokenKeyInfo[] {
    return this.keys.index.list();
  }

  /** Up while the token answers; the custody health service reports NOT_SERVING otherwise. */
  readonly health = {
    healthy: (): boolean => this.up,
    /** Called with the new state on every change; returns the unsubscribe function. */
    onChange: (listener: (healthy: boolean) => void): (() => void) => {
      this.listeners.add(listener);
      return () => this.listeners.delete(listener);
    },
  };

  /**
   * Counts since open: library re-initialisations (each one a recovery from a token failure), and calls
   * refused with OVERLOADED because every session stayed busy for the whole wait.
   */
  counters(): { readonly reinitialisations: number; readonly sessionWaitsTimedOut: number } {
    return { reinitialisations: this.reinitialisations, sessionWaitsTimedOut: this.sessionWaitsTimedOut };
  }

  /** Rotation: reads the manifest and the token's keys again; on failure keeps the current set. */
  async reload(): Promise<ReloadResult> {
    const session = await this.pool.acquire(this.config.operationTimeoutMs);
    try {
      this.keys = await this.buildKeySet(session.handle, this.keys.generation + 1);
    } finally {
      this.pool.release(session);
    }
    const { generation, warnings } = this.keys;
    return { generation, keys: this.list().length, warnings };
  }

  private async unwrapIn(
    set: KeySet,
    fingerprint: CanonicalFingerprint,
    encryptedKey: Uint8Array,
  ): Promise<Buffer> {
    const input = Buffer.from(encryptedKey.buffer, encryptedKey.byteOffset, encryptedKey.length);
    for (let attempt = 0; ; attempt++) {
      if (!this.up) throw unavailable();
      // After a recovery the snapshot's handles are stale; the same key has a new handle now.
      const entry = (set.epoch === this.epoch ? set : this.keys).byFingerprint.get(fingerprint);
      // The key left the token after the call looked it up: the call fails as a decrypt failure.
      if (entry === undefined) return randomBytes(GCM_KEY_BYTES);
      // Public facts about the ciphertext: the raw operation needs c < n, and a token may report
      // c >= n with a generic error that would otherwise look like a token failure.
      if (input.length !== entry.key.modulusBytes || Buffer.compare(input, entry.key.modulus) >= 0) {
        return randomBytes(GCM_KEY_BYTES);
      }
      try {
        return await this.decrypt(entry, input);
      } catch (err) {
        if (!(err instanceof TokenFailure)) throw err;
        this.markDown(err.message);
        if (attempt > 0 || !(await this.recoverNow())) throw unavailable();
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.healthTimer);
    this.pool.invalidate();
    this.setUp(false);
    // Closing a session another thread is still using inside the library is a use-after-free in
    // some modules (SoftHSM2 among them), so a hung operation means leaving the library as it is.
    if (!(await this.settleInFlight(this.config.operationTimeoutMs))) {
      this.log.warn("token operations still running at close; PKCS#11 library left initialised");
      return;
    }
    if (this.slot !== undefined) {
      try {
        this.lib.C_CloseAllSessions(this.slot);
      } catch {
        // The token may already be gone; closing is best effort.
      }
    }
    releaseModule(this.config.modulePath);
  }

  private async decrypt(entry: TokenKey, input: Buffer): Promise<Buffer> {
    let session: PooledSession;
    try {
      session = await this.pool.acquire(this.config.operationTimeoutMs);
    } catch (err) {
      // Busy sessions are load: the call is refused, the token stays up and is not re-initialised.
      if (err instanceof KeyStoreOverloadedError) {
        this.sessionWaitsTimedOut++;
        throw err;
      }
      throw new TokenFailure("the sessions were replaced while the call waited for one");
    }
    const { mechanism, fingerprint } = entry.info;
    // Drawn before the token call, on every call: the key a failed decryption carries on with.
    const cek = randomBytes(GCM_KEY_BYTES);
    let output: Buffer;
    const operation = this.track(tokenDecrypt(this.lib, session.handle, entry.key, mechanism, input));
    try {
      output = await this.withDeadline(operation);
    } catch (err) {
      if (err instanceof OperationTimeout) {
        // The library may still be using the session: it goes back to the pool only once the
        // operation ends (and is dropped then if a recovery has replaced the sessions meanwhile).
        operation.then(
          () => this.pool.release(session),
          () => this.pool.release(session),
        );
        throw new TokenFailure("a token operation passed its deadline");
      }
      this.pool.release(session);
      if (isPkcs11Error(err, ...TOKEN_GONE)) throw new TokenFailure(errorName(err));
      // The token's OAEP refusing the ciphertext, whatever code it uses: the uniform failure, with no
      // further token call (a health check here, and only here, made a failure slower than a success
      // and was one more token call an observer of the HSM could count). A sick token is the
      // background check's to find.
      if (mechanism === "rsa-pkcs-oaep") return cek;
      // A raw operation on a value below the modulus has no failure that depends on the ciphertext.
      this.log.warn({ fingerprint, error: errorName(err) }, "raw RSA operation failed on the token");
      throw unavailable();
    }
    this.pool.release(session);
    return finishOaep(output, mechanism, entry.key.modulusBytes, cek);
  }

  /**
   * Races a tracked native operation against the configured deadline. The operation itself cannot be
   * cancelled; it stays in `inFlight` so that re-initialisation waits for it.
   */
  private withDeadline<T>(tracked: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new OperationTimeout()), this.config.operationTimeoutMs);
    });
    return Promise.race([tracked, deadline]).finally(() => clearTimeout(timer));
  }

  /** Every native asynchronous operation goes through here, so re-initialisation and close can wait for it. */
  private track<T>(operation: Promise<T>): Promise<T> {
    const tracked = operation.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
    return tracked;
  }

  private async settleInFlight(timeoutMs: number): Promise<boolean> {
    if (this.inFlight.size === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const settled = Promise.allSettled([...this.inFlight]).then(() => true);
    const done = await Promise.race([settled, timeout]);
    clearTimeout(timer);
    return done;
  }

  /** Cheap synchronous check that the session, the login and the key object are still there. */
  private tokenAnswers(session: PooledSession, entry: TokenKey): boolean {
    try {
      this.lib.C_GetSessionInfo(session.handle);
      const [modulus] = readAttributes(this.lib, session.handle, entry.key.handle, [pkcs11js.CKA_MODULUS]);
      return modulus?.subarray(modulus.length - entry.key.modulusBytes).equals(entry.key.modulus) === true;
    } catch {
      return false;
    }
  }

  /**
   * (Re)builds everything from the library up. `reinitialize` runs C_Finalize/C_Initialize first,
   * which SoftHSM2 needs to see a token directory that went away and came back.
   */
  private async connect(reinitialize: boolean): Promise<void> {
    this.pool.invalidate();
    if (reinitialize) {
      if (!(await this.settleInFlight(this.config.operationTimeoutMs))) {
        throw new Error("token operations still running; re-initialisation postponed");
      }
      reinitializeModule(this.lib);
      this.reinitialisations++;
    } else if (this.slot !== undefined) {
      this.lib.C_CloseAllSessions(this.slot);
    }
    const slot = findSlot(this.lib, this.config.token);
    if (slot === undefined) throw new Error("no present token matches the configured label, serial or slot");
    this.slot = slot;
    this.label = tokenLabel(this.lib, slot);
    const sessions: Buffer[] = [];
    for (let i = 0; i < this.config.sessions; i++) {
      sessions.push(this.lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION));
    }
    loginWithPin(this.lib, sessions[0]!, this.config.pin);
    this.epoch++;
    this.keys = await this.buildKeySet(sessions[0]!, this.keys.generation + 1);
    this.pool.reset(sessions);
  }

  private async buildKeySet(session: Buffer, generation: number): Promise<KeySet> {
    const { keys, skipped } = discoverKeys(this.lib, session, this.config.keys);
    const warnings = skipped.map((key) => `private key ${key} has no public key object; left out`);
    for (const warning of warnings) this.log.warn({ warning }, "token key left out");
    if (keys.length === 0) {
      throw new KeyDiscoveryError(
        `token "${this.label}" holds no RSA key pair (private key with its public key object) for the key URI to select`,
      );
    }
    // Before any key is used, and on every reload and recovery: a set with one unprotected key is refused whole.
    for (const key of keys) assertKeyProtected(this.lib, session, key);
    const manifest =
      this.config.manifestDir === undefined ? undefined : readManifest(this.config.manifestDir);
    const entries: TokenKey[] = [];
    for (const key of keys) {
      const fingerprint = key.forms.canonical;
      let mechanism = this.mechanisms.get(fingerprint);
      if (mechanism === undefined) {
        const probe = await this.track(probeMechanism(this.lib, session, key, this.config.mechanism));
        mechanism = probe.mechanism;
        this.mechanisms.set(fingerprint, mechanism);
        this.log.info(
          { fingerprint, label: key.label, mechanism, oaepRefused: probe.oaepRefused },
          mechanism === "rsa-pkcs-oaep"
            ? "token key uses CKM_RSA_PKCS_OAEP (SHA-256) in the token"
            : "token key uses CKM_RSA_X_509 in the token with OAEP-SHA-256 decoded in process",
        );
      }
      const state = manifest?.keys[fingerprint];
      entries.push({
        key,
        info: {
          fingerprint,
          aliases: key.forms.aliases,
          state: state?.state ?? "active",
          modulusBits: key.modulusBits,
          spki: key.spki,
          label: key.label,
          source: formatKeyUri(this.label, key.label, key.id),
          ...(state?.created === undefined ? {} : { createdAt: new Date(state.created) }),
          mechanism,
          id: key.id,
        },
      });
    }
    return {
      generation,
      epoch: this.epoch,
      index: new KeyIndex(entries.map((e) => e.info)),
      byFingerprint: new Map(entries.map((e) => [e.info.fingerprint, e])),
      warnings,
    };
  }

  private setUp(up: boolean): void {
    if (this.up === up) return;
    this.up = up;
    for (const listener of this.listeners) listener(up);
  }

  private markDown(reason: string): void {
    if (this.closed || !this.up) return;
    this.log.error({ reason }, "PKCS#11 token unavailable; calls fail with UNAVAILABLE until it recovers");
    this.setUp(false);
    this.retryDelayMs = 0;
  }

  /** One recovery attempt, shared by everyone who asks while it runs. */
  private recoverNow(): Promise<boolean> {
    this.recovering ??= this.attemptRecovery().finally(() => {
      this.recovering = undefined;
    });
    return this.recovering;
  }

  private async attemptRecovery(): Promise<boolean> {
    if (this.closed) return false;
    clearTimeout(this.retryTimer);
    try {
      await this.connect(true);
    } catch (err) {
      if (this.closed) return false;
      this.retryDelayMs = Math.min(Math.max(this.retryDelayMs * 2, 100), this.config.healthCheckIntervalMs);
      this.log.warn({ error: errorName(err), retryInMs: this.retryDelayMs }, "PKCS#11 token recovery failed");
      this.retryTimer = setTimeout(() => void this.recoverNow(), this.retryDelayMs);
      this.retryTimer.unref();
      return false;
    }
    if (this.closed) return false;
    this.log.info({ keys: this.list().length }, "PKCS#11 token recovered");
    this.setUp(true);
    return true;
  }

  private scheduleHealthCheck(): void {
    this.healthTimer = setTimeout(async () => {
      if (this.closed) return;
      if (this.up) await this.checkHealth();
      else void this.recoverNow();
      if (!this.closed) this.scheduleHealthCheck();
    }, this.config.healthCheckIntervalMs);
    this.healthTimer.unref();
  }

  /**
   * The only place a token that answers calls with errors other than "gone" is found sick, so it runs
   * on a busy store too: it waits its turn for a session like a call, for at most the operation timeout.
   */
  private async checkHealth(): Promise<void> {
    let session: PooledSession;
    try {
      session = await this.pool.acquire(this.config.operationTimeoutMs);
    } catch (err) {
      // Every session busy is a store under load; an operation hung on the token fails its own
      // deadline and takes the store down from there, so the check just waits for its next turn.
      if (err instanceof KeyStoreOverloadedError) return;
      // Sessions replaced by a recovery or by close().
      if (!this.closed && this.up) {
        this.markDown("background check: the sessions were replaced while it waited for one");
        void this.recoverNow();
      }
      return;
    }
    const entry = this.keys.byFingerprint.values().next().value;
    const answers = entry !== undefined && this.tokenAnswers(session, entry);
    this.pool.release(session);
    if (!answers && !this.closed) {
      this.markDown("background check: the token no longer answers");
      void this.recoverNow();
    }
  }
}
