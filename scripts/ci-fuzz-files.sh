#!/usr/bin/env bash
# Coverage-guided fuzzing of the file readers (libFuzzer): builds the nested package
# Tests/Fuzz with `-sanitize=fuzzer,address` and runs each target for a short budget on a
# temporary copy of its seed corpus (Tests/Fuzz/Corpus/<target>, so the repository is not
# modified), with its dictionary (Tests/Fuzz/<target>.dict). Fails on any crash, sanitizer
# report, leak, timeout or out-of-memory; the failing input is printed (hex) and kept in
# $FUZZ_ARTIFACTS for upload.
#
#   scripts/ci-fuzz-files.sh                 # 120 s per target
#   FUZZ_SECONDS=600 scripts/ci-fuzz-files.sh
#
# Environment: FUZZ_SECONDS (budget per target, default 120), FUZZ_TARGETS (default all three),
# FUZZ_SCRATCH (build directory, default Tests/Fuzz/.build), FUZZ_ARTIFACTS (where failing
# inputs are copied, default .build-fuzz-artifacts under the repository root; gitignored).
# Reproduce a failure: Tests/Fuzz/.build/release/<target> <input file>. Needs no stdin.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ="$ROOT/Tests/Fuzz"
BUDGET="${FUZZ_SECONDS:-120}"
TARGETS="${FUZZ_TARGETS:-FuzzSafeTensors FuzzTokenizer FuzzTokenizerFamilies}"
SCRATCH="${FUZZ_SCRATCH:-$FUZZ/.build}"
ARTIFACTS="${FUZZ_ARTIFACTS:-$ROOT/.build-fuzz-artifacts}"
# Swift's crash backtracer reads the crashed thread's stack, which AddressSanitizer reports as
# a second error; libFuzzer's own stack trace is enough.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"

start=$(date +%s)
# Release with debug info: about 4x the executions per second of a debug build (bounds,
# overflow and precondition checks stay on in release), symbolized stack traces.
flags=(-c release -Xswiftc -g -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)
echo "== building $FUZZ (${flags[*]})"
# The build's own status decides (a failed build must not leave an older binary to run); the
# linker's "Cannot export local symbol" notes are filtered from its output.
mkdir -p "$SCRATCH"
set +e
swift build --package-path "$FUZZ" --scratch-path "$SCRATCH" "${flags[@]}" </dev/null >"$SCRATCH/build-output.log" 2>&1
build_status=$?
set -e
grep -v "Cannot export local symbol" "$SCRATCH/build-output.log" || true
if [[ $build_status -ne 0 ]]; then echo "error: building $FUZZ failed (status $build_status)" >&2; exit 1; fi
bin="$(swift build --package-path "$FUZZ" --scratch-path "$SCRATCH" "${flags[@]}" --show-bin-path </dev/null)"
for t in $TARGETS; do
    [[ -x "$bin/$t" ]] || { echo "error: $bin/$t was not built" >&2; exit 1; }
done
echo "== built in $(( $(date +%s) - start )) s"

work="$(mktemp -d "${TMPDIR:-/tmp}/attend-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
failed=0
for t in $TARGETS; do
    cp -R "$FUZZ/Corpus/$t" "$work/corpus-$t"
    mkdir "$work/artifacts-$t"
    seeds=$(ls "$work/corpus-$t" | wc -l)
    echo "== $t: $seeds seeds, ${BUDGET} s"
    dict=()
    [[ -f "$FUZZ/$t.dict" ]] && dict=(-dict="$FUZZ/$t.dict")
    t0=$(date +%s)
    set +e
    "$bin/$t" "$work/corpus-$t" -max_total_time="$BUDGET" -timeout=20 -rss_limit_mb=2048 -max_len=8192 \
        "${dict[@]}" -print_final_stats=1 -artifact_prefix="$work/artifacts-$t/" </dev/null >"$work/$t.log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
    grown=$(( $(ls "$work/corpus-$t" | wc -l) - seeds ))
    cov=$(grep -o 'cov: [0-9]*' "$work/$t.log" | tail -1 || true)
    echo "   exit $rc, ${execs:-?} executions in $(( $(date +%s) - t0 )) s, $cov, $grown new corpus inputs"
    found=$(ls "$work/artifacts-$t" | grep -E '^(crash|leak|timeout|oom)-' || true)
    if [[ $rc -ne 0 || -n "$found" ]] || grep -qE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)' "$work/$t.log"; then
        failed=1
        echo "FAIL: $t (exit $rc)"
        grep -nE 'ERROR:|Fatal error|SUMMARY|invariant' "$work/$t.log" | head -20 || true
        tail -40 "$work/$t.log"
        mkdir -p "$ARTIFACTS/$t"
        for f in $found; do
            cp "$work/artifacts-$t/$f" "$ARTIFACTS/$t/"
            echo "-- $f ($(wc -c <"$work/artifacts-$t/$f") bytes), kept in $ARTIFACTS/$t:"
            od -A d -t x1z -v "$work/artifacts-$t/$f" | head -40
        done
    fi
done
echo "== fuzzing done in $(( $(date +%s) - start )) s"
if [[ $failed -ne 0 ]]; then
    echo "FAILED: a fuzz target found a failing input (see above)"
    exit 1
fi
echo "OK: no crash, sanitizer report, leak or timeout"
