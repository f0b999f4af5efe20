#!/usr/bin/env bash
# Renders three of Attend's SVG drawings in headless Chromium and checks the screenshots: two
# attention maps (`attend attention-map` on the tiny BERT of Tests/VisualizationTests/Fixtures,
# and a T5 cross-attention map there: target rows by source columns) and a benchmark chart
# (`bench --quick --only softmax --svg`). Each PNG must have the size of
# the SVG's canvas and must not be blank (more than a handful of distinct colours), which
# catches a document a browser refuses or draws empty even when it is well-formed XML.
#
# Usage: scripts/ci-svg-screenshot.sh [OUT_DIR]   (default: .build/svg-screenshots)
# Environment: CHROMIUM (the browser binary; default: chromium, chromium-browser or
# google-chrome on PATH). With CI=true a missing Chromium is installed with apt-get (Debian:
# package chromium). Needs python3 (standard library only) to read the PNGs.
set -euo pipefail

cd "$(dirname "$0")/.."
out="${1:-.build/svg-screenshots}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

browser="${CHROMIUM:-}"
if [ -z "$browser" ]; then
    for b in chromium chromium-browser google-chrome; do
        if command -v "$b" >/dev/null 2>&1; then browser="$b"; break; fi
    done
fi
if [ -z "$browser" ]; then
    if [ "${CI:-}" = "true" ]; then
        echo "ci-svg-screenshot: installing chromium"
        sudo=""
        if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
        browser=chromium
    else
        echo "ci-svg-screenshot: no chromium on PATH (set CHROMIUM, or CI=true to install it)" >&2
        exit 1
    fi
fi

echo "ci-svg-screenshot: building attend and bench"
swift build --product attend >/dev/null
swift build -c release --product bench >/dev/null
bin="$(swift build --show-bin-path)"
release="$(swift build -c release --show-bin-path)"

"$bin/attend" attention-map --model Tests/VisualizationTests/Fixtures/bert --layer 1 \
    --svg "$out/attention-map.svg" "Paris is the capital of France & the cat <sat>."
"$bin/attend" attention-map --model Tests/VisualizationTests/Fixtures/t5_text --part cross --target "Das Haus" \
    --svg "$out/cross-attention.svg" "The house is small."
"$release/bench" --quick --only softmax --threads 1 --svg "$out/bench" >/dev/null

sandbox=()
if [ "$(id -u)" -eq 0 ]; then sandbox=(--no-sandbox); fi

status=0
for svg in "$out/attention-map.svg" "$out/cross-attention.svg" "$out/bench/softmax.svg"; do
    [ -s "$svg" ] || { echo "ci-svg-screenshot: $svg was not written" >&2; exit 1; }
    # The canvas size from the root element, rounded up to whole pixels.
    read -r width height < <(python3 - "$svg" <<'PY'
import math, sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
print(math.ceil(float(root.get("width"))), math.ceil(float(root.get("height"))))
PY
)
    png="${svg%.svg}.png"
    rm -f "$png"
    "$browser" --headless "${sandbox[@]}" --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
        --screenshot="$png" --window-size="$width,$height" "file://$svg" >/dev/null 2>&1 || true
    if ! python3 - "$png" "$width" "$height" <<'PY'
import struct, sys, zlib

path, want_w, want_h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
try:
    data = open(path, "rb").read()
except OSError:
    sys.exit(f"{path}: no screenshot was written")
if data[:8] != b"\x89PNG\r\n\x1a\n":
    sys.exit(f"{path}: not a PNG")
pos, chunks = 8, []
while pos < len(data):
    (n,) = struct.unpack(">I", data[pos:pos + 4])
    chunks.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]))
    pos += 12 + n
ihdr = next(c for t, c in chunks if t == b"IHDR")
w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
if (w, h) != (want_w, want_h):
    sys.exit(f"{path}: {w}x{h} pixels, expected {want_w}x{want_h}")
if depth != 8 or color not in (2, 6) or interlace:
    sys.exit(f"{path}: unexpected PNG format (depth {depth}, colour type {color}, interlace {interlace})")
bpp = 3 if color == 2 else 4
raw = zlib.decompress(b"".join(c for t, c in chunks if t == b"IDAT"))
stride = w * bpp
prev = bytearray(stride)
colors = set()
for y in range(h):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if f == 1:
            line[i] = (line[i] + a) & 255
        elif f == 2:
            line[i] = (line[i] + b) & 255
        elif f == 3:
            line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    if y % 2 == 0:
        colors.update(bytes(line[x:x + 3]) for x in range(0, stride, bpp * 2))
    prev = line
if len(colors) < 8:
    sys.exit(f"{path}: looks blank ({len(colors)} distinct colours)")
print(f"{path}: {w}x{h} pixels, {len(colors)} distinct colours")
PY
    then
        status=1
    fi
done
exit $status
