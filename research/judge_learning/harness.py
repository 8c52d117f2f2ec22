"""The judge-learning measurement harness: judge SFT in one process (the train_reward data plan, encoding and
loss, without Ray Train / DeepSpeed), evaluated on a held-out world with the judge's logit method in
both orders, per task and per deciding axis.

The data plan is `unireward.train.reward.build_plan` of a spec like the demo's; the loop is the
worker loop of `train_reward.train_loop` (micro-batches of one media kind, AdamW, warmup + cosine,
clipping 1.0) on one process with 2 threads; batch 16 = the demo's 2 workers x 8.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unireward.config import TrainRewardSpec
from unireward.judge.model import RewardModel
from unireward.judge.protocols import default_registry
from unireward.judge.records import item_from_record
from unireward.synth.world import TASKS, generate_world
from unireward.train import sft
from unireward.train.data import SFTExample
from unireward.train.reward import build_plan
from unireward.train.runtime import lr_lambda

GEN = ("image_generation", "video_generation")


def world(path: str, n: int, seed: int, pairs: str = "adjacent", tasks=TASKS, n_candidates: int = 4) -> str:
    if not Path(path, "world.json").exists():
        generate_world(path, n=n, seed=seed, n_candidates=n_candidates, pairs=pairs, tasks=tuple(tasks))
    return path


def plan(
    model_dir: str,
    train_world: str,
    eval_world: str,
    tasks=TASKS,
    points: bool = True,
    seed: int = 0,
    think: bool = False,
):
    spec = TrainRewardSpec.model_validate(
        dict(
            kind="train_reward",
            name="h",
            model=model_dir,
            output="/tmp/unused",
            data=dict(
                train=[dict(path=f"{train_world}/{t}.items.parquet") for t in tasks],
                eval=[dict(path=f"{eval_world}/{t}.items.parquet") for t in tasks],
                points=points,
                think=think,
            ),
            training=dict(seed=seed),
        )
    )
    p = build_plan(spec, default_registry())
    errors = [e for e in p["errors"] if "label 'tie'" not in e["reason"]]  # understanding ties: no tie verdict
    assert not errors, errors[:3]
    return [SFTExample(**e) for e in p["examples"]], p["eval"]


def evaluate(
    rm: RewardModel, rows: list[dict[str, Any]], confident: float = 0.6, method: str = "logits", samples: int = 0
) -> dict[str, Any]:
    """Pairwise accuracy (truth not a tie; a predicted tie or a failed judgment is wrong) per task
    and per task/axis, judged with the logit method in both orders (swap=True); swap agreement
    over all ok pairs and over the confident ones (combined P of the verdict >= ``confident``)."""
    pairs = [r for r in rows if r.get("mode") == "pair_rank" and r.get("label") not in (None, "tie")]
    items = [item_from_record(r) for r in pairs]
    was = rm.model.training
    rm.model.eval()
    t0, c0 = time.time(), time.process_time()
    js = rm.judge(items, method=method, swap=True)
    rm.model.train(was)
    groups: dict[str, list] = defaultdict(list)
    for r, j in zip(pairs, js):
        groups[r["task"]].append((r, j))
        groups[f"{r['task']}/{r.get('axis')}"].append((r, j))
        if r["task"] in GEN and r.get("axis") not in ("alignment", None, "mixed"):
            groups[f"{r['task']}/quality"].append((r, j))
    out: dict[str, Any] = {
        "eval_seconds": round(time.time() - t0, 1),
        "eval_cpu_seconds": round(time.process_time() - c0, 1),
    }
    for key, grp in sorted(groups.items()):
        ok = [(r, j) for r, j in grp if j.status.value == "ok"]
        correct = sum(j.verdict == r["label"] for r, j in ok)
        conf = [j for _, j in ok if j.probs and max(j.probs.values()) >= confident]
        out[key] = dict(
            n=len(grp),
            acc=round(correct / len(grp), 4),
            first=sum(j.verdict == "first" for _, j in ok),
            tie=sum(j.verdict == "tie" for _, j in ok),
            swap_agree=round(float(np.mean([j.agreement for _, j in ok])), 4) if ok else None,
            n_conf=len(conf),
            swap_agree_conf=round(float(np.mean([j.agreement for j in conf])), 4) if conf else None,
            mean_p=round(float(np.mean([max(j.probs.values()) for _, j in ok if j.probs])), 4) if ok else None,
        )
    if samples:  # a few generated texts, to read
        out["samples"] = [
            dict(
                item=r["item_id"],
                label=r["label"],
                axis=r.get("axis"),
                texts=[o.raw_text for o in (j.orders or [j])],
                verdict=j.verdict,
            )
            for r, j in list(zip(pairs, js))[:: max(1, len(pairs) // samples)]
        ]
    return out


def brief(m: dict[str, Any]) -> str:
    keys = [
        "image_generation/quality",
        "image_generation/alignment",
        "video_generation/quality",
        "video_generation/alignment",
        "image_understanding",
        "video_understanding",
    ]
    return " ".join(
        f"{k.replace('_generation', 'G').replace('_understanding', 'U').replace('image', 'i').replace('video', 'v')}="
        f"{m[k]['acc']:.2f}"
        for k in keys
        if k in m
    )


def train(
    rm: RewardModel,
    examples: list[SFTExample],
    eval_rows,
    steps: int,
    batch: int = 16,
    lr: float = 2e-3,
    warmup_ratio: float = 0.05,
    eval_every: int = 40,
    seed: int = 0,
    out: str | None = None,
    log=print,
    eval_before: bool = True,
    max_seconds: float | None = None,
    schedule: str = "cosine",
    weight_decay: float = 0.0,
    method: str = "logits",
    samples: int = 0,
) -> list[dict[str, Any]]:
    torch.manual_seed(seed)
    random.seed(seed)
    model = rm.model
    model.train()
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=lr,
        weight_decay=weight_decay,
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    warmup = math.ceil(warmup_ratio * steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(schedule, warmup, steps))
    by_kind = {k: [i for i, e in enumerate(examples) if e.media_kind == k] for k in ("image", "video")}
    by_kind = {k: v for k, v in by_kind.items() if v}
    kinds, weights = list(by_kind), np.array([len(v) for v in by_kind.values()], float)
    rng = np.random.default_rng(seed)
    orders = {k: list(rng.permutation(v)) for k, v in by_kind.items()}
    pos = {k: 0 for k in by_kind}
    cache: dict[int, Any] = {}
    media_cache: dict = {}
    history = []

    def record(step, loss, t_train, c_train=0.0):
        rec = dict(step=step, train_seconds=round(t_train, 1), train_cpu_seconds=round(c_train, 1), loss=loss)
        if eval_rows is not None:
            rec.update(evaluate(rm, eval_rows, method=method, samples=samples))
        history.append(rec)
        log(
            f"step {step} t={t_train:.0f}s cpu={c_train:.0f}s loss={loss} {brief(rec)} (eval {rec.get('eval_seconds')}s)"
        )
        if out:
            Path(out).write_text(json.dumps(history, indent=1))

    if eval_before:
        record(0, None, 0.0)
    t_train, c_train, window = 0.0, 0.0, []
    for step in range(1, steps + 1):
        t, c = time.time(), time.process_time()
        kind = kinds[rng.choice(len(kinds), p=weights / weights.sum())]
        encs = []
        while len(encs) < batch:
            if pos[kind] >= len(orders[kind]):
                orders[kind], pos[kind] = list(rng.permutation(by_kind[kind])), 0
            i = int(orders[kind][pos[kind]])
            pos[kind] += 1
            if i not in cache:
                if len(media_cache) > 4096:
                    media_cache.clear()
                cache[i] = sft.encode(rm, examples[i], media_cache)
            encs.append(cache[i])
        b = sft.collate(rm, encs)
        loss = sft.loss(model, b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        window.append(float(loss))
        t_train += time.time() - t
        c_train += time.process_time() - c
        if step % eval_every == 0 or step == steps or (max_seconds and t_train > max_seconds):
            record(step, round(float(np.mean(window)), 4), t_train, c_train)
            window = []
            if max_seconds and t_train > max_seconds:
                break
    return history


def load(model_dir: str) -> RewardModel:
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    return RewardModel(model_dir, device="cpu", dtype="float32", max_batch_size=16)
