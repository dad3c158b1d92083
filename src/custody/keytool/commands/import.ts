import { DIR_OPTIONS, type KeyToolCommand } from "../command.js";
import { importKeyFile } from "../key-files.js";
import { keyDir, keyState, passphrase, required } from "../options.js";

export const importKey: KeyToolCommand = {
  name: "import",
  summary: "copy an existing RSA private key (PEM, PKCS#8 or PKCS#1) into the directory as PKCS#8",
  usage:
    "--dir DIR --name NAME --from FILE [--from-passphrase-file FILE] [--passphrase-file FILE] [--state active]",
  options: {
    ...DIR_OPTIONS,
    name: { type: "string" },
    from: { type: "string" },
    "from-passphrase-file": { type: "string" },
    state: { type: "string" },
  },
  async run(values, io) {
    const pass = passphrase(values);
    const sourcePass = passphrase(values, "from-passphrase-file");
    const key = importKeyFile({
      dir: keyDir(values),
      name: required(values, "name"),
      source: required(values, "from"),
      state: keyState(values, "active"),
      ...(pass ? { passphrase: pass } : {}),
      ...(sourcePass ? { sourcePassphrase: sourcePass } : {}),
    });
    io.record?.({ fingerprint: key.fingerprint, file: key.file });
    io.out(`${key.fingerprint}  ${key.file}`);
  },
};
