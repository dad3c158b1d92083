/**
 * The token side of `custody-keys`: with `--pkcs11`, generate/import/list/public/set-state work on
 * the PKCS#11 token instead of the key directory. Generated keys are made inside the token and can
 * never be read out; imported keys (migration from files) become non-extractable on the way in.
 */
import { createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { JWE_ALG } from "../../../core/crypto/jwe-decrypt.js";
import type { DiscoveredKey } from "../../keystore/pkcs11/discovery.js";
import { tokenLabel } from "../../keystore/pkcs11/module.js";
import {
  type AdminSession,
  generateInToken,
  importIntoToken,
  listTokenKeys,
  newKeyId,
  withTokenSession,
} from "../../keystore/pkcs11/token-admin.js";
import { formatKeyUri } from "../../keystore/pkcs11/uri.js";
import type { KeyToolCommand, KeyToolIo } from "../command.js";
import { KeyToolError } from "../key-files.js";
import { printKeyListing } from "../key-listing.js";
import { keyState, passphrase, required } from "../options.js";
import { assertLabelFree, describeTokenKeys, findTokenKey, recordState } from "./token-keys.js";
import { keyLabel, stateDir, TOKEN_OPTIONS, TOKEN_USAGE, tokenAccess } from "./token-options.js";

type Values = Record<string, string | boolean | undefined>;
type TokenRun = (values: Values, io: KeyToolIo) => Promise<void>;

function slotLabel(admin: AdminSession): string {
  return tokenLabel(admin.lib, admin.lib.C_GetSessionInfo(admin.session).slotID);
}

function findById(admin: AdminSession, id: Buffer): DiscoveredKey {
  const key = listTokenKeys(admin).find((k) => k.id.equals(id));
  if (key === undefined) throw new KeyToolError("the new key pair is not visible on the token");
  return key;
}

function created(admin: AdminSession, key: DiscoveredKey, io: KeyToolIo): string {
  const uri = formatKeyUri(slotLabel(admin), key.label, key.id);
  io.record?.({ fingerprint: key.forms.canonical, uri });
  return `${key.forms.canonical}  ${uri}`;
}

const generateToken: TokenRun = async (values, io) => {
  const label = keyLabel(values);
  const bits = Number(values.bits ?? 2048);
  if (![2048, 3072, 4096].includes(bits)) throw new KeyToolError("bits must be 2048, 3072 or 4096");
  const state = keyState(values, "active");
  const out = await withTokenSession(tokenAccess(values), async (admin) => {
    assertLabelFree(admin, label);
    const id = newKeyId();
    await generateInToken(admin, label, id, bits);
    const key = findById(admin, id);
    recordState(stateDir(values), key, state, new Date());
    return created(admin, key, io);
  });
  io.out(out);
};

const importToken: TokenRun = async (values, io) => {
  const label = keyLabel(values);
  const state = keyState(values, "active");
  const pem = readFileSync(required(values, "from"));
  const sourcePass = passphrase(values, "from-passphrase-file");
  let out: string;
  try {
    out = await withTokenSession(tokenAccess(values), async (admin) => {
      assertLabelFree(admin, label);
      const id = newKeyId();
      importIntoToken(admin, label, id, pem, sourcePass);
      const key = findById(admin, id);
      recordState(stateDir(values), key, state, new Date());
      return created(admin, key, io);
    });
  } finally {
    pem.fill(0);
    sourcePass?.fill(0);
  }
  io.out(out);
};

const listToken: TokenRun = async (values, io) => {
  const rows = await withTokenSession(tokenAccess(values), (admin) =>
    describeTokenKeys(admin, slotLabel(admin), stateDir(values)),
  );
  io.record?.({ keys: rows.length });
  printKeyListing(rows, values.json === true, (k) => k.uri, io);
};

const publicToken: TokenRun = async (values, io) => {
  const key = await withTokenSession(tokenAccess(values), (admin) =>
    findTokenKey(admin, required(values, "key")),
  );
  io.record?.({ fingerprint: key.forms.canonical });
  const pub = createPublicKey({ key: key.spki, format: "der", type: "spki" });
  const format = (values.format as string | undefined) ?? "pem";
  if (format === "pem") io.out(pub.export({ type: "spki", format: "pem" }).toString().trimEnd());
  else if (format === "jwk") {
    io.out(
      JSON.stringify({
        ...pub.export({ format: "jwk" }),
        use: "enc",
        alg: JWE_ALG,
        kid: key.forms.canonical,
      }),
    );
  } else throw new KeyToolError("--format must be pem or jwk");
};

const setStateToken: TokenRun = async (values, io) => {
  const dir = stateDir(values);
  if (dir === undefined) throw new KeyToolError("--state-dir is required (or set CUSTODY_PKCS11_STATE_DIR)");
  const state = keyState(values);
  const key = await withTokenSession(tokenAccess(values), (admin) =>
    findTokenKey(admin, required(values, "key")),
  );
  recordState(dir, key, state);
  io.record?.({ fingerprint: key.forms.canonical, state_after: state });
  io.out(`${key.forms.canonical}  -> ${state}`);
};

const TOKEN_RUNS: Record<string, { run: TokenRun; usage: string; options: KeyToolCommand["options"] }> = {
  generate: {
    run: generateToken,
    usage: "--label LABEL [--bits 2048|3072|4096] [--state active]",
    options: { label: { type: "string" } },
  },
  import: {
    run: importToken,
    usage: "--label LABEL --from FILE [--from-passphrase-file FILE] [--state active]",
    options: { label: { type: "string" } },
  },
  list: { run: listToken, usage: "[--json]", options: {} },
  public: { run: publicToken, usage: "--key LABEL|FINGERPRINT [--format pem|jwk]", options: {} },
  "set-state": { run: setStateToken, usage: "--key LABEL|FINGERPRINT --state STATE", options: {} },
};

/**
 * The file command, extended: with `--pkcs11` the same command name works on the token. The file
 * command's own behaviour and options are untouched.
 */
export function withPkcs11(command: KeyToolCommand): KeyToolCommand {
  const token = TOKEN_RUNS[command.name];
  if (token === undefined) return command;
  return {
    ...command,
    usage: `${command.usage}\n      ${command.name} ${TOKEN_USAGE} ${token.usage}`,
    options: { ...command.options, ...token.options, ...TOKEN_OPTIONS },
    run: (values, io, positionals) => {
      if (!values.pkcs11) return command.run(values, io, positionals);
      for (const option of ["dir", "passphrase-file", "name"]) {
        if (values[option] !== undefined)
          throw new KeyToolError(`--${option} is for the key directory, not --pkcs11`);
      }
      return token.run(values, io);
    },
  };
}
