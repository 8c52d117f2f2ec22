"""``unireward experiment synergy``: the paper's joint-training ablation in miniature. From one
starting judge, one judge is trained on each single task and one on all four; every judge is
evaluated on the held-out items of every task. Per-task exposure is matched: a single-task run
takes ``steps`` optimizer steps on its task, the joint run ``4 x steps`` on the four tasks mixed in
equal shares, so each task contributes about the same number of examples to both."""

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
        if summary["before"]:
            table["untrained"] = {f"{t}/{m}": summary["before"].get(f"eval/{t}/{m}") for t in TASKS for m in METRICS}
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


def markdown(result: dict[str, Any]) -> str:
    table = result["table"]
    rows = ["untrained"] + list(TASKS) + ["joint"]
    head = "| trained on | " + " | ".join(f"{t.replace('_', ' ')}: acc / rho" for t in TASKS) + " |"
    lines = [head, "|" + " --- |" * (len(TASKS) + 1)]
    for r in rows:
        if r not in table:
            continue
        cells = []
        for t in TASKS:
            a, s = table[r].get(f"{t}/acc_without_ties"), table[r].get(f"{t}/spearman")
            cell = f"{_f(a)} / {_f(s)}"
            cells.append(f"**{cell}**" if r == t or r == "joint" else cell)
        lines.append(f"| {r.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
        vals = (
            [(table.get(key or t) or {}).get(f"{t}/acc_without_ties") or 0.0 for t in TASKS]
            if key != "untrained"
            else [(table.get("untrained") or {}).get(f"{t}/acc_without_ties") or 0.0 for t in TASKS]
        )
        ax.bar(x + (k - 1) * 0.27, vals, 0.27, label=label)
    ax.axhline(0.5, color="grey", lw=1, ls="--")
    ax.set_xticks(x, [t.replace("_", "\n") for t in TASKS])
    ax.set_ylim(0, 1)
    ax.set_title("held-out pairwise accuracy: single-task judges vs one joint judge")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
