#!/usr/bin/env bash
# Builds Attend's API documentation (Sources/Attend/Attend.docc plus every public symbol's
# doc comment) with the toolchain's own `docc`: no plugin, no package dependency, no network.
#
#   bash scripts/build-docs.sh            # archive in .build/docs/Attend.doccarchive
#   DOCS_OUTPUT=/some/dir bash scripts/build-docs.sh
#
# Steps:
#   1. compile the Attend target once with -emit-symbol-graph into its own scratch folder
#      (.build/docs-build: the flags differ from a plain `swift build`, so sharing .build
#      would make the next plain build recompile everything);
#   2. check the symbol graph: every public symbol written in the sources (those with a
#      source location; the compiler's synthesized Equatable/Hashable/RawRepresentable
#      members have none) must have a doc comment; the missing ones are listed, file:line;
#   3. `docc convert --warnings-as-errors`: a broken ``Symbol`` link, an unknown topic or any
#      other docc warning fails the build.
# Exit status: 0 when all passed, 1 otherwise (with the reason on stderr).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scratch="$root/.build/docs-build"
graphs="$root/.build/docs-symbol-graphs"
output="${DOCS_OUTPUT:-$root/.build/docs/Attend.doccarchive}"

if [[ -n "${DOCC:-}" ]]; then
    docc="$DOCC"
elif command -v docc >/dev/null 2>&1; then
    docc="$(command -v docc)"
else
    # The toolchain ships docc next to swift.
    docc="$(dirname "$(readlink -f "$(command -v swift)")")/docc"
fi
[[ -x "$docc" ]] || { echo "build-docs: docc not found (set DOCC=/path/to/docc)" >&2; exit 1; }

# The compiler writes the graph when it compiles the module, so an up-to-date build writes
# none: the graph of the last compile is kept, and when it is missing (the graph folder was
# removed but not the build) the scratch folder is removed and everything built again.
build_graph() {
    swift build --target Attend --scratch-path "$scratch" \
        -Xswiftc -emit-symbol-graph -Xswiftc -emit-symbol-graph-dir -Xswiftc "$graphs"
}
echo "build-docs: symbol graph of Attend (swift build --target Attend, scratch $scratch)"
mkdir -p "$graphs"
build_graph
if [[ ! -s "$graphs/Attend.symbols.json" ]]; then
    rm -rf "$graphs" "$scratch"
    mkdir -p "$graphs"
    build_graph
fi
[[ -s "$graphs/Attend.symbols.json" ]] || { echo "build-docs: no $graphs/Attend.symbols.json" >&2; exit 1; }

echo "build-docs: every public symbol has a doc comment"
python3 - "$graphs" "$root" <<'EOF'
import json, os, sys
graphs, root = sys.argv[1], sys.argv[2]
missing, checked = [], 0
for name in sorted(os.listdir(graphs)):
    if not name.endswith(".symbols.json"):
        continue
    with open(os.path.join(graphs, name)) as f:
        graph = json.load(f)
    for s in graph["symbols"]:
        if s.get("accessLevel") not in ("public", "open"):
            continue
        location = s.get("location")
        if location is None:
            continue  # synthesized by the compiler (hashValue, init(rawValue:), ...)
        checked += 1
        lines = (s.get("docComment") or {}).get("lines") or []
        if not any(l.get("text", "").strip() for l in lines):
            uri = location["uri"].removeprefix("file://")
            path = os.path.relpath(uri, root)
            line = location.get("position", {}).get("line", 0) + 1
            missing.append(f"{path}:{line}: {s['kind']['displayName'].lower()} "
                           f"{'.'.join(s['pathComponents'])} has no doc comment")
for m in sorted(set(missing)):
    print(m, file=sys.stderr)
if missing:
    print(f"build-docs: {len(set(missing))} of {checked} public symbols lack a doc comment", file=sys.stderr)
    sys.exit(1)
print(f"build-docs: {checked} public symbols, all documented")
EOF

echo "build-docs: docc convert (warnings are errors)"
rm -rf "$output"
mkdir -p "$(dirname "$output")"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
"$docc" convert Sources/Attend/Attend.docc \
    --additional-symbol-graph-dir "$graphs" \
    --fallback-display-name Attend \
    --fallback-bundle-identifier org.attend.Attend \
    --output-path "$output" \
    --warnings-as-errors >"$log" 2>&1 || status=$?
cat "$log"
# --warnings-as-errors already fails on a warning; the grep is a second guard in case a
# docc version prints a warning without failing.
if [[ $status -ne 0 ]] || grep -qiE '^(warning|error)' "$log"; then
    echo "build-docs: docc reported problems (above)" >&2
    exit 1
fi
echo "build-docs: archive at $output"
echo "build-docs: to read it, serve the folder (python3 -m http.server -d \"$output\" 8000) and open"
echo "           http://localhost:8000/documentation/attend"
