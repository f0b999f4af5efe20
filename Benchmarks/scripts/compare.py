#!/usr/bin/env python3
"""Attend side by side with its peers, in interleaved rounds.

Each round runs one of Attend's bench sections (`bench ... --json`) and then the peer doing the
same job with the same shapes, so both see the machine in the same state in turn (Attend, peer,
Attend, peer, ...; a shared machine's speed drifts by tens of percent within minutes). Per
comparison and thread count it prints the median and range over the rounds of the ratio
peer time / Attend time (> 1: Attend faster) and each side's median time, and writes the same
as JSON with --json OUT.

    python3 Benchmarks/scripts/compare.py [--rounds 5] [--threads 1,2]
        [--only gemm,encoder,attention,minilm,train,lm] [--bench PATH] [--minilm DIR]
        [--no-venv | --venv DIR] [--json OUT] [--out DIR]

The comparisons (shapes as bench measures them; the peer scripts next to this one):

  gemm       SGEMM C = A B^T, float32, square sizes --gemm-sizes (default 512,1024,2048,4096):
             `bench --only gemm --gemm-sizes ...` against numpy's OpenBLAS (numpy_gemm.py, one
             process per thread count with OPENBLAS_NUM_THREADS; OPENBLAS_CORETYPE=SkylakeX
             on an AMD CPU with AVX-512, which OpenBLAS may misdetect, unless already set).
  encoder    the paper's base encoder (6 post-LN layers, d 512, 8 heads, d_ff 2048) on one
             sequence of each of --encoder-seqs tokens (default 512,4096): `bench --only
             encoder --seq N` against ONNX Runtime running the same model exported from
             PyTorch (ort_encoder.py).
  attention  attention at batch 1, 8 heads of 64, --attention-seq tokens (default 4096), no
             mask: `bench --only attention --fused-only` against ONNX Runtime's
             MultiHeadAttention (ort_attention.py).
  minilm     all-MiniLM-L6-v2 sentence embeddings from strings, 256 sentences at batch 32:
             `bench --only bert` against ONNX Runtime's fused BERT graph (ort_minilm.py). With
             --minilm DIR both sides load that folder; without, both build a random model of
             its shape (bench is pointed at an empty folder so it never picks up one of its
             own). The two sides' mean token counts are checked equal.
  train      one training step (forward, backward, AdamW) of the base encoder on [8, 512, 512]
             and of BERT-mini's MLM on [8, 128]: `bench --only train` against PyTorch
             (torch_train_step.py, one process per model and thread count).
  lm         decoder-only models of --lm-models' shapes (default gpt2-small; tinyllama:
             TinyLlama's shape, ~5 minutes a round on 2 cores) with random weights: 512-token
             prefill, then 32 greedy tokens (time per token): `bench --only lm --lm-model M`
             against transformers on PyTorch (hf_lm_generate.py --model M), one comparison per
             model.

The peers run in a virtual environment this script makes (python3 -m venv; default
.build/compare-venv under the package root) and fills with pip (numpy, onnx, onnxruntime,
onnxscript, torch from PyTorch's CPU index, transformers; only what the chosen comparisons need
and is not there yet); --no-venv uses this interpreter, where they must be installed. Without
--bench, `swift build -c release --product bench` runs first and .build/release/bench is used.

Output: the CPU (model and ISA from lscpu, the kernel variant and FMA peak bench reports) and
the load average first; every command's stdout and stderr in --out DIR (default: a new
temporary folder); then one table row per comparison and thread count. Exit status: 0 when
every comparison has at least one round, 1 when one failed, 2 for a wrong command line.
--self-test runs this script's own tests (argument parsing, ratio math, a fake bench and fake
peers end to end) and exits.
"""
import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
# Where the peer scripts are (the self-test points this at fakes).
SCRIPTS = HERE
SECTIONS = ["gemm", "encoder", "attention", "minilm", "train", "lm"]
# The shapes both bench --lm-model and hf_lm_generate.py know, and how the tables name them.
LM_MODELS = {"gpt2-small": "GPT-2 small's shape", "tinyllama": "TinyLlama's shape"}
# What each comparison's peer imports, and the pip package that provides it.
NEEDS = {
    "gemm": ["numpy"],
    "encoder": ["numpy", "onnx", "onnxruntime", "onnxscript", "torch"],
    "attention": ["numpy", "onnx", "onnxruntime"],
    "minilm": ["numpy", "onnx", "onnxruntime", "torch", "transformers"],
    "train": ["numpy", "torch", "transformers"],
    "lm": ["numpy", "torch", "transformers"],
}
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# MARK: Command line


def positive_int(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"needs a positive integer, got '{text}'")
    if n < 1:
        raise argparse.ArgumentTypeError(f"needs a positive integer, got '{text}'")
    return n


def int_list(text):
    """"1,2" -> [1, 2]: positive integers, distinct, in the order given."""
    items = [s.strip() for s in text.split(",")]
    try:
        values = [int(s) for s in items]
    except ValueError:
        raise argparse.ArgumentTypeError(f"needs positive integers separated by commas, got '{text}'")
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"needs positive integers separated by commas, got '{text}'")
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"lists a value twice: '{text}'")
    return values


