import { DIR_OPTIONS, type KeyToolCommand } from "../command.js";
import { generateKeyFile } from "../key-files.js";
import { keyDir, keyState, passphrase, required } from "../options.js";

export const generate: KeyToolCommand = {
  name: "generate",
  summary: "make a new RSA key in the directory (PKCS#8 PEM, mode 600) and record it in the manifest",
  usage: "--dir DIR --name NAME [--bits 2048|3072|4096] [--state active] [--passphrase-file FILE]",
  options: { ...DIR_OPTIONS, name: { type: "string" }, bits: { type: "string" }, state: { type: "string" } },
  async run(values, io) {
    const pass = passphrase(values);
    const key = generateKeyFile({
      dir: keyDir(values),
      name: required(values, "name"),
      bits: Number(values.bits ?? 2048),
      state: keyState(values, "active"),
      ...(pass ? { passphrase: pass } : {}),
    });
    io.record?.({ fingerprint: key.fingerprint, file: key.file });
    io.out(`${key.fingerprint}  ${key.file}`);
  },
};
