"""CPU probe: a comparison curriculum for the tiny judge on CPU (text equality, text caption matching,
image-caption matching, image captions), held-out yes/no accuracy per kind over time.
usage: comparison_curriculum.py MODEL_DIR MAX_SECONDS LR BATCH   (MODEL_DIR: `unireward models build-tiny --kind judge --size small`)"""

import json
import sys
import time

import numpy as np
import torch
from comparison_probe import question, text_example, yes_no_accuracy

from unireward.judge.model import RewardModel
from unireward.models import pretrain as P
from unireward.train import sft

torch.manual_seed(0)
torch.set_num_threads(2)
model_dir = sys.argv[1]
max_s = float(sys.argv[2])
lr = float(sys.argv[3])
bs = int(sys.argv[4])
rm = RewardModel(model_dir, device="cpu")
model = rm.model
model.train()


def ex(kind, rng):
    if kind in ("equal", "textmatch"):  # the text probes of comparison_probe.py
        return text_example(*question(kind, rng), kind)
    return P.example(kind, rng)


KINDS = {"equal": 0.25, "textmatch": 0.25, "match": 0.3, "caption": 0.2}
names = list(KINDS)
w = np.array(list(KINDS.values()))
w = w / w.sum()
erng = np.random.default_rng(999)
held = {k: [ex(k, erng) for _ in range(64)] for k in ("equal", "textmatch", "match")}
opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
rng = np.random.default_rng(0)
t0 = time.time()
step = 0
while time.time() - t0 < max_s:
    step += 1
    for g in opt.param_groups:
        g["lr"] = lr * min(1.0, step / 200)
    kind = names[rng.choice(len(names), p=w)]  # one kind per batch (images and text do not mix)
    b = sft.collate(rm, [sft.encode(rm, ex(kind, rng)) for _ in range(bs)])
    loss = sft.loss(model, b)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if step % 250 == 0:
        print(
            json.dumps(
                dict(step=step, s=round(time.time() - t0), **{k: yes_no_accuracy(rm, v) for k, v in held.items()})
            ),
            flush=True,
        )