def section_list(text):
    names = [s.strip() for s in text.split(",")]
    for n in names:
        if n not in SECTIONS:
            raise argparse.ArgumentTypeError(f"'{n}' is not one of {', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s in names]  # run in the documented order


def lm_model_list(text):
    """"gpt2-small,tinyllama" -> the names, each one of LM_MODELS, distinct, in the order given."""
    names = [s.strip() for s in text.split(",")]
    for n in names:
        if n not in LM_MODELS:
            raise argparse.ArgumentTypeError(f"'{n}' is not one of {', '.join(LM_MODELS)}")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"lists a model twice: '{text}'")
    return names


def parser():
    ap = argparse.ArgumentParser(prog="compare.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--rounds", type=positive_int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--threads", type=int_list, default=[1, 2], help="thread counts, comma-separated (default 1,2)")
    ap.add_argument("--only", type=section_list, default=list(SECTIONS),
                    help=f"comparisons to run, comma-separated: {','.join(SECTIONS)} (default: all)")
    ap.add_argument("--bench", help="the bench executable (default: build it in release and use .build/release/bench)")
    ap.add_argument("--minilm", metavar="DIR", help="all-MiniLM-L6-v2 folder for the minilm comparison "
                                                    "(default: a random model of its shape on both sides)")
    ap.add_argument("--gemm-sizes", type=int_list, default=[512, 1024, 2048, 4096], metavar="N[,N...]",
                    help="square SGEMM sizes (default 512,1024,2048,4096)")
    ap.add_argument("--encoder-seqs", type=int_list, default=[512, 4096], metavar="N[,N...]",
                    help="base encoder sequence lengths (default 512,4096)")
    ap.add_argument("--attention-seq", type=positive_int, default=4096, metavar="N", help="attention sequence length (default 4096)")
    ap.add_argument("--lm-models", type=lm_model_list, default=["gpt2-small"], metavar="M[,M...]",
                    help=f"decoder shapes for the lm comparison: {','.join(LM_MODELS)} (default gpt2-small)")
    venv = ap.add_mutually_exclusive_group()
    venv.add_argument("--no-venv", action="store_true", help="run the peers with this interpreter (packages already installed)")
    venv.add_argument("--venv", metavar="DIR", help="virtual environment for the peers (default: .build/compare-venv)")
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT")
    ap.add_argument("--out", metavar="DIR", help="keep every command's output here (default: a new temporary folder)")
    ap.add_argument("--self-test", action="store_true", help="run this script's tests and exit")
    return ap


def parse_args(argv):
    args = parser().parse_args(argv)
    if args.minilm and not os.path.isfile(os.path.join(args.minilm, "config.json")):
        parser().error(f"--minilm {args.minilm}: no config.json in that folder")
    return args


# MARK: Ratio math


def summarize(attend, peer):
    """One comparison's rounds: `attend` and `peer` map a round number to seconds (or ms; the
    same unit on both sides). Rounds where both sides ran give the ratio peer / Attend (> 1:
    Attend faster). Returns medians and ranges, or None when no round has both sides."""
    rounds = sorted(r for r in attend if r in peer and attend[r] > 0 and peer[r] > 0)
    if not rounds:
        return None
    ratios = [peer[r] / attend[r] for r in rounds]
    a = [attend[r] for r in rounds]
    p = [peer[r] for r in rounds]
    return {
        "rounds": len(rounds),
        "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        "ratio_of_medians": statistics.median(p) / statistics.median(a),
        "attend_median": statistics.median(a), "attend_min": min(a), "attend_max": max(a),
        "peer_median": statistics.median(p), "peer_min": min(p), "peer_max": max(p),
        "ratios": ratios, "attend": a, "peer": p,
    }


def bench_thread_plan(threads):
    """bench measures its rows on 1 thread and on --threads T. Returns (T, thread counts to
    keep from that run) per bench invocation: `1,2` is one run with --threads 2."""
    many = [t for t in threads if t > 1]
    if not many:
        return [(1, {1})]
    plan = []
    for i, t in enumerate(many):
        keep = {t}
        if i == 0 and 1 in threads:
            keep.add(1)
        plan.append((t, keep))
    return plan


def json_rows(text):
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


LM_LINE = re.compile(r"^threads (\d+): prefill\s+([0-9.]+) ms .*?; decode\s+([0-9.]+) ms/token")


def parse_hf_lm(text):
    """hf_lm_generate.py's lines -> {threads: (prefill ms, decode ms per token)}."""
    out = {}
    for line in text.splitlines():
        m = LM_LINE.match(line.strip())
        if m:
            out[int(m.group(1))] = (float(m.group(2)), float(m.group(3)))
    return out


# MARK: The comparisons


class Job:
    """One comparison group: how to run each side for a list of thread counts and how to read
    its output into {(case, threads): ms}."""

    def __init__(self, section, title, peer, bench_args, peer_runs, read_ours, read_peer, prepare=None, env=None,
                 check=None):
        self.section, self.title, self.peer = section, title, peer
        self.bench_args = bench_args  # extra bench arguments (besides --threads and --json)
        self.peer_runs = peer_runs  # threads -> [(argv, env additions)]
        self.read_ours = read_ours  # rows, keep -> {(case, t): ms}
        self.read_peer = read_peer  # stdout text -> {(case, t): ms}
        self.prepare = prepare  # argv run once before round 1 (exports), or None
        self.env = env or {}  # environment additions for bench
        self.check = check  # (ours rows, peer text) -> problem text or None


def rows_named(rows, name, keep, field="ms"):
    return {(r["threads"]): float(r[field]) for r in rows if r.get("name") == name and r.get("threads") in keep
            and isinstance(r.get(field), (int, float))}


def make_jobs(args, py, work):
    jobs = []
    threads_arg = ",".join(str(t) for t in args.threads)
    script = lambda name: os.path.join(SCRIPTS, name)  # noqa: E731
    if "gemm" in args.only:
        sizes = ",".join(str(n) for n in args.gemm_sizes)

        def ours(rows, keep):
            out = {}
            for n in args.gemm_sizes:
                for t, ms in rows_named(rows, f"gemm {n}^3", keep).items():
                    out[(f"SGEMM {n}^3", t)] = ms
            return out

        def peer(text):
            return {(f"SGEMM {r['m']}^3", r["threads"]): r["ms_median"] for r in json_rows(text)
                    if r.get("peer") == "numpy" and r["m"] == r["n"] == r["k"]}

        jobs.append(Job("gemm", "SGEMM C = A B^T, float32", "numpy/OpenBLAS", ["--only", "gemm", "--gemm-sizes", sizes],
                        lambda ts: [([py, script("numpy_gemm.py"), "--sizes", sizes, "--json"],
                                     {"OPENBLAS_NUM_THREADS": str(t)}) for t in ts],
                        ours, peer))
    if "encoder" in args.only:
        for n in args.encoder_seqs:
            def ours(rows, keep, n=n):
                return {(f"base encoder seq {n}", t): ms for t, ms in rows_named(rows, f"encoder base seq {n}", keep).items()}

            def peer(text, n=n):
                return {(f"base encoder seq {n}", r["threads"]): r["ms_median"] for r in json_rows(text)
                        if r.get("peer") == "onnxruntime" and r.get("seq") == n}

            jobs.append(Job("encoder", f"base encoder (6 x d512, post-LN), one sequence of {n} tokens", "ONNX Runtime",
                            ["--only", "encoder", "--seq", str(n)],
                            lambda ts, n=n: [([py, script("ort_encoder.py"), "--seq", str(n), "--threads",
                                               ",".join(map(str, ts))], {})],
                            ours, peer,
                            prepare=[py, script("ort_encoder.py"), "--seq", str(n), "--threads", "1", "--min-reps", "1",
                                     "--min-seconds", "0", "--warmup", "0"]))
    if "attention" in args.only:
        n = args.attention_seq

        def ours(rows, keep):
            return {(f"attention seq {n}", t): ms for t, ms in rows_named(rows, f"attention fused seq {n}", keep).items()}

        def peer(text):
            return {(f"attention seq {n}", r["threads"]): r["ms_median"] for r in json_rows(text)
                    if r.get("op") == "MultiHeadAttention" and r.get("seq") == n}

        jobs.append(Job("attention", f"attention, batch 1, 8 heads of 64, seq {n}, no mask", "ORT MultiHeadAttention",
                        ["--only", "attention", "--fused-only", "--seq", str(n)],
                        lambda ts: [([py, script("ort_attention.py"), "--seq", str(n), "--threads", ",".join(map(str, ts))], {})],
                        ours, peer))
    if "minilm" in args.only:
        case = "MiniLM batch 32 (256 sentences)"
        model_args = ["--model", os.path.abspath(args.minilm)] if args.minilm else []
        empty = os.path.join(work, "no-minilm")  # bench's random stand-in, whatever is in its .cache
        os.makedirs(empty, exist_ok=True)

        def ours(rows, keep):
            return {(case, t): ms for t, ms in rows_named(rows, "bert batch 32 sentences per second", keep).items()}

        def peer(text):
            return {(case, r["threads"]): r["ms_median"] for r in json_rows(text) if r.get("peer") == "onnxruntime"
                    and r.get("batch") == 32}

        def check(ours_rows, peer_text):
            real = any(r.get("name") == "bert model load" for r in ours_rows)
            if real != bool(args.minilm):
                return f"bench ran {'the real model' if real else 'the random model'}, the peer the other one"
            a = {r["mean_tokens"] for r in ours_rows if r.get("name") == "bert batch 32 sentences per second"}
            b = {r["mean_tokens"] for r in json_rows(peer_text) if "mean_tokens" in r}
            if a and b and any(abs(x - y) > 1e-3 for x in a for y in b):
                return f"different sentences: mean tokens {sorted(a)} (Attend) and {sorted(b)} (peer)"
            return None

        jobs.append(Job("minilm", "all-MiniLM-L6-v2 " + ("(" + args.minilm + ")" if args.minilm else "shape, random weights")
                        + ", from strings, 256 sentences at batch 32", "ORT BERT-fused graph",
                        ["--only", "bert"],
                        lambda ts: [([py, script("ort_minilm.py"), "--threads", ",".join(map(str, ts))] + model_args, {})],
                        ours, peer,
                        prepare=[py, script("ort_minilm.py"), "--threads", "1", "--min-reps", "1", "--min-seconds", "0",
                                 "--warmup", "0"] + model_args,
                        env={"ATTEND_MINILM_DIR": os.path.abspath(args.minilm) if args.minilm else empty},
                        check=check))
    if "train" in args.only:
        def ours(rows, keep):
            out = {}
            for model in ("base", "bert-mini"):
                for t, ms in rows_named(rows, f"train {model}", keep).items():
                    out[(f"train step {model}", t)] = ms
            return out

        def peer(text):
            return {(f"train step {r['model']}", r["threads"]): r["ms_median"] for r in json_rows(text)
                    if r.get("peer") == "pytorch"}

        jobs.append(Job("train", "training step (forward, backward, AdamW): base encoder [8, 512, 512], BERT-mini MLM [8, 128]",
                        "PyTorch", ["--only", "train"],
                        lambda ts: [([py, script("torch_train_step.py"), "--model", m, "--threads", str(t)], {})
                                    for m in ("base", "bert-mini") for t in ts],
                        ours, peer))
    for model in (args.lm_models if "lm" in args.only else []):
        def ours(rows, keep, model=model):
            out = {}
            for t, ms in rows_named(rows, f"lm {model}", keep, "prefill_ms").items():
                out[(f"{model} prefill 512", t)] = ms
            for t, ms in rows_named(rows, f"lm {model}", keep, "decode_ms_per_token").items():
                out[(f"{model} decode, ms/token", t)] = ms
            return out

        def peer(text, model=model):
            out = {}
            for t, (p, d) in parse_hf_lm(text).items():
                out[(f"{model} prefill 512", t)] = p
                out[(f"{model} decode, ms/token", t)] = d
            return out

        jobs.append(Job("lm", f"decoder-only LM, {LM_MODELS[model]}, random weights: 512-token prefill, 32 greedy tokens",
                        "transformers (PyTorch)", ["--only", "lm", "--lm-model", model],
                        lambda ts, model=model: [([py, script("hf_lm_generate.py"), "--model", model, "--threads",
                                                   ",".join(map(str, ts))], {})],
                        ours, peer))
    return jobs


# MARK: Running


def load1():
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except OSError:
            return float("nan")


class Runner:
    """Runs commands, keeping each one's output in `out`."""

    def __init__(self, out):
        self.out = out
        self.count = 0

    def run(self, argv, label, env_add=None):
        """(returncode, stdout text); stderr and stdout go to files named after `label`."""
        self.count += 1
        stem = os.path.join(self.out, f"{self.count:03d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}")
        env = dict(os.environ)
        env.update(env_add or {})
        with open(stem + ".stderr.txt", "w") as err:
            err.write("$ " + " ".join(f"{k}={v}" for k, v in (env_add or {}).items()) + " " + " ".join(argv) + "\n")
            err.flush()
            try:
                p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
            except OSError as e:
                err.write(f"could not run: {e}\n")
                return 127, ""
        with open(stem + ".stdout.txt", "w") as f:
            f.write(p.stdout)
        return p.returncode, p.stdout

    def tail(self, n=3):
        """The last lines of the latest command's stderr (for an error message)."""
        path = [f for f in sorted(os.listdir(self.out)) if f.startswith(f"{self.count:03d}_") and f.endswith(".stderr.txt")]
        if not path:
            return ""
        lines = [line.rstrip() for line in open(os.path.join(self.out, path[0])) if line.strip()]
        return " | ".join(lines[-n:])


def run_job(job, args, bench, runner, peer_env, rounds):
    """The interleaved rounds of one job. Returns {(case, t): {"attend": {round: ms},
    "peer": {...}, "load_attend": {...}, "load_peer": {...}}}, and a list of problems."""
    cells, problems = {}, []

    def cell(key):
        return cells.setdefault(key, {"attend": {}, "peer": {}, "load_attend": {}, "load_peer": {}})

    if job.prepare:
        log(f"{job.section}: preparing the peer (export, check)...")
        rc, _ = runner.run(job.prepare, f"{job.section}_prepare", peer_env)
        if rc != 0:
            problems.append(f"{job.section}: preparing the peer failed (exit {rc}): {runner.tail()}")
            return cells, problems
    for r in range(1, rounds + 1):
        log(f"{job.section}: round {r}/{rounds}: Attend...")
        ours_rows = []
        for t, keep in bench_thread_plan(args.threads):
            load = load1()
            rc, text = runner.run([bench] + job.bench_args + ["--threads", str(t), "--json"], f"{job.section}_r{r}_attend_t{t}",
                                  job.env)
            if rc != 0:
                problems.append(f"{job.section} round {r}: bench exited {rc}: {runner.tail()}")
                continue
            rows = json_rows(text)
            ours_rows += rows
            for key, ms in job.read_ours(rows, keep).items():
                cell(key)["attend"][r] = ms
                cell(key)["load_attend"][r] = load
        log(f"{job.section}: round {r}/{rounds}: {job.peer}...")
        peer_text = ""
        for i, (argv, env_add) in enumerate(job.peer_runs(args.threads)):
            load = load1()
            env = dict(peer_env)
            env.update(env_add)
            rc, text = runner.run(argv, f"{job.section}_r{r}_peer{i}", env)
            if rc != 0:
                problems.append(f"{job.section} round {r}: peer exited {rc}: {runner.tail()}")
                continue
            peer_text += text
            for key, ms in job.read_peer(text).items():
                if key[1] in args.threads:
                    cell(key)["peer"][r] = ms
                    cell(key)["load_peer"][r] = load
        if job.check:
            problem = job.check(ours_rows, peer_text)
            if problem:
                problems.append(f"{job.section} round {r}: {problem}")
    return cells, problems


# MARK: Machine


def lscpu():
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return {}
    info = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            info[k.strip()] = v.strip()
    return info


ISA_FLAGS = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "avx512_fp16", "avx_vnni", "amx_tile", "asimd", "asimddp", "asimdhp", "bf16", "i8mm", "sve"]


