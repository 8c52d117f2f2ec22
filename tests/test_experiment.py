"""The synergy experiment's held-out measurement: per-task accuracy in both orders, with a
bootstrap interval over prompts, and the table that prints it."""

import pytest

from unireward.experiment import held_out, markdown
from unireward.judge.metrics import pair_metrics
from unireward.judge.model import RewardModel
from unireward.judge.records import read_items
from unireward.synth.world import TASKS


def test_held_out_accuracy_with_a_prompt_bootstrap(tiny_judge_dir, world):
    got = held_out(str(tiny_judge_dir), world, seed=0, resamples=200)
    rm = RewardModel(tiny_judge_dir)
    for task in TASKS:
        items, rows = read_items(world.items[task])
        pairs = [
            (it, r) for it, r in zip(items, rows) if r["mode"] == "pair_rank" and r["label"] in ("first", "second")
        ]
        assert got[f"{task}/n"] == len(pairs) > 0
        js = rm.judge([it for it, _ in pairs], method="logits", swap=True)
        acc = pair_metrics(js, [r["label"] for _, r in pairs])["acc_without_ties"]
        assert got[f"{task}/acc"] == pytest.approx(acc)
        lo, hi = got[f"{task}/ci95"]
        assert 0 <= lo <= hi <= 1
    assert held_out(str(tiny_judge_dir), world, seed=0, resamples=200) == got  # seeded


def test_markdown_shows_intervals_and_n():
    row = {f"{t}/acc": 0.5 for t in TASKS} | {f"{t}/ci95": [0.25, 0.75] for t in TASKS} | {f"{t}/n": 40 for t in TASKS}
    table = {"joint": dict(row), "image_generation": dict(row, **{"image_generation/spearman": 0.1})}
    md = markdown(dict(table=table))
    assert "0.50 [0.25-0.75]" in md and "image generation 40" in md
    assert md.count("\n|") >= 3  # header, rule, two rows
