#!/usr/bin/env bash
# NEON under emulation: cross-compiles the C kernels (CKernels/, every file, so the x86 ones
# must compile to nothing) with the differential harness Tests/NEONHarness/neon_diff.c for
# aarch64, and runs it under qemu-aarch64 (natively on an AArch64 host). The harness checks
# every slot of the NEON table against the scalar table and double-precision references (the
# attention backward's attn_grad_step through ck_f32_attention_backward included, and the other
# training kernels: cross-entropy, norm training forward and backward, activation and gated
# backward, embedding backward), the 16-bit weight kernels (w16_widen on every pattern, w16_gemv
# on one and two rows, ck_w16_gemm) and the int8-weight kernels (ck_q8_group_sums,
# ck_q8_quantize_rows, q8_gemv and q8_gemm on the sdot path and on the widening smull + sadalp
# baseline).
#
# Builds (each must compile warning-free, -Werror) and runs:
#   gcc-O2    aarch64-linux-gnu-gcc -O2   (-Wno-unknown-pragmas: the templates' unroll hints
#                                          are `#pragma clang loop`, which GCC ignores)
#   clang-O2  clang --target=aarch64-linux-gnu -O2   (the compiler SwiftPM uses)
#   clang-O0  the same at -O0 (no FMA contraction, no vectorizer: catches UB-dependent code)
# Idempotent; works as root without stdin (CI=true). Installs qemu-user, gcc-aarch64-linux-gnu
# and libc6-dev-arm64-cross with apt-get when they are missing. Exit status non-zero on any
# build warning or mismatch. Usage: scripts/ci-neon-qemu.sh [seed]
set -euo pipefail
cd "$(dirname "$0")/.."

SEED="${1:-}"
OUT=.build-neon/qemu
T_START=$(date +%s.%N)
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

HOST_ARCH=$(uname -m)
NATIVE=0
[ "$HOST_ARCH" = aarch64 ] || [ "$HOST_ARCH" = arm64 ] && NATIVE=1

# ------------------------------------------------------------------ packages
if [ "$NATIVE" = 1 ]; then
    GCC=${CC:-cc}
    RUN=()
else
    GCC=aarch64-linux-gnu-gcc
    RUN=(qemu-aarch64)
    need=()
    command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
    command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu)
    [ -f /usr/aarch64-linux-gnu/lib/libc.a ] || need+=(libc6-dev-arm64-cross)
    if [ ${#need[@]} -gt 0 ]; then
        echo "== installing ${need[*]}"
        SUDO=()
        [ "$(id -u)" = 0 ] || SUDO=(sudo -n)
        export DEBIAN_FRONTEND=noninteractive
        "${SUDO[@]}" apt-get update -qq </dev/null
        "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null >/dev/null
    fi
fi

# clang: $CLANG, the Swift toolchain's (next to `swift`), or any clang on PATH
CLANG=${CLANG:-}
if [ -z "$CLANG" ]; then
    if command -v swift >/dev/null 2>&1 && [ -x "$(dirname "$(readlink -f "$(command -v swift)")")/clang" ]; then
        CLANG="$(dirname "$(readlink -f "$(command -v swift)")")/clang"
    elif [ -x /opt/swift/usr/bin/clang ]; then
        CLANG=/opt/swift/usr/bin/clang
    elif command -v clang >/dev/null 2>&1; then
        CLANG=$(command -v clang)
    fi
fi

echo "== toolchains"
"$GCC" --version | head -1
[ -n "$CLANG" ] && "$CLANG" --version | head -1 || echo "clang: not found (clang builds skipped)"
[ "$NATIVE" = 1 ] && echo "native $HOST_ARCH host: no emulation" || qemu-aarch64 --version | head -1

# ------------------------------------------------------------------ build and run
KSRC=(CKernels/dispatch.c CKernels/cache.c CKernels/core/*.c CKernels/ref/*.c CKernels/arm/neon/*.c CKernels/x86/*/*.c)
WARN=(-Wall -Wextra -Werror)
failed=0

# build <name> <compiler and flags...>: compiles every file separately, links statically
build() {
    local name=$1
    shift
    local dir="$OUT/$name"
    rm -rf "$dir"
    mkdir -p "$dir"
    local objs=()
    for f in "${KSRC[@]}" Tests/NEONHarness/neon_diff.c; do
        local o="$dir/$(echo "$f" | tr / _).o"
        "$@" -std=gnu11 -Iinclude -c "$f" -o "$o"
        objs+=("$o")
    done
    "$GCC" -static "${objs[@]}" -lm -o "$dir/neon_diff"
}

run() {
    local name=$1 t0
    t0=$(date +%s.%N)
    echo "== run $name"
    if timeout 600 "${RUN[@]}" "$OUT/$name/neon_diff" ${SEED:+"$SEED"}; then
        echo "== $name: passed in $(elapsed "$t0") s"
    else
        echo "== $name: FAILED (after $(elapsed "$t0") s)"
        failed=1
    fi
}

configs=(gcc-O2)
t0=$(date +%s.%N)
echo "== build gcc-O2"
build gcc-O2 "$GCC" -O2 "${WARN[@]}" -Wno-unknown-pragmas
if [ -n "$CLANG" ]; then
    CT=()
    [ "$NATIVE" = 1 ] || CT=(--target=aarch64-linux-gnu)
    echo "== build clang-O2"
    build clang-O2 "$CLANG" "${CT[@]}" -O2 "${WARN[@]}"
    echo "== build clang-O0"
    build clang-O0 "$CLANG" "${CT[@]}" -O0 "${WARN[@]}"
    configs+=(clang-O2 clang-O0)
fi
echo "== builds done in $(elapsed "$t0") s"

for c in "${configs[@]}"; do run "$c"; done

echo "== ci-neon-qemu: ${#configs[@]} builds, total $(elapsed "$T_START") s"
if [ "$failed" != 0 ]; then
    echo "== ci-neon-qemu: FAILED"
    exit 1
fi
echo "== ci-neon-qemu: all passed"
