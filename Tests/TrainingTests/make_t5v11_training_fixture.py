"""Writes Fixtures/t5v11: a tiny random T5 in T5 v1.1's layout as transformers 5 saves it
(gated-GELU feed-forward; `tie_word_embeddings=False` becomes `scale_decoder_outputs: false`
while config.json keeps `tie_word_embeddings: true`, and the head is its own `lm_head.weight`,
different from `shared.weight`), trained 5 steps with torch.optim.AdamW (lr 1e-3, betas
0.9/0.999, eps 1e-8, weight decay 0.01 except biases and LayerNorm weights,
clip_grad_norm_(1.0), batches in order, cycling), as the bert and t5 golden runs were made:
initial/ and trained/ (save_pretrained), batches.jsonl, run.json (loss before each update,
grad norm before clipping), grads0.safetensors (step-0 gradient of every trainable parameter).

    python3 make_t5v11_training_fixture.py   # torch 2.15, transformers 5.25
"""
import os
import torch
from transformers import T5Config, T5ForConditionalGeneration
from golden_training import seq2seq_batch, train_golden

torch.manual_seed(0)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Fixtures", "t5v11")
config = T5Config(
    vocab_size=70, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=2, num_heads=4,
    relative_attention_num_buckets=8, relative_attention_max_distance=20, feed_forward_proj="gated-gelu",
    dropout_rate=0.0, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, tie_word_embeddings=False)
assert not config.scale_decoder_outputs
model = T5ForConditionalGeneration(config)
model.lm_head.weight = torch.nn.Parameter(torch.randn(70, 32) * 32 ** -0.5)  # its own head
model.save_pretrained(os.path.join(out, "initial"))

g = torch.Generator().manual_seed(1)
batches = [seq2seq_batch(g, 3, 9, 6, 2, 70, 1, 0), seq2seq_batch(g, 2, 12, 8, 2, 70, 1, 0), seq2seq_batch(g, 4, 7, 5, 2, 70, 1, 0)]
train_golden(model, batches, out)
