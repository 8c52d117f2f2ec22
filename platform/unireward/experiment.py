"""``unireward experiment synergy``: the paper's joint-training ablation in miniature. From one
starting judge, one judge is trained on each single task and one on all four; every judge is
evaluated on the held-out items of every task. Per-task exposure is matched: a single-task run
takes ``steps`` optimizer steps on its task, the joint run ``4 x steps`` on the four tasks mixed in
equal shares, so each task contributes about the same number of examples to both. Each judge's held-out pairwise
accuracy is then measured once more in both orders, with a 95% interval from a bootstrap over the
held-out prompts (the pairs of one prompt are not independent)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .io import storage
from .synth.world import TASKS

METRICS = ("acc_without_ties", "spearman")


def synergy(
    workdir: str,
    prompts: int = 48,
    eval_prompts: int = 12,
    steps: int = 60,
    size: str = "small",
    batch_size: int = 8,
    lr: float = 2e-3,
    workers: int = 2,
    seed: int = 0,
    say=print,
) -> dict[str, Any]:
    from .config import TrainRewardSpec
    from .models.tiny import build_tiny_judge
    from .pipelines.train import run_train_reward
    from .synth.world import generate_world

    work = Path(workdir)
    judge = work / "judge"
    if not (judge / "config.json").exists():
        build_tiny_judge(judge, size=size, seed=seed)
    train_world = generate_world(str(work / "train_world"), n=prompts, seed=seed + 1000, n_candidates=4, pairs="all")
    eval_world = generate_world(str(work / "eval_world"), n=eval_prompts, seed=seed + 2000, n_candidates=4)
    runs: dict[str, list[str]] = {t: [t] for t in TASKS}
    runs["joint"] = list(TASKS)
    table: dict[str, dict[str, Any]] = {}
    started = time.time()
    for name, tasks in runs.items():
        spec = TrainRewardSpec.model_validate(
            dict(
                kind="train_reward",
                name=f"synergy-{name}",
                model=str(judge),
                output=str(work / "runs"),
                data=dict(
                    train=[dict(path=train_world.items[t]) for t in tasks],
                    eval=[dict(path=eval_world.items[t]) for t in TASKS],
                    weights={t: 1.0 for t in tasks},
                    total=steps * len(tasks) * batch_size * workers,
                ),
                training=dict(
                    max_steps=steps * len(tasks),
                    batch_size=batch_size,
                    lr=lr,
                    warmup_ratio=0.05,
                    eval_every=steps * len(tasks),
                    eval_before=name == "joint",
                    seed=seed,
                ),
                resources=dict(workers=workers),
            )
        )
        say(f"[synergy] training on {', '.join(tasks)} ({spec.training.max_steps} steps)")
        summary = run_train_reward(spec, say)
        table[name] = {f"{t}/{m}": summary["after"].get(f"eval/{t}/{m}") for t in TASKS for m in METRICS}
        table[name].update(held_out(summary["final"], eval_world, seed))
        if summary["before"]:
            table["untrained"] = {f"{t}/{m}": summary["before"].get(f"eval/{t}/{m}") for t in TASKS for m in METRICS}
            table["untrained"].update(held_out(str(judge), eval_world, seed))
    out = dict(
        table=table,
        setup=dict(
            prompts=prompts,
            eval_prompts=eval_prompts,
            steps=steps,
            size=size,
            batch_size=batch_size,
            lr=lr,
            workers=workers,
            seed=seed,
            seconds=round(time.time() - started, 1),
        ),
    )
    storage.write_bytes(str(work / "synergy.json"), json.dumps(out, indent=2).encode())
    storage.write_bytes(str(work / "synergy.md"), markdown(out).encode())
    _plot(table, str(work / "synergy.png"))
    return out


def held_out(model: str, world, seed: int = 0, resamples: int = 2000) -> dict[str, Any]:
    """Pairwise accuracy without ties of the judge in ``model`` on every held-out pair of ``world``
    (logit method, both orders; a judged tie or a failure counts as wrong), per task: ``<task>/n``
    pairs, ``<task>/acc`` and ``<task>/ci95``, a percentile interval from ``resamples`` draws of the
    held-out prompts with replacement."""
    import numpy as np

    from .judge.metrics import pair_metrics
    from .judge.model import RewardModel
    from .judge.records import read_items
    from .judge.types import Mode, Status

    rm = RewardModel(model)
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for task in TASKS:
        items, rows = read_items(world.items[task])
        keep = [
            (it, r)
            for it, r in zip(items, rows)
            if r["mode"] == Mode.PAIR_RANK.value and r["label"] in ("first", "second")
        ]
        if not keep:
            continue
        js = rm.judge([it for it, _ in keep], method="logits", swap=True)
        right: dict[str, list[int]] = {}
        for (it, r), j in zip(keep, js):
            right.setdefault(f"{it.prompt}\n{it.context}", []).append(
                int(j.status is Status.OK and j.verdict == r["label"])
            )
        acc = pair_metrics(js, [r["label"] for _, r in keep])["acc_without_ties"]
        groups = list(right.values())
        draws = []
        for _ in range(resamples):
            pick = [groups[k] for k in rng.integers(0, len(groups), len(groups))]
            draws.append(sum(map(sum, pick)) / sum(map(len, pick)))
        lo, hi = np.percentile(draws, [2.5, 97.5])
        out.update({f"{task}/n": len(keep), f"{task}/acc": acc, f"{task}/ci95": [float(lo), float(hi)]})
    return out


def markdown(result: dict[str, Any]) -> str:
    table = result["table"]
    rows = ["untrained"] + list(TASKS) + ["joint"]
    head = "| trained on | " + " | ".join(f"{t.replace('_', ' ')}: acc [95% CI] / rho" for t in TASKS) + " |"
    lines = [head, "|" + " --- |" * (len(TASKS) + 1)]
    for r in rows:
        if r not in table:
            continue
        cells = []
        for t in TASKS:
            row = table[r]
            a, s, ci = (
                row.get(f"{t}/acc", row.get(f"{t}/acc_without_ties")),
                row.get(f"{t}/spearman"),
                row.get(f"{t}/ci95"),
            )
            cell = f"{_f(a)} [{_f(ci[0])}-{_f(ci[1])}] / {_f(s)}" if ci else f"{_f(a)} / {_f(s)}"
            cells.append(f"**{cell}**" if r == t or r == "joint" else cell)
        lines.append(f"| {r.replace('_', ' ')} | " + " | ".join(cells) + " |")
    n = {t: (table.get("joint") or {}).get(f"{t}/n") for t in TASKS}
    note = "held-out pairs per task (both orders): " + ", ".join(f"{t.replace('_', ' ')} {n[t]}" for t in TASKS if n[t])
    return "\n".join(lines) + "\n" + (f"\n{note}\n" if any(n.values()) else "")


def _f(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def _plot(table: dict[str, dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from .train.runtime import save_png

    fig, ax = plt.subplots(figsize=(9, 4))
    x = np.arange(len(TASKS))
    bars = [("untrained", "untrained"), ("single task", None), ("joint (all four)", "joint")]
    for k, (label, key) in enumerate(bars):
        rows = [table.get(key or t) or {} for t in TASKS]
        vals = [r.get(f"{t}/acc", r.get(f"{t}/acc_without_ties")) or 0.0 for r, t in zip(rows, TASKS)]
        cis = [r.get(f"{t}/ci95") for r, t in zip(rows, TASKS)]
        err = None
        if all(cis):
            err = np.array([[v - c[0] for v, c in zip(vals, cis)], [c[1] - v for v, c in zip(vals, cis)]]).clip(0)
        ax.bar(x + (k - 1) * 0.27, vals, 0.27, label=label, yerr=err, capsize=3)
    ax.axhline(0.5, color="grey", lw=1, ls="--")
    ax.set_xticks(x, [t.replace("_", "\n") for t in TASKS])
    ax.set_ylim(0, 1)
    ax.set_title("held-out pairwise accuracy (95% bootstrap intervals): single-task judges vs one joint judge")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
