import { loadKeyDirectory } from "../../keystore/file/key-directory.js";
import { DIR_OPTIONS, type KeyToolCommand } from "../command.js";
import { printKeyListing } from "../key-listing.js";
import { keyDir, passphrase } from "../options.js";

export const list: KeyToolCommand = {
  name: "list",
  summary: "list keys: fingerprint, alias forms, state, bits, created, file",
  usage: "--dir DIR [--passphrase-file FILE] [--json]",
  options: { ...DIR_OPTIONS, json: { type: "boolean" } },
  async run(values, io) {
    const snapshot = loadKeyDirectory(keyDir(values), passphrase(values), 0);
    const keys = snapshot.index.list().map((k) => ({
      fingerprint: k.fingerprint,
      aliases: k.aliases,
      state: k.state,
      bits: k.modulusBits,
      created: k.createdAt?.toISOString(),
      file: k.label,
    }));
    io.record?.({ keys: keys.length });
    printKeyListing(keys, values.json === true, (k) => k.file, io);
    if (values.json) return;
    for (const warning of snapshot.warnings) io.err(`warning: ${warning}`);
  },
};
