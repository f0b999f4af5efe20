"""The lm benchmark's job with Hugging Face transformers on PyTorch, for a side-by-side
comparison with `swift run bench --only lm`: a decoder-only model with random weights in
GPT-2 small's shape (GPT2Config defaults: 768, 12 heads, 3072, 12 layers, vocabulary 50257)
or TinyLlama-1.1B's (hidden 2048, 32 heads / 4 KV heads, intermediate 5632, 22 layers,
vocabulary 32000, untied), float32: a 512-token prompt in one forward pass with the cache
(prefill), then 32 greedy tokens one forward pass each with the cache (decode), exactly the
steps the Swift bench times. Prints medians after a warm-up, per thread count.

    pip install torch transformers   # CPU wheels
    python3 Benchmarks/scripts/hf_lm_generate.py --model gpt2-small|tinyllama [--threads 1,2] [--reps 3]
"""
import argparse
import time

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="gpt2-small", choices=["gpt2-small", "tinyllama"])
parser.add_argument("--threads", default="1,2")
parser.add_argument("--reps", type=int, default=3)
parser.add_argument("--prompt", type=int, default=512)
parser.add_argument("--new", type=int, default=32)
args = parser.parse_args()

torch.manual_seed(0)
if args.model == "gpt2-small":
    model = GPT2LMHeadModel(GPT2Config())
else:
    model = LlamaForCausalLM(LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                                         num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048,
                                         tie_word_embeddings=False))
model = model.float().eval()
vocab = model.config.vocab_size
prompt = torch.randint(3, vocab, (1, args.prompt))
print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.backends.cpu.get_cpu_capability()}, "
      f"{args.model} shape, prefill {args.prompt} then {args.new} greedy tokens")
for threads in [int(t) for t in args.threads.split(",")]:
    torch.set_num_threads(threads)
    prefill, decode = [], []
    with torch.inference_mode():
        for rep in range(args.reps + 1):
            t0 = time.perf_counter()
            out = model(prompt, use_cache=True)
            t1 = time.perf_counter()
            past = out.past_key_values
            logits = out.logits[:, -1]
            for _ in range(args.new):
                nxt = logits.argmax(-1, keepdim=True)
                out = model(nxt, past_key_values=past, use_cache=True)
                past, logits = out.past_key_values, out.logits[:, -1]
            t2 = time.perf_counter()
            if rep > 0:
                prefill.append(t1 - t0)
                decode.append((t2 - t1) / args.new)
    p, d = sorted(prefill)[len(prefill) // 2], sorted(decode)[len(decode) // 2]
    print(f"threads {threads}: prefill {p * 1e3:8.1f} ms = {args.prompt / p:7.1f} tok/s; decode {d * 1e3:7.2f} ms/token = "
          f"{1 / d:6.2f} tok/s (medians of {len(prefill)}; prefill all: {', '.join(f'{x * 1e3:.0f}' for x in prefill)} ms; "
          f"decode all: {', '.join(f'{x * 1e3:.1f}' for x in decode)} ms/token)")
