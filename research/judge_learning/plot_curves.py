"""The judge-learning curves in one picture (curves.png), from the runs' JSON in this folder.

usage (repository root): .venv/bin/python research/judge_learning/plot_curves.py

Left: the demo recipe (random-init small judge, batch 16, lr 2e-3) evaluated every 20 steps on the
held-out world: accuracy per task and deciding axis, the training loss, and swap agreement (the
share of pairs whose two orders name the same candidate). Right: every run's last evaluation per
task / axis with its Wilson 95% interval; 0.5 is chance.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from unireward.eval.core import wilson

HERE = Path(__file__).resolve().parent
CURVE = "b-small-120-0.002-all-48-pts"
KEYS = [
    ("image_generation/quality", "image gen, quality"),
    ("image_generation/alignment", "image gen, alignment"),
    ("video_generation/quality", "video gen, quality"),
    ("video_generation/alignment", "video gen, alignment"),
    ("image_understanding", "image und"),
    ("video_understanding", "video und"),
]
TASKS = ["image_generation", "video_generation", "image_understanding", "video_understanding"]
RUNS = [  # file stem -> label, in the order of docs/training.md's table
    ("b-small-120-0.002-all-48-pts", "random (small), 120"),
    ("c-rand-logits-adj96-240", "random (small), one-axis pairs, 240"),
    ("c-rand-nano-logits-120", "random (nano), 120"),
    ("c-rand-mini-logits-120", "random (mini), 120"),
    ("c-base800-logits-120", "base: 800 slot-mix steps, 120"),
    ("c-see500-logits-120", "base: 500 see steps, 120"),
    ("c-see500-think-200", "base: 500 see steps, think, 200"),
]


def main() -> None:
    curve = json.loads((HERE / f"{CURVE}.json").read_text())
    steps = [r["step"] for r in curve]
    fig = plt.figure(figsize=(15, 8.5))
    grid = fig.add_gridspec(3, 2, width_ratios=[1, 1.25], hspace=0.45, wspace=0.25)

    ax = fig.add_subplot(grid[0, 0])
    for key, label in KEYS:
        ax.plot(steps, [r[key]["acc"] for r in curve], marker="o", ms=3, label=label)
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    ax.set(ylim=(0, 1), ylabel="held-out accuracy", title="demo recipe: accuracy per deciding axis")
    ax.legend(fontsize=7, ncol=2, loc="lower right")

    ax = fig.add_subplot(grid[1, 0])
    trained = [r for r in curve if r.get("loss") is not None]
    ax.plot([r["step"] for r in trained], [r["loss"] for r in trained], marker="o", ms=3, color="black")
    ax.set(yscale="log", ylabel="training loss", title="the verdict format is learnt (loss falls 25x)")

    ax = fig.add_subplot(grid[2, 0])
    for task in TASKS:
        ax.plot(steps, [r[task]["swap_agree"] for r in curve], marker="o", ms=3, label=task.replace("_", " "))
    ax.set(
        ylim=(-0.05, 1.05),
        xlabel="training step",
        ylabel="swap agreement",
        title="the content is not: both orders pick the same position",
    )
    ax.legend(fontsize=7, ncol=2)

    ax = fig.add_subplot(grid[:, 1])
    width = 0.8 / len(RUNS)
    for i, (stem, label) in enumerate(RUNS):
        last = json.loads((HERE / f"{stem}.json").read_text())[-1]
        xs, ys, lo, hi = [], [], [], []
        for k, (key, _) in enumerate(KEYS):
            if key not in last:
                continue
            n, acc = last[key]["n"], last[key]["acc"]
            low, high = wilson(round(acc * n), n)
            xs.append(k - 0.4 + (i + 0.5) * width)
            ys.append(acc)
            lo.append(acc - low)
            hi.append(high - acc)
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", ms=4, capsize=2, lw=1, label=f"{label} (step {last['step']})")
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    ax.axhline(0.9, color="tab:green", ls=":", lw=1)
    ax.axhline(0.75, color="tab:olive", ls=":", lw=1)
    ax.set_xticks(range(len(KEYS)), [label for _, label in KEYS], rotation=20, fontsize=8)
    ax.set(
        ylim=(0, 1),
        ylabel="held-out accuracy, Wilson 95% interval",
        title="every run's last evaluation (dotted: the targets 0.90 quality, 0.75 other)",
    )
    ax.legend(fontsize=7, loc="lower left")
    out = HERE / "curves.png"
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(out)


if __name__ == "__main__":
    main()
