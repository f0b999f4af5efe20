"""Writes Fixtures/bert_mlm: the masked-LM-only loss of the tiny BERT golden fixture
(Fixtures/bert/initial, every dropout 0) as transformers' BertForMaskedLM computes it, on
Fixtures/bert/batches.jsonl without next_sentence_label: batches.jsonl (those batches), run.json
(the loss of each batch from the initial weights) and grads0.safetensors (the gradient of the
first batch's loss for every BertForMaskedLM parameter; the pooler and the NSP head are not in
that model, so Attend's BertForPreTraining must give them zero gradients).

    python3 make_bert_mlm_fixture.py   # torch 2.15, transformers 5.24
"""
import json, os
import torch
from safetensors.torch import save_file
from transformers import BertForMaskedLM

here = os.path.dirname(os.path.abspath(__file__))
source = os.path.join(here, "Fixtures", "bert")
out = os.path.join(here, "Fixtures", "bert_mlm")
os.makedirs(out, exist_ok=True)

model = BertForMaskedLM.from_pretrained(os.path.join(source, "initial"))  # pooler and NSP head unused
model.train()  # dropout probabilities are 0: train mode is the eval-mode computation
batches = []
with open(os.path.join(source, "batches.jsonl")) as f:
    for line in f:
        if line.strip():
            b = json.loads(line)
            b.pop("next_sentence_label", None)
            batches.append(b)
with open(os.path.join(out, "batches.jsonl"), "w") as f:
    for b in batches: f.write(json.dumps(b) + "\n")

params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
losses = []
for i, b in enumerate(batches):
    model.zero_grad()
    loss = model(**{k: torch.tensor(v) for k, v in b.items()}).loss
    loss.backward()
    losses.append(loss.item())
    if i == 0:
        save_file({n: p.grad.detach().clone().contiguous() for n, p in params}, os.path.join(out, "grads0.safetensors"))
json.dump({"losses": losses, "parameters": [n for n, _ in params],
           "torch": torch.__version__, "transformers": __import__("transformers").__version__},
          open(os.path.join(out, "run.json"), "w"), indent=1)