def machine():
    info = lscpu()
    flags = set(info.get("Flags", "").split())
    model = info.get("Model name") or platform.processor() or platform.machine()
    if not info and sys.platform == "darwin":
        try:
            model = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True).stdout.strip()
        except OSError:
            pass
    cpus = info.get("CPU(s)") or str(os.cpu_count())
    if info.get("CPU family") and info.get("Model"):
        model += f", family {info['CPU family']} model {info['Model']}"
    return {"cpu": model, "vendor": info.get("Vendor ID", ""), "cpus": cpus, "hypervisor": info.get("Hypervisor vendor", ""),
            "isa": [f for f in ISA_FLAGS if f in flags], "l1d": info.get("L1d cache", ""), "l2": info.get("L2 cache", ""),
            "l3": info.get("L3 cache", ""), "platform": platform.platform()}


def peer_environment(m):
    """Environment additions for every peer: OPENBLAS_CORETYPE=SkylakeX on an AMD CPU with
    AVX-512 (OpenBLAS misdetects Zen 5 and falls back to its AVX2 kernels), unless set."""
    env = {}
    if "OPENBLAS_CORETYPE" not in os.environ and m["vendor"] == "AuthenticAMD" and "avx512f" in m["isa"]:
        env["OPENBLAS_CORETYPE"] = "SkylakeX"
    return env


