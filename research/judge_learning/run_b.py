"""B: the random-init tiny judge on the quality-axes world, the demo's recipe (single process).
usage: run_b.py SIZE STEPS [LR] [TRAIN_PAIRS] [PROMPTS] [POINTS]"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import harness as H

from unireward.models.tiny import build_tiny_judge

size, steps = sys.argv[1], int(sys.argv[2])
lr = float(sys.argv[3]) if len(sys.argv) > 3 else 2e-3
pairs = sys.argv[4] if len(sys.argv) > 4 else "all"
prompts = int(sys.argv[5]) if len(sys.argv) > 5 else 48
points = (sys.argv[6] if len(sys.argv) > 6 else "1") == "1"
root = HERE / "runs"
judge = f"{root}/judge-{size}"
if not os.path.exists(f"{judge}/unireward_tiny.json"):
    build_tiny_judge(judge, size=size, seed=0)
tw = H.world(f"{root}/train-{prompts}-{pairs}", prompts, 1000, pairs)
ew = H.world(f"{root}/eval-777", 40, 777)
ex, ev = H.plan(judge, tw, ew, points=points)
print(len(ex), "examples;", len(ev), "eval rows", flush=True)
rm = H.load(judge)
tag = f"b-{size}-{steps}-{lr}-{pairs}-{prompts}-{'pts' if points else 'nopts'}"
H.train(
    rm,
    ex,
    ev,
    steps,
    lr=lr,
    out=str(HERE / f"{tag}.json"),
    eval_every=max(20, steps // 6),
    log=lambda m: print(m, flush=True),
)
