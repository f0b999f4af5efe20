"""The seq2seq benchmark's job with Hugging Face transformers on PyTorch, for a side-by-side
comparison with `swift run bench --only seq2seq`: a t5-small-shaped T5ForConditionalGeneration
(T5Config defaults: d_model 512, 8 heads, d_ff 2048, 6 + 6 layers, vocabulary 32128; random
weights), greedy `generate` of 64 new tokens (min_new_tokens 64, KV cache on) from one
512-token source, on 1 and 2 threads. Prints the median of 5 runs after a warm-up.

    pip install torch transformers   # CPU wheels
    python3 Benchmarks/scripts/hf_t5_generate.py [--threads 1,2] [--reps 5]
"""
import argparse
import time

import torch
import transformers
from transformers import T5Config, T5ForConditionalGeneration

parser = argparse.ArgumentParser()
parser.add_argument("--threads", default="1,2")
parser.add_argument("--reps", type=int, default=5)
args = parser.parse_args()

torch.manual_seed(0)
model = T5ForConditionalGeneration(T5Config(decoder_start_token_id=0, eos_token_id=1, pad_token_id=0)).eval()
source = torch.randint(2, 32128, (1, 512))
mask = torch.ones_like(source)
print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
      f"{torch.backends.cpu.get_cpu_capability()}, t5-small shape, greedy 64 tokens from 512")
for threads in [int(t) for t in args.threads.split(",")]:
    torch.set_num_threads(threads)
    times = []
    with torch.inference_mode():
        for rep in range(args.reps + 1):
            t0 = time.perf_counter()
            out = model.generate(input_ids=source, attention_mask=mask, max_new_tokens=64, min_new_tokens=64,
                                 num_beams=1, do_sample=False, use_cache=True)
            dt = time.perf_counter() - t0
            assert out.shape[1] == 65, out.shape
            if rep > 0:
                times.append(dt)
    s = sorted(times)[len(times) // 2]
    print(f"threads {threads}: generate {s * 1e3:8.1f} ms = {64 / s:6.1f} tokens/s (median of {len(times)}; "
          f"all: {', '.join(f'{t * 1e3:.0f}' for t in times)} ms)")