def prepare_python(args, sections):
    """The interpreter the peers run with: this one (--no-venv) or a venv with the packages."""
    wanted = sorted({m for s in sections for m in NEEDS[s]})
    if args.no_venv:
        missing = [m for m in wanted if subprocess.run([sys.executable, "-c", f"import {m}"], capture_output=True).returncode]
        if missing:
            raise SystemExit(f"compare.py: --no-venv, but {sys.executable} cannot import {', '.join(missing)} "
                             f"(pip install {' '.join(missing)}, or leave out --no-venv)")
        return sys.executable
    venv = args.venv or os.path.join(ROOT, ".build", "compare-venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        log(f"creating a virtual environment in {venv}...")
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    missing = [m for m in wanted if subprocess.run([py, "-c", f"import {m}"], capture_output=True).returncode != 0]
    if missing:
        pip = [py, "-m", "pip", "install", "--quiet"]
        if "torch" in missing:
            log(f"pip: torch from {TORCH_CPU_INDEX}...")
            subprocess.run(pip + ["--index-url", TORCH_CPU_INDEX, "torch"], check=True)
        rest = [m for m in missing if m != "torch"]
        if rest:
            log(f"pip: {' '.join(rest)}...")
            subprocess.run(pip + rest, check=True)
    return py


def build_bench():
    log("building the release bench: swift build -c release --product bench ...")
    subprocess.run(["swift", "build", "-c", "release", "--product", "bench", "--package-path", ROOT], check=True,
                   stdout=sys.stderr)
    return os.path.join(ROOT, ".build", "release", "bench")


# MARK: Main


def fmt_ms(x):
    return f"{x:.4g}" if x < 1000 else f"{x:.0f}"


def main(argv):
    args = parse_args(argv)
    if args.self_test:
        return self_test()
    out = args.out or tempfile.mkdtemp(prefix="attend_compare_")
    os.makedirs(out, exist_ok=True)
    m = machine()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load_start = load1()
    bench = os.path.abspath(args.bench) if args.bench else build_bench()
    if not os.access(bench, os.X_OK):
        print(f"compare.py: no bench executable at {bench}", file=sys.stderr)
        return 2
    py = prepare_python(args, args.only)
    peer_env = peer_environment(m)
    runner = Runner(out)
    rc, text = runner.run([bench, "--only", "peak", "--threads", "1", "--json"], "bench_peak")
    peak = next((r for r in json_rows(text) if r.get("name") == "fma peak"), {})
    if rc != 0:
        print(f"compare.py: {bench} --only peak failed (exit {rc}): {runner.tail()}", file=sys.stderr)
        return 1
    print(f"CPU: {m['cpu']} ({m['vendor']}, {m['cpus']} CPUs{', ' + m['hypervisor'] + ' guest' if m['hypervisor'] else ''}); "
          f"ISA: {' '.join(m['isa']) or 'unknown'}; caches L1d {m['l1d']}, L2 {m['l2']}, L3 {m['l3']}")
    print(f"Attend kernels: {peak.get('variant', '?')}, 1-thread FMA peak {peak.get('gflops', float('nan')):.1f} GFLOP/s "
          f"(measured now); load average {load_start:.2f} at {started}")
    print(f"{args.rounds} interleaved rounds (Attend, peer, ...) per comparison, threads {','.join(map(str, args.threads))}; "
          f"peers run by {py}" + "".join(f"; {k}={v}" for k, v in peer_env.items()) + f"; every command's output in {out}",
          flush=True)
    results, problems = [], []
    for job in make_jobs(args, py, out):
        cells, job_problems = run_job(job, args, bench, runner, peer_env, args.rounds)
        problems += job_problems
        for p in job_problems:
            log("compare.py: " + p)
        print(f"\n{job.title}: {job.peer} time / Attend time (> 1: Attend faster)")
        if not cells:
            print("no measurement (see the problems below)")
            results.append({"section": job.section, "title": job.title, "peer": job.peer, "error": "no measurement"})
            continue
        print(f"{'case':34} {'threads':>7} {'ratio median (range)':>24} {'Attend ms':>10} {'peer ms':>10} {'rounds':>6} {'load':>9}")
        cases = list(dict.fromkeys(k[0] for k in cells))  # first-seen order, then threads
        for key in sorted(cells, key=lambda k: (cases.index(k[0]), k[1])):
            c = cells[key]
            s = summarize(c["attend"], c["peer"])
            loads = list(c["load_attend"].values()) + list(c["load_peer"].values())
            entry = {"section": job.section, "title": job.title, "peer": job.peer, "case": key[0], "threads": key[1]}
            if s is None:
                print(f"{key[0]:34} {key[1]:>7} {'no round with both sides':>24}")
                problems.append(f"{job.section}: {key[0]}, {key[1]} thread(s): no round with both sides")
                entry["error"] = "no round with both sides"
            else:
                load_text = f"{min(loads):.1f}-{max(loads):.1f}" if loads else ""
                rng = f"{s['ratio_median']:.2f}x ({s['ratio_min']:.2f}-{s['ratio_max']:.2f})"
                print(f"{key[0]:34} {key[1]:>7} {rng:>24} {fmt_ms(s['attend_median']):>10} {fmt_ms(s['peer_median']):>10} "
                      f"{s['rounds']:>6} {load_text:>9}", flush=True)
                entry.update({k.replace("attend", "attend_ms").replace("peer", "peer_ms") if k.startswith(("attend", "peer")) else k: v
                              for k, v in s.items()})
                entry["load_attend"] = [c["load_attend"].get(r) for r in sorted(c["attend"])]
                entry["load_peer"] = [c["load_peer"].get(r) for r in sorted(c["peer"])]
            results.append(entry)
    load_end = load1()
    print(f"\nload average {load_end:.2f} at {time.strftime('%H:%M:%S UTC', time.gmtime())} "
          f"(started at {load_start:.2f}); 'load' = the 1-minute load average before each run, over the rounds")
    for p in problems:
        print(f"problem: {p}")
    if args.json:
        doc = {"command": ["compare.py"] + list(argv), "started": started, "machine": m, "bench": bench,
               "attend_variant": peak.get("variant"), "fma_peak_1t_gflops": peak.get("gflops"), "rounds": args.rounds,
               "threads": args.threads, "peer_python": py, "peer_env": peer_env, "load_start": load_start,
               "load_end": load_end, "output_dir": out, "comparisons": results, "problems": problems}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"JSON: {args.json}")
    return 1 if any("error" in e for e in results) or not results else 0


