"""Writes Fixtures/marian: a tiny random MarianMTModel (opus-mt settings: swish, scaled and
shared embeddings, tied head, every dropout 0) trained 5 steps with torch.optim.AdamW (lr 1e-3,
betas 0.9/0.999, eps 1e-8, weight decay 0.01 except biases and LayerNorm weights,
clip_grad_norm_(1.0), batches in order, cycling), as the bert and t5 golden runs were made:
initial/ and trained/ (save_pretrained), batches.jsonl, run.json (loss before each update,
grad norm before clipping), grads0.safetensors (step-0 gradient of every trainable parameter).

    python3 make_marian_training_fixture.py   # torch 2.15, transformers 5.24
"""
import os
import torch
from transformers import MarianConfig, MarianMTModel
from golden_training import seq2seq_batch, train_golden

torch.manual_seed(0)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "Fixtures", "marian")
config = MarianConfig(
    vocab_size=90, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
    decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
    pad_token_id=89, decoder_start_token_id=89, eos_token_id=0, forced_eos_token_id=0,
    activation_function="swish", scale_embedding=True, share_encoder_decoder_embeddings=True,
    dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
model = MarianMTModel(config)
with torch.no_grad():
    model.final_logits_bias.normal_(0, 0.1)  # a non-zero buffer, to check that it is kept
model.save_pretrained(os.path.join(out, "initial"))

g = torch.Generator().manual_seed(1)
batches = [seq2seq_batch(g, 3, 9, 6, 1, 89, 0, 89), seq2seq_batch(g, 2, 12, 8, 1, 89, 0, 89), seq2seq_batch(g, 4, 7, 5, 1, 89, 0, 89)]
train_golden(model, batches, out)
