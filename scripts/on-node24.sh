#!/usr/bin/env bash
# Runs one command on Node 24 LTS (scripts/node-runtime.sh), whatever node the machine has. The npm
# scripts that run the product (demo, services, key CLI, dev tools, benches) go through it, so they run
# on the runtime `npm test` tests and the Dockerfile ships, against native addons built for it.
set -euo pipefail
# shellcheck source=scripts/node-runtime.sh
source "$(dirname "${BASH_SOURCE[0]}")/node-runtime.sh"
exec "$@"
