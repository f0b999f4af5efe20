#!/usr/bin/env bash
# Formats the project: swift-format (.swift-format: 4-space indentation, 150 columns, existing
# line breaks respected) on Swift sources, clang-format (.clang-format: LLVM style, 4 spaces,
# 100 columns, comments untouched) on the C kernels and headers.
#   bash scripts/format.sh          rewrite files in place
#   bash scripts/format.sh --check  list files that would change; exit 1 if any
# clang-format comes from Debian's clang-format package (apt-get install clang-format).
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
[ "${1:-}" = "--check" ] && check=1
swift_files=$(git ls-files '*.swift' | grep -v '^Tests/Fuzz/Corpus/' || true)
c_files=$(git ls-files 'CKernels/*.c' 'CKernels/*.h' 'include/*.h' 'Tests/NEONHarness/*.c')
changed=0
if [ $check = 1 ]; then
    for f in $swift_files; do
        if ! swift format format --configuration .swift-format "$f" | cmp -s - "$f"; then echo "swift-format: $f"; changed=1; fi
    done
    for f in $c_files; do
        if ! clang-format --style=file "$f" | cmp -s - "$f"; then echo "clang-format: $f"; changed=1; fi
    done
    exit $changed
fi
swift format format --configuration .swift-format -i $swift_files
clang-format --style=file -i $c_files
echo "format: $(echo $swift_files | wc -w) Swift and $(echo $c_files | wc -w) C files formatted"
