"""Does the tiny VLM start to use its images? Pretraining on captions + slot descriptions only, with the
grounding gap (caption loss with shuffled minus matched images) every EVAL steps.
usage: seeing_probe.py MODEL_DIR OUT STEPS LR EVAL [VISION_LR_MULT]"""

import json
import os
import sys

import torch

torch.set_num_threads(int(os.environ.get("THREADS", "1")))
from unireward.models import pretrain as P

model, out, steps, lr, ev = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
cfg = P.PretrainConfig(
    steps=steps,
    batch_size=16,
    lr=lr,
    warmup_steps=min(50, steps // 10),
    eval_every=ev,
    eval_examples=24,
    kinds={"caption": 0.5, "slots": 0.5},
    seed=1,
)
P.pretrain(
    model,
    out,
    cfg,
    device="cpu",
    log=lambda r: print(
        json.dumps(
            {
                k: v
                for k, v in r.items()
                if k
                in (
                    "step",
                    "train_loss",
                    "elapsed_s",
                    "cpu_s",
                    "grounding/caption",
                    "loss/caption/matched",
                    "token_acc/slots",
                    "token_acc/caption",
                )
            }
        ),
        flush=True,
    ),
)
