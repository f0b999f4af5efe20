#!/usr/bin/env bash
# Interleaved rounds of the training benchmark, Attend against PyTorch: each round runs
# `bench --only train --threads T --json` (base encoder and BERT-mini, 1 and T threads, each
# configuration in its own process), then `torch_train_step.py` for both models at 1 and T
# threads (each its own process), so both sides see the same machine load in turn. Prints,
# per model and thread count, the per-round tokens/s of both sides and their ratio
# (Attend / PyTorch: above 1 means Attend trains faster), the median and range of each, and
# both sides' peak resident memory. Raw JSON lines and both sides' stderr stay in the
# output dir.
#
#   swift build -c release --product bench
#   pip install torch transformers
#   bash Benchmarks/scripts/train_side_by_side.sh [--bench .build/release/bench] [--rounds 3]
#        [--threads 2] [--out DIR] [--min-seconds 5]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench="$here/../../.build/release/bench"
rounds=3
threads=2
out=""
min_seconds=5
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bench) bench="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --min-seconds) min_seconds="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "train_side_by_side.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
for v in "$rounds" "$threads" "$min_seconds"; do
    [[ "$v" =~ ^[0-9]+$ && "$v" -ge 1 ]] || { echo "train_side_by_side.sh: '$v' is not a positive integer" >&2; exit 2; }
done
[[ -x "$bench" ]] || { echo "train_side_by_side.sh: no bench binary at $bench (swift build -c release --product bench)" >&2; exit 2; }
python3 -c 'import torch, transformers' 2> /dev/null \
    || { echo "train_side_by_side.sh: needs torch and transformers (pip install torch transformers)" >&2; exit 2; }
[[ -n "$out" ]] || out="$(mktemp -d "${TMPDIR:-/tmp}/train_side_by_side.XXXXXX")"
mkdir -p "$out"
raw="$out/train.jsonl"
: > "$raw"

tag() {  # tag every JSON line with the round and the side
    python3 -c '
import json, sys
rnd, side = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        row = json.loads(line); row.update(round=int(rnd), side=side); print(json.dumps(row))
' "$@"
}

thread_counts=(1)
[[ "$threads" -gt 1 ]] && thread_counts+=("$threads")
echo "$rounds rounds, threads ${thread_counts[*]}; bench $bench; raw lines in $raw" >&2
for ((r = 1; r <= rounds; r++)); do
    echo "round $r/$rounds: Attend..." >&2
    "$bench" --only train --threads "$threads" --json 2> "$out/bench_stderr_r$r.txt" | tag "$r" attend >> "$raw"
    for model in base bert-mini; do
        for t in "${thread_counts[@]}"; do
            echo "round $r/$rounds: PyTorch $model, $t thread(s)..." >&2
            python3 "$here/torch_train_step.py" --model "$model" --threads "$t" --min-seconds "$min_seconds" \
                2>> "$out/torch_stderr_r$r.txt" | tag "$r" torch >> "$raw"
        done
    done
done

python3 - "$raw" <<'EOF'
import json, statistics, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cell = {}  # (model, threads, side, round) -> (tokens/s, peak RSS MiB, CPU ms per step)
for row in rows:
    if row["side"] == "attend" and row.get("name", "").startswith("train "):
        model = row["name"][len("train "):]
        cell[(model, row["threads"], "attend", row["round"])] = (row["tokens_per_s"], row["rss_mib"], row.get("cpu_ms"))
    elif row["side"] == "torch" and row.get("peer") == "pytorch":
        cell[(row["model"], row["threads"], "torch", row["round"])] = (row["tokens_per_s"], row["peak_rss_mib"], row.get("cpu_ms_median"))
def rng(xs, f="{:.1f}"):
    return f"median {f.format(statistics.median(xs))} (range {f.format(min(xs))}-{f.format(max(xs))})" if xs else "n/a"
print("Training step (forward + backward + AdamW): tokens/s per round; ratio = Attend / PyTorch (> 1: Attend faster)")
for model in ["base", "bert-mini"]:
    for t in sorted({k[1] for k in cell if k[0] == model}):
        rounds = sorted({k[3] for k in cell if k[0] == model and k[1] == t})
        a, p, ratio, ra, rp, cpu_ratio = [], [], [], [], [], []
        print(f"\n{model}, {t} thread(s)")
        print(f"{'round':>5}  {'Attend tok/s':>12}  {'PyTorch tok/s':>13}  {'ratio':>6}  {'Attend MiB':>10}  {'PyTorch MiB':>11}")
        for r in rounds:
            x, y = cell.get((model, t, "attend", r)), cell.get((model, t, "torch", r))
            if x: a.append(x[0]); ra.append(x[1])
            if y: p.append(y[0]); rp.append(y[1])
            if x and y: ratio.append(x[0] / y[0])
            if x and y and x[2] and y[2]: cpu_ratio.append(y[2] / x[2])
            f = lambda c, i, w: f"{c[i]:{w}.1f}" if c else " " * w
            print(f"{r:>5}  {f(x, 0, 12)}  {f(y, 0, 13)}  {(f'{x[0] / y[0]:6.3f}' if x and y else ' ' * 6)}  {f(x, 1, 10)}  {f(y, 1, 11)}")
        print(f"  tokens/s Attend {rng(a)}, PyTorch {rng(p)}")
        print(f"  ratio Attend/PyTorch {rng(ratio, '{:.3f}')}, {len(ratio)} rounds")
        print(f"  peak RSS MiB Attend {rng(ra, '{:.0f}')}, PyTorch {rng(rp, '{:.0f}')}")
        if cpu_ratio:  # CPU time per step: on a loaded machine the 1-thread comparison to trust
            print(f"  CPU time per step PyTorch/Attend {rng(cpu_ratio, '{:.3f}')} (> 1: Attend needs less CPU time)")
EOF
