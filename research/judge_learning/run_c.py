"""C: judge SFT from a starting checkpoint (random init or a pretrained base), single process.
usage: run_c.py BASE_DIR TAG MODE(logits|think) STEPS [LR] [PROMPTS] [PAIRS] [POINTS] [EVAL_EVERY]"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import harness as H

base, tag, mode, steps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
lr = float(sys.argv[5]) if len(sys.argv) > 5 else 2e-3
prompts = int(sys.argv[6]) if len(sys.argv) > 6 else 48
pairs = sys.argv[7] if len(sys.argv) > 7 else "all"
points = (sys.argv[8] if len(sys.argv) > 8 else "1") == "1"
eval_every = int(sys.argv[9]) if len(sys.argv) > 9 else max(20, steps // 4)
root = HERE / "runs"
tw = H.world(f"{root}/trainR-{prompts}-{pairs}", prompts, 1000, pairs)
ew = H.world(f"{root}/evalR-777", 40, 777)
think = mode == "think"
ex, ev = H.plan(base, tw, ew, points=points, think=think)
print(len(ex), "examples;", len(ev), "eval rows;", "example target:", ex[0].target, flush=True)
rm = H.load(base)
rm.max_new_tokens = 160
H.train(
    rm,
    ex,
    ev,
    steps,
    lr=lr,
    out=str(HERE / f"c-{tag}.json"),
    eval_every=eval_every,
    log=lambda m: print(m, flush=True),
    method="generate" if think else "logits",
    samples=6 if think else 0,
    eval_before=os.environ.get("EVAL_BEFORE", "1") == "1",
)
if os.environ.get("SAVE"):
    rm.model.save_pretrained(os.environ["SAVE"])
    rm.processor.save_pretrained(os.environ["SAVE"])
