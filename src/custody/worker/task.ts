/**
 * What crosses between the main thread and a re-encryption worker. Inputs are ciphertext, a public
 * JWK and the cardholder profile; the result is the output JWE or a failure description whose message
 * never holds input values. Plaintext card data never appears in either.
 */
import type { KeyObject } from "node:crypto";
import type { MessagePort } from "node:worker_threads";
import type { KnotUser } from "../card/knot-user.js";
import type { GrpcFailure } from "../errors.js";

export interface ReencryptTask {
  readonly secretsJwe: string;
  readonly knotJwk: string;
  readonly user: KnotUser;
  /** Epoch ms: the time the card's expiry is checked against. */
  readonly now: number;
  /** Epoch ms after which the caller has given up: the worker then skips the RSA work. */
  readonly deadline: number;
  /** Exactly one of the two: the key itself (with its name), or a port to ask the main thread for the unwrap. */
  readonly privateKey?: {
    readonly key: KeyObject;
    readonly fingerprint: string;
    readonly generation: number;
  };
  readonly unwrapPort?: MessagePort;
}

export type ReencryptResult =
  | { readonly ok: true; readonly jwe: string; readonly cardLast4: string }
  | {
      readonly ok: false;
      readonly failure: GrpcFailure;
      /** Class name of an unexpected error, for the operator log (its message may quote input). */
      readonly internalKind?: string;
    };

/** Messages on the unwrap port: worker → main is the encrypted key; main → worker is one of these. */
export type UnwrapReply =
  | { readonly ok: true; readonly cek: Uint8Array }
  | { readonly ok: false; readonly decryptFailed: true }
  | { readonly ok: false; readonly decryptFailed: false; readonly failure: GrpcFailure };
