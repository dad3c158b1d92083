import { createPublicKey } from "node:crypto";
import { CompactEncrypt } from "jose";
import { decryptJwe, parseCompactJwe } from "../../../core/crypto/jwe-decrypt.js";
import { FileKeyStore } from "../../keystore/file/file-key-store.js";
import { DIR_OPTIONS, type KeyToolCommand } from "../command.js";
import { findKey, KeyToolError } from "../key-files.js";
import { keyDir, passphrase } from "../options.js";

/**
 * Round trip per key, through the same code the service runs: a JWE made by jose to the key's public
 * half is parsed and decrypted with the store's unwrap. Proves the file, passphrase and state are usable.
 */
export const verify: KeyToolCommand = {
  name: "verify",
  summary: "round-trip self-test: encrypt a JWE to each key (or --key) and decrypt it with the store",
  usage: "--dir DIR [--key NAME|FINGERPRINT] [--passphrase-file FILE]",
  options: { ...DIR_OPTIONS, key: { type: "string" } },
  async run(values, io) {
    const dir = keyDir(values);
    const passphraseFile =
      (values["passphrase-file"] as string | undefined) ?? process.env.CUSTODY_KEY_PASSPHRASE_FILE;
    const store = FileKeyStore.open({ dir, ...(passphraseFile ? { passphraseFile } : {}) });
    const keys = values.key ? [findKey(dir, values.key as string, passphrase(values))] : store.list();
    let failed = 0;
    for (const key of keys) {
      const probe = new TextEncoder().encode(`custody-keys verify ${key.fingerprint}`);
      const jwe = await new CompactEncrypt(probe)
        .setProtectedHeader({ alg: "RSA-OAEP-256", enc: "A256GCM" })
        .encrypt(createPublicKey({ key: key.spki, format: "der", type: "spki" }));
      try {
        const stored = store.get(key.fingerprint);
        if (!stored) throw new Error("the store does not hold this key");
        const plain = await decryptJwe(parseCompactJwe(jwe), stored.unwrap);
        if (!plain.equals(probe)) throw new Error("round trip returned other bytes");
        io.out(`ok    ${key.fingerprint}  ${key.state}  ${key.label}`);
      } catch {
        failed++;
        io.out(`FAIL  ${key.fingerprint}  ${key.state}  ${key.label}`);
      }
    }
    io.record?.({ keys: keys.length, failed });
    if (failed > 0) throw new KeyToolError(`${failed} of ${keys.length} keys failed the round trip`);
  },
};
