#!/usr/bin/env bash
# The one test command (`npm test`): provisions the machine, then lint, type check, every test and, after a
# whole-suite run, the check that docs/assurance.md is what this run's report gives.
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
echo "== layers (each part of src/ imports only the parts below it)"
node scripts/check-layers.mjs || status=1
echo "== typecheck (tsc --noEmit)"
npx tsc -p tsconfig.json --noEmit || status=1

echo "== tests (vitest)"
mkdir -p .tmp
rm -f .tmp/vitest.json
vitest_status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=.tmp/vitest.json "$@" || vitest_status=$?
[ "$vitest_status" -eq 0 ] || status=1

# docs/assurance.md is generated from the whole suite's report and must be what this run gives; only a
# run of the whole suite (no arguments) has every control's tests. A difference counts as a failure.
assurance_status=0
if [ "$#" -eq 0 ] && [ -f .tmp/vitest.json ]; then
  echo "== docs/assurance.md (generated from this run's report)"
  npx tsx src/tools/docs/gen-assurance.ts --check --report .tmp/vitest.json || assurance_status=1
fi

# Every declared test must have run and passed: a skipped test, a file that crashed before reporting or an
# unhandled error all count as failures, so the closing line never hides them.
if [ -f .tmp/vitest.json ]; then
  VITEST_STATUS=$vitest_status ASSURANCE_STATUS=$assurance_status node -e '
    const r = require("./.tmp/vitest.json");
    let failed = r.numTotalTests - r.numPassedTests + Number(process.env.ASSURANCE_STATUS);
    if (failed === 0 && (process.env.VITEST_STATUS !== "0" || r.numFailedTestSuites > 0)) failed = 1;
    console.log(`tests: ${r.numPassedTests} passed, ${failed} failed`);
    process.exit(failed === 0 ? 0 : 1);
  ' || status=1
else
  echo "tests: 0 passed, 1 failed"
  status=1
fi
exit $status
