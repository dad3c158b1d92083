/**
 * Re-encryption worker thread: one ReencryptForKnot job per message on its parent port. The Dotva
 * plaintext is produced and overwritten here (inside reencryptForKnot); only the output JWE and the
 * card's last four digits are returned.
 */
import { parentPort } from "node:worker_threads";
import { GCM_IV_BYTES, GCM_TAG_BYTES } from "../../core/crypto/aes-gcm.js";
import { JWE_ALG, JWE_ENC, type ParsedJwe } from "../../core/crypto/jwe-decrypt.js";
import { cachedKnotJwkParser } from "../../core/crypto/knot-jwk.js";
import { runReencryption } from "./run-reencryption.js";
import {
  CONTENT_KEY_BYTES,
  type ReencryptResult,
  type WorkerControl,
  type WorkerMessage,
  type WorkerReply,
  type WorkerStatsReply,
  type WorkerTask,
} from "./task.js";
import { dropOlderThan, heldCopies, inProcessUnwrap, unwrappedKey } from "./worker-keys.js";

/**
 * No stack trace ever leaves this thread (a failure is reported by its class name only), and Node 24's
 * isKeyObject/isCryptoKey throw and catch an internal TypeError on every createCipheriv with a Buffer
 * key and every privateDecrypt/publicEncrypt with an options object: capturing the stacks of those
 * errors cost ~18 µs of CPU per cipher, ~50 µs per re-encryption (BENCHMARKS.md).
 */
Error.stackTraceLimit = 0;

const recipientFor = cachedKnotJwkParser();

/**
 * The JWE the main thread parsed and checked, as views into the transferred buffer: no second parse.
 * The header's kid was only for the key lookup, which the main thread did.
 */
function unpack(task: WorkerTask, offset: number): ParsedJwe {
  const bytes = Buffer.from(task.bytes);
  let at = offset;
  const next = (length: number) => {
    const part = bytes.subarray(at, at + length);
    at += length;
    return part;
  };
  return {
    header: { alg: JWE_ALG, enc: JWE_ENC },
    aad: next(task.aadLength),
    encryptedKey: next(task.encryptedKeyLength),
    iv: next(GCM_IV_BYTES),
    ciphertext: next(task.ciphertextLength),
    tag: next(GCM_TAG_BYTES),
  };
}

async function reencrypt(task: WorkerTask): Promise<ReencryptResult> {
  try {
    return await runReencryption(task, recipientFor, () => {
      const key = task.key;
      if (!key) throw new Error("a re-encryption task arrived without its key");
      return key.kind === "in-process"
        ? { unwrap: inProcessUnwrap(key), jwe: unpack(task, 0) }
        : {
            unwrap: unwrappedKey(Buffer.from(task.bytes, 0, CONTENT_KEY_BYTES)),
            jwe: unpack(task, CONTENT_KEY_BYTES),
          };
    });
  } finally {
    // A content key the main thread unwrapped is overwritten even when the job never reached decryption.
    if (task.key?.kind === "unwrapped") new Uint8Array(task.bytes, 0, CONTENT_KEY_BYTES).fill(0);
  }
}

const port = parentPort;
if (!port) throw new Error("reencrypt-worker runs only as a worker thread");
const control = (message: WorkerControl): void => {
  if (message.control === "drop-older") dropOlderThan(message.generation);
  else port.postMessage({ id: message.id, stats: heldCopies() } satisfies WorkerStatsReply);
};
port.on("message", (message: WorkerMessage) => {
  if ("control" in message) return control(message);
  void reencrypt(message).then((result) =>
    port.postMessage({ id: message.id, ...result } satisfies WorkerReply),
  );
});
