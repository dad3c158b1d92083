import { createPublicKey } from "node:crypto";
import { JWE_ALG } from "../../../core/crypto/jwe-decrypt.js";
import { DIR_OPTIONS, type KeyToolCommand } from "../command.js";
import { findKey, KeyToolError } from "../key-files.js";
import { keyDir, passphrase, required } from "../options.js";

export const publicKey: KeyToolCommand = {
  name: "public",
  summary: "print a key's public half, ready to give to Dotva: PEM (SPKI) or JWK",
  usage: "--dir DIR --key NAME|FINGERPRINT [--format pem|jwk]",
  options: { ...DIR_OPTIONS, key: { type: "string" }, format: { type: "string" } },
  async run(values, io) {
    const key = findKey(keyDir(values), required(values, "key"), passphrase(values));
    io.record?.({ fingerprint: key.fingerprint });
    const pub = createPublicKey({ key: key.spki, format: "der", type: "spki" });
    const format = (values.format as string | undefined) ?? "pem";
    if (format === "pem") io.out(pub.export({ type: "spki", format: "pem" }).toString().trimEnd());
    else if (format === "jwk") {
      const jwk = pub.export({ format: "jwk" });
      io.out(JSON.stringify({ ...jwk, use: "enc", alg: JWE_ALG, kid: key.fingerprint }));
    } else throw new KeyToolError("--format must be pem or jwk");
  },
};
