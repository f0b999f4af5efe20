#!/usr/bin/env bash
# The hostile-input harness for longer than `swift test` gives it: CASES generated command
# lines (default 2000) and LIBRARY_CASES hostile library calls (default 20000) against the
# debug `attend`, with a fresh seed per run unless ATTEND_TEST_SEED is set (printed, so a
# failure is repeated with the reproducer line the test prints). Exit status: the tests'.
#   CASES=5000 bash scripts/ci-hostile-input.sh
set -euo pipefail
cd "$(dirname "$0")/.."
seed="${ATTEND_TEST_SEED:-$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}"
echo "hostile input: ATTEND_TEST_SEED=$seed CASES=${CASES:-2000} LIBRARY_CASES=${LIBRARY_CASES:-20000}"
swift build --build-tests
ATTEND_TEST_SEED="$seed" ATTEND_HOSTILE_CASES="${CASES:-2000}" ATTEND_HOSTILE_LIBRARY_CASES="${LIBRARY_CASES:-20000}" \
    swift test --skip-build --filter HostileInputTests
