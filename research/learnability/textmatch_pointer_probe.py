"""CPU probe: caption-vs-description matching (the textmatch task of comparison_probe.py), with a share
of each batch given to pointer tasks (full-target loss):
  repeat     "Repeat the caption." / "Repeat the description."
  attribute  "What colour/shape/count/position has group k in the caption/description?"
usage: textmatch_pointer_probe.py MODEL_DIR {repeat|attribute} P_POINTER STEPS"""

import json
import sys
import time

import numpy as np
import torch
from comparison_probe import text_example, yes_no_accuracy

from unireward.judge.model import RewardModel
from unireward.synth import world as W
from unireward.train import sft

torch.manual_seed(0)
torch.set_num_threads(2)
rm = RewardModel(sys.argv[1], device="cpu")
model = rm.model
model.train()
pointer = sys.argv[2]
p_copy = float(sys.argv[3])
steps = int(sys.argv[4])


def ex(kind, rng):
    x = W.random_scene(rng)
    o = W.perturb(x, 1, rng)[0]
    y = rng.random() < 0.5
    d = x if y else o
    if kind == "match":
        q, t = "Same? Answer yes or no.", ("yes" if y else "no")
    elif pointer == "repeat":
        q, t = ("Repeat the caption.", W.caption(x)) if kind == "first" else ("Repeat the description.", W.caption(d))
    else:
        which, scene = ("caption", x) if kind == "first" else ("description", d)
        k = int(rng.integers(len(scene)))
        attr = str(rng.choice(["colour", "shape", "count", "position"]))
        g = scene[k]
        t = {"colour": g.colour, "shape": g.shape, "count": W.NUMBER_WORD[g.count], "position": g.position}[attr]
        q = f"What {attr} has group {k + 1} in the {which}?"
    return text_example(f"Caption: {W.caption(x)}\nDescription: {W.caption(d)}\n{q}", t, kind)


erng = np.random.default_rng(5)
held = [ex("match", erng) for _ in range(128)]
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
rng = np.random.default_rng(0)
t0 = time.time()
for s in range(1, steps + 1):
    kinds = [("first" if rng.random() < 0.5 else "second") if rng.random() < p_copy else "match" for _ in range(16)]
    b = sft.collate(rm, [sft.encode(rm, ex(k, rng)) for k in kinds])
    loss = sft.loss(model, b)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if s % 100 == 0:
        print(json.dumps(dict(step=s, match_acc=yes_no_accuracy(rm, held), s=round(time.time() - t0))), flush=True)
