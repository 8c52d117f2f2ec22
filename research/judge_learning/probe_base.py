"""Greedy generation on fresh held-out pretraining examples of a base: per kind, exact-match rate,
slot accuracy of the 'seen' words, and mark accuracy split by the true mark (yes / no).
usage: probe_base.py MODEL_DIR [N_PER_KIND]"""

import json
import re
import sys

import numpy as np
import torch

from unireward.judge.model import RewardModel
from unireward.models import pretrain as P

torch.set_num_threads(int(__import__("os").environ.get("THREADS", "1")))
model, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 24
rm = RewardModel(model, device="cpu", dtype="float32", max_new_tokens=60)
rng = np.random.default_rng(4242)  # not the pretraining streams' seeds
out = {}
for kind in [
    "slots",
    "slots_k",
    "check",
    "check_k",
    "answer_check",
    "video_slots",
    "video_check_k",
    "video_answer_check",
]:
    exs = [P.example(kind, rng) for _ in range(n)]
    texts = (
        [r["text"] for r in rm.chat([(e.messages, [rm.encode_chat and None] and []) for e in []], [])]
        if False
        else None
    )
    convs = []
    from unireward.io.media import load_media

    for e in exs:
        convs.append((e.messages, [load_media(m, e.media_kind) for m in e.media]))
    gen = rm.chat(convs, [60] * len(convs))
    exact, seen_ok, seen_n, mark = 0, 0, 0, {"yes": [0, 0], "no": [0, 0]}
    for e, g in zip(exs, gen):
        t, p = e.target.strip(), g["text"].strip()
        exact += t == p
        tw, pw = re.findall(r"[\w]+", t), re.findall(r"[\w]+", p)
        if "check" in kind:
            # triples: seen claimed mark
            for i in range(0, len(tw) - 2, 3):
                if tw[i + 2] in ("yes", "no"):
                    seen_n += 1
                    seen_ok += i + 2 < len(pw) and pw[i] == tw[i]
                    m = mark[tw[i + 2]]
                    m[1] += 1
                    m[0] += i + 2 < len(pw) and pw[i + 2] == tw[i + 2]
        else:
            seen_n += len(tw)
            seen_ok += sum(a == b for a, b in zip(tw, pw))
    out[kind] = dict(
        exact=round(exact / n, 3),
        word_acc=round(seen_ok / max(seen_n, 1), 3),
        mark_yes=round(mark["yes"][0] / max(mark["yes"][1], 1), 3),
        n_yes=mark["yes"][1],
        mark_no=round(mark["no"][0] / max(mark["no"][1], 1), 3),
        n_no=mark["no"][1],
        sample=[exs[0].target, gen[0]["text"]],
    )
    print(kind, json.dumps(out[kind]), flush=True)
