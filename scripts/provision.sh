#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine: the Debian packages below (one apt-get update,
# only when something is missing) and the npm packages from package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/node-runtime.sh
source scripts/node-runtime.sh

# softhsm2 + opensc: the PKCS#11 token and pkcs11-tool; python3-jwcrypto + python3-grpcio: interop
# peers written by other people; postgresql: the multi-instance gateway store; openssl: bench reference;
# iproute2: ip netns and ss for the restricted-segment test (src/tools/deploy/netns.test.ts); g++: the glibc
# shim npm run fuzz builds on Debian 12 (fuzz/glibc236-patch.py); sslscan: the second TLS scanner of the custody
# port (src/custody/custody-tls.test.ts).
DEBIAN_PACKAGES=(softhsm2 opensc python3-jwcrypto python3-grpcio python3-grpc-tools postgresql openssl iproute2 g++ sslscan)

# --npm-only: what running the product needs (the demo); the Debian packages are for the tests.
if [ "${1:-}" = "--npm-only" ]; then DEBIAN_PACKAGES=(); fi

missing=()
for pkg in "${DEBIAN_PACKAGES[@]+"${DEBIAN_PACKAGES[@]}"}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "provision: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "provision: need root to install ${missing[*]} (run as root or install them first)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci when node_modules is absent, older than the lock file, or built for another Node ABI.
abi_marker=node_modules/.card-custody-node-abi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] ||
  [ "$(cat "$abi_marker" 2>/dev/null)" != "$CARD_CUSTODY_NODE_ABI" ]; then
  echo "provision: npm ci (Node $(node --version))"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$CARD_CUSTODY_NODE_ABI" >"$abi_marker"
fi
