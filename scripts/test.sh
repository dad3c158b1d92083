#!/usr/bin/env bash
# The one test command (`npm test`): provisions the machine, then lint, type check and every test.
# Ends with the plain line `tests: N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/provision.sh || exit 1
# shellcheck source=scripts/node-runtime.sh
source scripts/node-runtime.sh
echo "== runtime: Node $(node --version)"

status=0
echo "== lint (biome)"
npx biome check . || status=1
echo "== typecheck (tsc --noEmit)"
npx tsc -p tsconfig.json --noEmit || status=1

echo "== tests (vitest)"
mkdir -p .tmp
rm -f .tmp/vitest.json
npx vitest run --reporter=default --reporter=json --outputFile.json=.tmp/vitest.json "$@" || status=1

if [ -f .tmp/vitest.json ]; then
  node -e '
    const r = require("./.tmp/vitest.json");
    const failed = r.numFailedTests + (r.numFailedTestSuites > 0 && r.numFailedTests === 0 ? r.numFailedTestSuites : 0);
    console.log(`tests: ${r.numPassedTests} passed, ${failed} failed`);
  '
else
  echo "tests: 0 passed, 1 failed"
  status=1
fi
exit $status