# MARK: Self-test


def self_test():
    import unittest

    class ArgumentTests(unittest.TestCase):
        def test_defaults(self):
            a = parse_args([])
            self.assertEqual((a.rounds, a.threads, a.only), (5, [1, 2], SECTIONS))
            self.assertEqual((a.gemm_sizes, a.encoder_seqs, a.attention_seq), ([512, 1024, 2048, 4096], [512, 4096], 4096))
            self.assertEqual(a.lm_models, ["gpt2-small"])
            self.assertEqual(parse_args(["--lm-models", "tinyllama, gpt2-small"]).lm_models, ["tinyllama", "gpt2-small"])
            self.assertFalse(a.no_venv)

        def test_values(self):
            a = parse_args(["--rounds", "3", "--threads", "2, 1", "--only", "minilm,gemm", "--no-venv", "--json", "x.json"])
            self.assertEqual((a.rounds, a.threads, a.only, a.no_venv, a.json), (3, [2, 1], ["gemm", "minilm"], True, "x.json"))

        def test_refusals(self):
            for bad in (["--rounds", "0"], ["--threads", "1,0"], ["--threads", "x"], ["--threads", "1,1"],
                        ["--only", "gemm,softmax"], ["--no-venv", "--venv", "v"], ["--minilm", "/no/such/folder"],
                        ["--gemm-sizes", ""], ["--lm-models", "gpt3"], ["--lm-models", "tinyllama,tinyllama"]):
                with self.assertRaises(SystemExit, msg=bad) as e:
                    with open(os.devnull, "w") as devnull:
                        stderr, sys.stderr = sys.stderr, devnull
                        try:
                            parse_args(bad)
                        finally:
                            sys.stderr = stderr
                self.assertEqual(e.exception.code, 2, bad)

        def test_thread_plan(self):
            self.assertEqual(bench_thread_plan([1, 2]), [(2, {1, 2})])
            self.assertEqual(bench_thread_plan([2]), [(2, {2})])
            self.assertEqual(bench_thread_plan([1]), [(1, {1})])
            self.assertEqual(bench_thread_plan([4, 1, 2]), [(4, {1, 4}), (2, {2})])

    class RatioTests(unittest.TestCase):
        def test_ratios(self):
            s = summarize({1: 10.0, 2: 20.0, 3: 10.0}, {1: 12.0, 2: 20.0, 3: 8.0})
            self.assertEqual(s["rounds"], 3)
            self.assertEqual(s["ratios"], [1.2, 1.0, 0.8])
            self.assertAlmostEqual(s["ratio_median"], 1.0)
            self.assertEqual((s["ratio_min"], s["ratio_max"]), (0.8, 1.2))
            self.assertEqual((s["attend_median"], s["peer_median"]), (10.0, 12.0))
            self.assertAlmostEqual(s["ratio_of_medians"], 1.2)

        def test_even_count_and_missing_rounds(self):
            s = summarize({1: 1.0, 2: 1.0, 3: 1.0, 5: 4.0}, {1: 2.0, 2: 3.0, 4: 9.0, 5: 4.0})
            self.assertEqual(s["rounds"], 3)  # rounds 3 and 4 have one side only
            self.assertAlmostEqual(s["ratio_median"], 2.0)
            self.assertEqual(s["ratios"], [2.0, 3.0, 1.0])
            self.assertIsNone(summarize({1: 1.0}, {2: 1.0}))
            self.assertIsNone(summarize({}, {}))

        def test_readers(self):
            self.assertEqual(json_rows('x\n{"a": 1}\n{bad\n  {"b": 2}  \n'), [{"a": 1}, {"b": 2}])
            text = ("torch 2.15, gpt2-small shape\nthreads 1: prefill    512.5 ms =   999.0 tok/s; decode   31.25 ms/token = "
                    "32.00 tok/s (medians of 3; ...)\nthreads 2: prefill 300.0 ms = 1706.7 tok/s; decode 20.00 ms/token = 50.00 tok/s")
            self.assertEqual(parse_hf_lm(text), {1: (512.5, 31.25), 2: (300.0, 20.0)})

    class EndToEndTests(unittest.TestCase):
        """compare.py end to end against a fake bench and fake peers: numpy_gemm.py twice as
        slow as the fake SGEMM rows (every ratio 2), hf_lm_generate.py 3x the prefill and 2x the
        decode of the fake lm rows."""

        def run_with_fakes(self, bench_body, peers, argv):
            """Writes a fake bench (`bench_body`, a Python script) and fake peer scripts
            ({file name: source}) into a scratch folder, runs main(argv) against them with JSON
            out, asserts it exits 0 and returns the JSON document."""
            global SCRIPTS
            tmp = tempfile.mkdtemp(prefix="compare_selftest_")
            try:
                bench = os.path.join(tmp, "bench")
                with open(bench, "w") as f:
                    f.write(f"#!{sys.executable}\n" + bench_body)
                os.chmod(bench, 0o755)
                for name, source in peers.items():
                    with open(os.path.join(tmp, name), "w") as f:
                        f.write(source)
                out_json = os.path.join(tmp, "out.json")
                saved, SCRIPTS = SCRIPTS, tmp
                stdout = sys.stdout
                try:
                    with open(os.path.join(tmp, "stdout.txt"), "w") as sink:
                        sys.stdout = sink
                        rc = main(["--bench", bench, "--no-venv"] + argv +
                                  ["--json", out_json, "--out", os.path.join(tmp, "logs")])
                finally:
                    sys.stdout = stdout
                    SCRIPTS = saved
                self.assertEqual(rc, 0, open(os.path.join(tmp, "stdout.txt")).read())
                return json.load(open(out_json))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

        def test_gemm_with_fakes(self):
            doc = self.run_with_fakes('''import json, sys
a = sys.argv[1:]
t = int(a[a.index("--threads") + 1])
print(json.dumps({"name": "fma peak", "variant": "fake", "threads": 1, "gflops": 100.0, "ms": 0.0}))
if "--gemm-sizes" in a:
    for n in map(int, a[a.index("--gemm-sizes") + 1].split(",")):
        for th in sorted({1, t}):
            print(json.dumps({"name": f"gemm {n}^3", "threads": th, "m": n, "n": n, "k": n, "ms": n / 10 / th}))
''', {"numpy_gemm.py": '''import json, os, sys
a = sys.argv[1:]
t = int(os.environ["OPENBLAS_NUM_THREADS"])
for n in map(int, a[a.index("--sizes") + 1].split(",")):
    print(json.dumps({"peer": "numpy", "m": n, "n": n, "k": n, "threads": t, "ms_median": 2 * n / 10 / t}))
'''}, ["--only", "gemm", "--rounds", "2", "--threads", "1,2", "--gemm-sizes", "64,128"])
            got = {(c["case"], c["threads"]): c for c in doc["comparisons"]}
            self.assertEqual(set(got), {(f"SGEMM {n}^3", t) for n in (64, 128) for t in (1, 2)})
            for (case, t), c in got.items():
                self.assertEqual(c["rounds"], 2)
                self.assertAlmostEqual(c["ratio_median"], 2.0)
                self.assertAlmostEqual(c["attend_ms_median"], int(case.split()[1].split("^")[0]) / 10 / t)
                self.assertAlmostEqual(c["peer_ms_median"], 2 * c["attend_ms_median"])
            self.assertEqual(doc["attend_variant"], "fake")
            self.assertEqual(doc["problems"], [])

        def test_lm_models_with_fakes(self):
            """Both decoder shapes in one run, TinyLlama's ten times slower on both sides:
            prefill ratios 3, decode 2, each model's cases read from its own rows."""
            doc = self.run_with_fakes('''import json, sys
a = sys.argv[1:]
t = int(a[a.index("--threads") + 1])
print(json.dumps({"name": "fma peak", "variant": "fake", "threads": 1, "gflops": 100.0, "ms": 0.0}))
m = a[a.index("--lm-model") + 1] if "--lm-model" in a else None  # None: the --only peak probe
scale = {"gpt2-small": 1.0, "tinyllama": 10.0}.get(m, 0)
for th in (sorted({1, t}) if m else []):
    print(json.dumps({"name": f"lm {m}", "threads": th, "prefill_ms": 100 * scale / th,
                      "decode_ms_per_token": 10 * scale / th}))
    print(json.dumps({"name": f"lm {m} 2 rows", "threads": th, "decode_ms_per_token": 1.0}))
''', {"hf_lm_generate.py": '''import sys
a = sys.argv[1:]
scale = {"gpt2-small": 1.0, "tinyllama": 10.0}[a[a.index("--model") + 1]]
for t in map(int, a[a.index("--threads") + 1].split(",")):
    p, d = 300 * scale / t, 20 * scale / t
    print(f"threads {t}: prefill {p:10.1f} ms = {512000 / p:7.1f} tok/s; decode {d:7.2f} ms/token = {1000 / d:6.2f} tok/s")
'''}, ["--only", "lm", "--lm-models", "gpt2-small,tinyllama", "--rounds", "2", "--threads", "1,2"])
            got = {(c["case"], c["threads"]): c for c in doc["comparisons"]}
            cases = {f"{m} {kind}" for m in ("gpt2-small", "tinyllama") for kind in ("prefill 512", "decode, ms/token")}
            self.assertEqual(set(got), {(c, t) for c in cases for t in (1, 2)})
            for (case, t), c in got.items():
                self.assertEqual(c["rounds"], 2)
                self.assertAlmostEqual(c["ratio_median"], 3.0 if "prefill" in case else 2.0)
                scale = 10.0 if case.startswith("tinyllama") else 1.0
                self.assertAlmostEqual(c["attend_ms_median"], (100 if "prefill" in case else 10) * scale / t)
            self.assertEqual(doc["problems"], [])

        def test_missing_peer_side_fails(self):
            global SCRIPTS
            tmp = tempfile.mkdtemp(prefix="compare_selftest_")
            try:
                bench = os.path.join(tmp, "bench")
                with open(bench, "w") as f:
                    f.write(f"#!{sys.executable}\nimport json\n"
                            'print(json.dumps({"name": "fma peak", "variant": "fake", "threads": 1, "gflops": 1.0}))\n'
                            'print(json.dumps({"name": "gemm 64^3", "threads": 1, "ms": 1.0}))\n')
                os.chmod(bench, 0o755)
                with open(os.path.join(tmp, "numpy_gemm.py"), "w") as f:
                    f.write("import sys\nsys.exit(3)\n")  # the peer fails every round
                saved, SCRIPTS = SCRIPTS, tmp
                stdout = sys.stdout
                try:
                    with open(os.devnull, "w") as sink:
                        sys.stdout = sink
                        stderr, sys.stderr = sys.stderr, sink
                        try:
                            rc = main(["--bench", bench, "--no-venv", "--only", "gemm", "--rounds", "1", "--threads", "1",
                                       "--gemm-sizes", "64", "--out", os.path.join(tmp, "logs")])
                        finally:
                            sys.stderr = stderr
                finally:
                    sys.stdout = stdout
                    SCRIPTS = saved
                self.assertEqual(rc, 1)
                # Neither side measures anything: still a failure, not an empty success.
                with open(bench, "a") as f:
                    f.write("import sys\nif '--gemm-sizes' in sys.argv:\n    sys.exit(1)\n")
                SCRIPTS = tmp
                try:
                    with open(os.devnull, "w") as sink:
                        sys.stdout, sys.stderr = sink, sink
                        rc = main(["--bench", bench, "--no-venv", "--only", "gemm", "--rounds", "1", "--threads", "1",
                                   "--gemm-sizes", "64", "--out", os.path.join(tmp, "logs2")])
                finally:
                    sys.stdout, sys.stderr = stdout, stderr
                    SCRIPTS = saved
                self.assertEqual(rc, 1)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

    suite = unittest.TestSuite()
    for case in (ArgumentTests, RatioTests, EndToEndTests):
        suite.addTests(unittest.defaultTestLoader.loadTestsFromTestCase(case))
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=2).run(suite)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
