#!/usr/bin/env bash
# Interleaved rounds of the base encoder benchmark, Attend against ONNX Runtime: each round
# runs `bench --only encoder --seq N --threads 2 --json` (1 and 2 threads), then
# `ort_encoder.py --seq N --threads 1,2`, so both see the same machine load in turn. Prints a
# table of per-round medians and ratios (ONNX Runtime ms / Attend ms: above 1 means Attend is
# faster), with the median and range of every column, and the machine load of each round.
# Raw JSON lines and both sides' stderr stay in the output dir.
#
#   swift build -c release --product bench
#   bash Benchmarks/scripts/interleaved_encoder.sh [--bench .build/release/bench] [--seq 512]
#        [--rounds 5] [--threads 2] [--out DIR] [-- extra ort_encoder.py args]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench="$here/../../.build/release/bench"
seq=512
rounds=5
threads=2
out=""
ort_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bench) bench="$2"; shift 2 ;;
        --seq) seq="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --) shift; ort_args=("$@"); break ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "interleaved_encoder.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
for v in "$seq" "$rounds" "$threads"; do
    [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "interleaved_encoder.sh: '$v' is not a positive integer" >&2; exit 2; }
done
[[ -x "$bench" ]] || { echo "interleaved_encoder.sh: no bench binary at $bench (swift build -c release --product bench)" >&2; exit 2; }
[[ -n "$out" ]] || out="$(mktemp -d "${TMPDIR:-/tmp}/interleaved_encoder.XXXXXX")"
mkdir -p "$out"
raw="$out/seq$seq.jsonl"
: > "$raw"

tag() {  # tag every JSON line with the round, the side and the 1-minute load average before it ran
    python3 -c '
import json, sys
rnd, side, load = sys.argv[1], sys.argv[2], float(sys.argv[3])
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        row = json.loads(line); row.update(round=int(rnd), side=side, load1=load); print(json.dumps(row))
' "$@"
}
load1() { cut -d' ' -f1 /proc/loadavg; }

# The ONNX export (first use of a seq) happens before round 1, untimed.
python3 "$here/ort_encoder.py" --seq "$seq" --threads 1 --min-reps 1 --min-seconds 0 --warmup 0 "${ort_args[@]}" > /dev/null

echo "seq $seq, $rounds rounds, threads 1 and $threads; bench $bench; raw lines in $raw" >&2
for ((r = 1; r <= rounds; r++)); do
    echo "round $r/$rounds: Attend..." >&2
    l=$(load1)
    "$bench" --only encoder --seq "$seq" --threads "$threads" --json 2> "$out/bench_stderr_seq${seq}_r$r.txt" \
        | tag "$r" attend "$l" >> "$raw"
    echo "round $r/$rounds: ONNX Runtime..." >&2
    l=$(load1)
    python3 "$here/ort_encoder.py" --seq "$seq" --threads "1,$threads" "${ort_args[@]}" 2> "$out/ort_stderr_seq${seq}_r$r.txt" \
        | tag "$r" ort "$l" >> "$raw"
done

python3 - "$raw" "$seq" "$threads" <<'EOF'
import json, statistics, sys

raw, seq, nthreads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = [json.loads(l) for l in open(raw) if l.strip()]
cell = {}  # (round, side, threads) -> (ms, load1)
cpu = {}   # (round, side) -> 1-thread process CPU ms
peak = {}  # round -> Attend's measured 1-thread FMA peak, GFLOP/s (drops when the machine is busy)
for row in rows:
    if row["side"] == "attend" and row.get("name") == "fma peak":
        peak[row["round"]] = row["gflops"]
    if row["side"] == "attend" and row.get("name") == f"encoder base seq {seq}":
        cell[(row["round"], "attend", row["threads"])] = (row["ms"], row["load1"])
        if row["threads"] == 1 and "cpu_ms" in row:
            cpu[(row["round"], "attend")] = row["cpu_ms"]
    elif row["side"] == "ort" and row.get("peer") == "onnxruntime":
        cell[(row["round"], "ort", row["threads"])] = (row["ms_median"], row["load1"])
        if row["threads"] == 1 and "cpu_ms_median" in row:
            cpu[(row["round"], "ort")] = row["cpu_ms_median"]
rounds = sorted({k[0] for k in cell})
threads = [1, nthreads] if nthreads > 1 else [1]
cols = []
for t in threads:
    cols += [(f"Attend {t}t ms", "attend", t), (f"ORT {t}t ms", "ort", t), (f"ratio {t}t", "ratio", t)]
table = {c[0]: [] for c in cols}
lines = []
head = f"{'round':>5}  " + "  ".join(f"{c[0]:>12}" for c in cols) + f"  {'load (A/O)':>11}  {'FMA GF/s':>8}"
lines.append(head)
for r in rounds:
    vals = []
    for name, side, t in cols:
        if side == "ratio":
            a, o = cell.get((r, "attend", t)), cell.get((r, "ort", t))
            v = o[0] / a[0] if a and o else None
        else:
            c = cell.get((r, side, t))
            v = c[0] if c else None
        if v is not None:
            table[name].append(v)
        vals.append(v)
    la = cell.get((r, "attend", 1), (0, float("nan")))[1]
    lo = cell.get((r, "ort", 1), (0, float("nan")))[1]
    fmt = lambda name, v: " " * 12 if v is None else (f"{v:12.3f}" if name.startswith("ratio") else f"{v:12.1f}")
    lines.append(f"{r:>5}  " + "  ".join(fmt(c[0], v) for c, v in zip(cols, vals)) + f"  {la:5.2f}/{lo:<5.2f}  {peak.get(r, float('nan')):8.1f}")
def summary(label, f):
    out = []
    for name, _, _ in cols:
        xs = table[name]
        out.append(" " * 12 if not xs else (f"{f(xs):12.3f}" if name.startswith("ratio") else f"{f(xs):12.1f}"))
    return f"{label:>5}  " + "  ".join(out)
lines.append(summary("med", statistics.median))
lines.append(summary("min", min))
lines.append(summary("max", max))
print(f"Base encoder, seq {seq}: per-round medians in ms; ratio = ORT ms / Attend ms (> 1: Attend faster)")
print("load = 1-minute load average before each side ran; FMA GF/s = the 1-thread FMA peak bench measured that round")
print("\n".join(lines))
pairs = [(cpu[(r, "attend")], cpu[(r, "ort")]) for r in rounds if (r, "attend") in cpu and (r, "ort") in cpu]
if pairs:
    ratios = [o / a for a, o in pairs]
    print("1 thread, process CPU ms per run (what the work costs while it runs; immune to time-slicing):")
    for r, (a, o) in zip(rounds, pairs):
        print(f"  round {r}: Attend {a:8.1f}  ORT {o:8.1f}  ratio {o / a:.3f}")
    print(f"1 thread CPU time: median ratio {statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f}), "
          f"Attend median {statistics.median([a for a, _ in pairs]):.1f} ms, ORT {statistics.median([o for _, o in pairs]):.1f} ms")
for t in threads:
    a, o = table[f"Attend {t}t ms"], table[f"ORT {t}t ms"]
    if a and o:
        print(f"{t} thread(s): ratio of medians {statistics.median(o) / statistics.median(a):.3f}, "
              f"median of per-round ratios {statistics.median(table[f'ratio {t}t']):.3f} "
              f"(range {min(table[f'ratio {t}t']):.3f}-{max(table[f'ratio {t}t']):.3f}), {len(a)} rounds")
EOF
