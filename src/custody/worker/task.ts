/**
 * What crosses between the main thread and a re-encryption worker. Inputs are ciphertext, a public
 * JWK, the cardholder profile and the key the call looked up; the result is the output JWE or a failure
 * description whose message never holds input values. Plaintext card data never appears in either.
 */
import type { KeyObject } from "node:crypto";
import type { MessagePort } from "node:worker_threads";
import type { KeyInfo } from "../../keystore/key-store.js";
import type { KnotUser } from "../card/knot-user.js";
import type { GrpcFailure } from "../errors.js";

/**
 * The call's key as it travels to the worker, the worker's view of the key store is made from it:
 * the private key when it lives in this process (Key.inProcess; the worker makes its own copy), or
 * else the port on which the worker asks the main thread for the unwrap.
 */
export type CarriedKey = { readonly info: KeyInfo; readonly generation: number } & (
  | { readonly inProcess: KeyObject }
  | { readonly unwrapPort: MessagePort }
);

export interface ReencryptTask {
  readonly secretsJwe: string;
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
  | { readonly ok: true; readonly jwe: string; readonly cardLast4: string }
  | {
      readonly ok: false;
      readonly failure: GrpcFailure;
      /** Class name of an unexpected error, for the operator log (its message may quote input). */
      readonly internalKind?: string;
    };

/**
 * Messages on the unwrap port: worker → main is the encrypted key; main → worker is one of these. A
 * ciphertext that does not decrypt is no failure here (the store answers with a random content key);
 * a failure is the store being unable to work.
 */
export type UnwrapReply =
  | { readonly ok: true; readonly cek: Uint8Array }
  | { readonly ok: false; readonly failure: GrpcFailure };
