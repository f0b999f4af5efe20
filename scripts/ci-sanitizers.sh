#!/usr/bin/env bash
# Sanitizer pass of the C kernels and their Swift callers (issue 7, part 2).
#
# For each of AddressSanitizer (--sanitize=address) and UndefinedBehaviorSanitizer (clang's
# -fsanitize=undefined on the C kernels, see below), in its own scratch path
# (.build-asan, .build-ubsan), this builds the package instrumented, runs the kernel tests
#   swift test --filter 'KernelTests|AttentionTests|KernelFuzzTests'
# and then a short differential-fuzz budget (`kernel-fuzz --seconds $FUZZ_SECONDS`, every kernel
# on every variant this CPU runs, the attention backward's attn-backward included; its tests are
# AttentionTests/AttentionBackward*). It fails on a test failure, a fuzz mismatch or any sanitizer
# report: ASan aborts on its first error by default; UBSan is made to halt too, and both logs
# are also searched for report markers ("runtime error:", "AddressSanitizer",
# "LeakSanitizer", "UndefinedBehaviorSanitizer") in case a report did not stop the process.
#
# Usage: scripts/ci-sanitizers.sh [address|undefined]...   (default: both)
# Environment: FUZZ_SECONDS (default 60), FUZZ_SEED (default: a fixed seed per run date).
# Timings of each step are printed; on 2 cores each whole pass takes a few minutes.
set -euo pipefail

cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
FUZZ_SEED="${FUZZ_SEED:-$(date -u +%Y%m%d)}"
FILTER='KernelTests|AttentionTests|KernelFuzzTests'
SANITIZERS=("$@")
if [ "${#SANITIZERS[@]}" -eq 0 ]; then SANITIZERS=(address undefined); fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=0:strict_string_checks=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

now() { date +%s; }

# SwiftPM 6.3 here sometimes fails a second invocation on the same scratch path with
# "unknown build description"; dropping its cached build plan (the objects stay) fixes it.
spm() {
    local scratch=$1
    shift
    local out
    out="$(mktemp)"
    if swift "$@" 2>&1 | tee "$out"; then rm -f "$out"; return 0; fi
    if grep -q "unknown build description" "$out"; then
        rm -f "$out" "$scratch"/*.yaml "$scratch"/build.db "$scratch"/build.db-*
        echo "ci-sanitizers: retrying after SwiftPM's 'unknown build description'"
        swift "$@" 2>&1
        return $?
    fi
    rm -f "$out"
    return 1
}
status=0

for san in "${SANITIZERS[@]}"; do
    case "$san" in
        address) scratch=.build-asan; flags=(--sanitize=address) ;;
        # swiftc has no -sanitize=undefined on Linux (SwiftPM's --sanitize=undefined stops with
        # "unsupported option"), so UBSan instruments the C kernels through clang and links
        # its runtime through the clang linker driver; the Swift code keeps its own checks
        # (overflow, bounds, unwrap traps of a debug build).
        undefined) scratch=.build-ubsan; flags=(-Xcc -fsanitize=undefined -Xcc -fno-omit-frame-pointer -Xswiftc -Xclang-linker -Xswiftc -fsanitize=undefined) ;;
        *) echo "ci-sanitizers: unknown sanitizer '$san' (address or undefined)" >&2; exit 2 ;;
    esac
    mkdir -p "$scratch"
    log="$scratch/ci-sanitizers.log"
    : > "$log"
    pass_start=$(now)
    echo "=== $san: swift test --filter '$FILTER' (builds every target, kernel-fuzz included)"
    t=$(now)
    if ! spm "$scratch" test --scratch-path "$scratch" "${flags[@]}" --filter "$FILTER" 2>&1 | tee -a "$log"; then
        echo "ci-sanitizers: $san build or tests failed" >&2
        status=1
    fi
    echo "=== $san: build + tests took $(( $(now) - t )) s"

    echo "=== $san: kernel-fuzz --seconds $FUZZ_SECONDS --seed $FUZZ_SEED"
    t=$(now)
    bin="$scratch/debug/kernel-fuzz"
    if [ ! -x "$bin" ]; then
        spm "$scratch" build --scratch-path "$scratch" "${flags[@]}" --product kernel-fuzz 2>&1 | tee -a "$log" || status=1
    fi
    if ! "$bin" --seconds "$FUZZ_SECONDS" --seed "$FUZZ_SEED" 2>&1 | tee -a "$log"; then
        echo "ci-sanitizers: $san kernel-fuzz failed (mismatch or sanitizer abort)" >&2
        status=1
    fi
    echo "=== $san: fuzz took $(( $(now) - t )) s"

    if grep -E -q "runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|SUMMARY: (Address|UndefinedBehavior)Sanitizer" "$log"; then
        echo "ci-sanitizers: $san reported a problem:" >&2
        grep -E -m 20 "runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|SUMMARY: (Address|UndefinedBehavior)Sanitizer" "$log" >&2
        status=1
    fi
    echo "=== $san: whole pass took $(( $(now) - pass_start )) s (log: $log)"
done

if [ "$status" -ne 0 ]; then
    echo "ci-sanitizers: FAILED" >&2
else
    echo "ci-sanitizers: clean (${SANITIZERS[*]})"
fi
exit "$status"
