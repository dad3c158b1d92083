#!/usr/bin/env node
// The `custody-keys` bin: the compiled CLI when the project is built (dist/), else the TypeScript
// source through tsx, so it works in a fresh checkout and in the production image alike.
import { existsSync } from "node:fs";

const built = new URL("../dist/custody/keytool/cli.js", import.meta.url);
if (existsSync(built)) {
  await import(built.href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import(new URL("../src/custody/keytool/cli.ts", import.meta.url).href);
}
