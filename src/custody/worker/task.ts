/**
 * What crosses between the main thread and a re-encryption worker, on the worker's one long-lived
 * port. Inputs are the parsed JWE's bytes (one transferred ArrayBuffer, not a cloned object), a public
 * JWK, the cardholder profile and how to get the content key; the result is the output JWE or a failure
 * description whose message never holds input values. Plaintext card data never appears in either.
 */
import type { KeyObject } from "node:crypto";
import type { KnotUser } from "../../core/card/knot-user.js";
import type { GrpcFailure } from "../errors.js";

/** Bytes at the start of `WorkerTask.bytes` when the main thread unwrapped the content key. */
export const CONTENT_KEY_BYTES = 32;

/**
 * How the worker gets the call's content key:
 *   - in-process: the worker unwraps with its own copy of the file store's private key, kept per key-set
 *     generation (worker-keys.ts). `privateKey` travels only the first time a worker needs that key of
 *     that generation; the pool mirrors the worker's cache to know when.
 *   - unwrapped: the main thread already asked the token; the first CONTENT_KEY_BYTES of `bytes` are the
 *     content key, the real one or a random one, which the worker cannot tell apart.
 */
export type CarriedKey =
  | {
      readonly kind: "in-process";
      readonly fingerprint: string;
      readonly generation: number;
      readonly privateKey?: KeyObject;
    }
  | { readonly kind: "unwrapped" };

export interface WorkerTask {
  readonly id: number;
  /**
   * Transferred: [content key, when unwrapped] | protected header (AAD) | encrypted key (absent when
   * unwrapped) | IV | ciphertext | tag. IV and tag have their fixed A256GCM lengths.
   */
  readonly bytes: ArrayBuffer;
  readonly aadLength: number;
  readonly encryptedKeyLength: number;
  readonly ciphertextLength: number;
  readonly knotJwk: string;
  readonly user: KnotUser;
  /** Epoch ms: the time the card's expiry is checked against. */
  readonly now: number;
  /** Epoch ms after which the caller has given up: the worker then skips the RSA work. */
  readonly deadline: number;
  /** Absent only in the pool's warm-up tasks, whose deadline has already passed. */
  readonly key?: CarriedKey;
}

export type ReencryptResult =
  | { readonly ok: true; readonly jwe: string; readonly cardLast4: string; readonly cardBin: string }
  | {
      readonly ok: false;
      readonly failure: GrpcFailure;
      /** Class name of an unexpected error, for the operator log (its message may quote input). */
      readonly internalKind?: string;
    };

export type WorkerReply = { readonly id: number } & ReencryptResult;

/**
 * Messages from the pool that are no re-encryption, on the same port so that they keep their order with
 * the tasks: a task sent before a drop still finds the copy it relies on.
 *   - drop-older: a key-set reload made `generation` current; the worker drops every copy of an older
 *     generation now, instead of when the first task of the new generation arrives.
 *   - key-stats: the worker answers which copies it holds, by name only (KeyCopyStats).
 */
export type WorkerControl =
  | { readonly control: "drop-older"; readonly generation: number }
  | { readonly control: "key-stats"; readonly id: number };

export type WorkerMessage = WorkerTask | WorkerControl;

/** The key copies one worker holds: `generation:fingerprint` names, never key material. */
export interface KeyCopyStats {
  readonly newestGeneration: number;
  readonly held: readonly string[];
}

export type WorkerStatsReply = { readonly id: number; readonly stats: KeyCopyStats };
