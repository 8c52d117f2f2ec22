"""CPU probe: a comparison curriculum for the tiny judge on CPU (text equality, text caption matching,
image-caption matching, image captions), held-out yes/no accuracy per kind over time.
usage: comparison_curriculum.py MODEL_DIR MAX_SECONDS LR BATCH   (MODEL_DIR: `unireward models build-tiny --kind judge --size small`)"""
import sys, time, json, numpy as np, torch
from unireward.judge.model import RewardModel
from unireward.train.data import SFTExample
from unireward.train import sft
from unireward.models import pretrain as P

from comparison_probe import question
torch.manual_seed(0); torch.set_num_threads(2)
model_dir = sys.argv[1]; max_s = float(sys.argv[2]); lr = float(sys.argv[3]); bs = int(sys.argv[4])
rm = RewardModel(model_dir, device="cpu"); model = rm.model; model.train()
def ex(kind, rng):
    if kind in ("equal", "textmatch"):  # the text probes of comparison_probe.py, as SFT examples
        text, yes = question(kind, rng)
        return SFTExample([{"role": "user", "content": [{"type": "text", "text": text}]}], [], "image",
                          "yes" if yes else "no", kind)
    return P.example(kind, rng)
KINDS = {"equal": 0.25, "textmatch": 0.25, "match": 0.3, "caption": 0.2}
names = list(KINDS); w = np.array(list(KINDS.values())); w = w / w.sum()
erng = np.random.default_rng(999)
held = {k: [ex(k, erng) for _ in range(64)] for k in ("equal", "textmatch", "match")}
yes_id = rm.tokenizer.encode("yes")[0]; no_id = rm.tokenizer.encode("no")[0]
def acc(exs):
    model.eval(); c = 0
    with torch.no_grad():
        for i in range(0, len(exs), 16):
            chunk = exs[i:i+16]; b = sft.collate(rm, [sft.encode(rm, e) for e in chunk])
            out = model(**{k: v for k, v in b.items() if k != "labels"})
            for r, e in enumerate(chunk):
                pos = (b["labels"][r] != -100).nonzero()[0].item(); lg = out.logits[r, pos - 1]
                c += ("yes" if lg[yes_id] > lg[no_id] else "no") == e.target
    model.train(); return c / len(exs)
opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
rng = np.random.default_rng(0); t0 = time.time(); step = 0
while time.time() - t0 < max_s:
    step += 1
    for g in opt.param_groups: g["lr"] = lr * min(1.0, step / 200)
    kind = names[rng.choice(len(names), p=w)]  # one kind per batch (images and text do not mix)
    b = sft.collate(rm, [sft.encode(rm, ex(kind, rng)) for _ in range(bs)])
    loss = sft.loss(model, b); opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); opt.step()
    if step % 250 == 0:
        print(json.dumps(dict(step=step, s=round(time.time() - t0), **{k: acc(v) for k, v in held.items()})), flush=True)
