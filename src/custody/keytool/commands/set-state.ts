import { DIR_OPTIONS, type KeyToolCommand } from "../command.js";
import { findKey, setKeyState } from "../key-files.js";
import { keyDir, keyState, passphrase, required } from "../options.js";

export const setState: KeyToolCommand = {
  name: "set-state",
  summary: "set a key's state (active, decrypt-only, disabled); send the service SIGHUP to apply",
  usage: "--dir DIR --key NAME|FINGERPRINT --state STATE",
  options: { ...DIR_OPTIONS, key: { type: "string" }, state: { type: "string" } },
  async run(values, io) {
    const dir = keyDir(values);
    const key = findKey(dir, required(values, "key"), passphrase(values));
    const state = keyState(values);
    setKeyState(dir, key, state);
    io.record?.({ fingerprint: key.fingerprint, state_before: key.state, state_after: state });
    io.out(`${key.fingerprint}  ${key.state} -> ${state}`);
  },
};
