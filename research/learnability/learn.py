"""GPU learnability run: (A) grounded pretraining of the tiny VLM with unireward.models.pretrain,
(B) judge SFT curves on the four tasks from the pretrained base and from the plain init.
usage: learn.py pretrain OUTDIR SECONDS | learn.py judge INIT TAG POOL SECONDS"""

import json
import os
import sys
import time

import numpy as np
import torch

from unireward.judge.metrics import pair_metrics
from unireward.judge.model import RewardModel
from unireward.judge.records import item_from_record
from unireward.models import pretrain as P
from unireward.synth import world as W
from unireward.train import sft
from unireward.train.data import example_from_item_row

OUT = os.environ.get("OUT", "/tmp/out")
TASKS = W.TASKS
DEV = os.environ.get("DEV", "cuda")


def pair_rows(task, seed, i):
    p = W.MAKERS[task](seed, i, 4)
    rows = []
    for r in W.items_from_pool(p.row, "all"):
        if r["mode"] != "pair_rank" or r["label"] not in ("first", "second"):
            continue
        r = dict(r)
        if task.endswith("generation"):
            r["candidates"] = [p.files[c] for c in r["candidates"]]
        else:
            r["context"] = p.files[r["context"]]
        rows.append(r)
    return rows


class JudgeStream(torch.utils.data.IterableDataset):
    def __init__(self, model_dir, pool, bs, seed=1):
        self.model_dir, self.pool, self.bs, self.seed = model_dir, pool, bs, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        rm = RewardModel(self.model_dir, device="cpu", dtype="float32")
        pf = lambda t, m: rm.protocols.get(rm.family, t, m)
        rng = np.random.default_rng([self.seed, 5, wid])
        while True:
            encs = []
            while len(encs) < self.bs:
                task = TASKS[int(rng.integers(4))]
                rows = pair_rows(task, self.seed, int(rng.integers(self.pool)))
                r = rows[int(rng.integers(len(rows)))]
                ex = example_from_item_row(r, pf, swap=bool(rng.integers(2)))
                encs.append(sft.encode(rm, ex))
            yield sft.collate(rm, encs)


def judge_run(
    init, tag, pool, seconds, bs=16, lr=float(os.environ.get("LR", "1e-3")), every=int(os.environ.get("EVERY", "100"))
):
    torch.manual_seed(0)
    rm = RewardModel(init, device=DEV, dtype="float32")
    held = {t: [] for t in TASKS}
    for t in TASKS:
        for i in range(100_000, 100_020):
            for r in pair_rows(t, 1, i):
                held[t].append((item_from_record(r), r["label"]))

    def ev():
        rm.model.eval()
        out = {}
        with torch.no_grad(), torch.autocast(DEV, dtype=torch.bfloat16, enabled=DEV == "cuda"):
            for t in TASKS:
                js = rm.judge([it for it, _ in held[t]], method="logits")
                m = pair_metrics(js, [label for _, label in held[t]])
                out[t] = round(m["acc_without_ties"], 3)
        rm.model.train()
        return out

    log = open(f"{OUT}/judge_{tag}.jsonl", "w")
    rec = dict(step=0, t=0, acc=ev(), n_held={t: len(v) for t, v in held.items()})
    print(tag, rec, flush=True)
    log.write(json.dumps(rec) + "\n")
    log.flush()
    dl = torch.utils.data.DataLoader(
        JudgeStream(init, pool, bs), batch_size=None, num_workers=int(os.environ.get("NW", "4")), prefetch_factor=4
    )
    opt = torch.optim.AdamW(rm.model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    rm.model.train()
    t0 = time.time()
    step = 0
    run = []
    for batch in dl:
        batch = {k: (v.to(DEV) if hasattr(v, "to") else v) for k, v in batch.items()}
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 50)
        with torch.autocast(DEV, dtype=torch.bfloat16, enabled=DEV == "cuda"):
            loss = sft.loss(rm.model, batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(rm.model.parameters(), 1.0)
        opt.step()
        run.append(loss.item())
        step += 1
        if step % every == 0 or time.time() - t0 > seconds:
            rec = dict(step=step, t=round(time.time() - t0, 1), loss=round(float(np.mean(run)), 4), acc=ev())
            run = []
            print(tag, rec, flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
        if time.time() - t0 > seconds:
            break
    os._exit(0)


if __name__ == "__main__":
    if sys.argv[1] == "pretrain":
        base, out, secs = sys.argv[2], sys.argv[3], float(sys.argv[4])
        cfg = P.PretrainConfig(
            steps=int(sys.argv[5]),
            batch_size=int(sys.argv[6]),
            lr=float(sys.argv[7]),
            workers=int(sys.argv[8]),
            eval_every=int(sys.argv[9]),
            max_seconds=secs,
        )
        logf = open(f"{OUT}/pretrain.jsonl", "w")

        def log(r):
            print("pretrain", json.dumps(r), flush=True)
            logf.write(json.dumps(r) + "\n")
            logf.flush()

        s = P.pretrain(base, out, cfg, device=os.environ.get("DEV"), log=log)
        print(json.dumps(s)[:2000])
        os._exit(0)
    judge_run(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
