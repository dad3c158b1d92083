/** Every command of `custody-keys`, in the order `--help` lists them. */
import type { KeyToolCommand } from "../command.js";
import { withPkcs11 } from "../pkcs11/commands.js";
import { audit } from "./audit.js";
import { generate } from "./generate.js";
import { importKey } from "./import.js";
import { list } from "./list.js";
import { publicKey } from "./public.js";
import { setState } from "./set-state.js";
import { verify } from "./verify.js";

// withPkcs11: the same commands with --pkcs11 work on the token (src/custody/keytool/pkcs11/).
export const COMMANDS: KeyToolCommand[] = [
  ...[generate, importKey, list, publicKey, setState, verify].map(withPkcs11),
  audit,
];
