"""The curation report: a JSON summary and PNG plots, computed from the committed results."""

from __future__ import annotations

import io
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..io import storage


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def summarize_curation(
    prompts: Sequence[dict[str, Any]], prefs: Sequence[dict[str, Any]], errors: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """``prompts``: one row per prompt (prompt_id, task, status, reason, stats as a dict)."""
    by_task: dict[str, dict[str, Any]] = {}
    tasks = sorted({p["task"] for p in prompts})
    for task in tasks:
        rows = [p for p in prompts if p["task"] == task]
        status = Counter(p["status"] for p in rows)
        decisive = sum(p["stats"].get("decisive_shown", 0) for p in rows)
        first = sum(p["stats"].get("first_shown_wins", 0) for p in rows)
        kept = [p for p in prefs if p["task"] == task]
        gt = [p for p in kept if p.get("chosen_gt") is not None and p.get("rejected_gt") is not None]
        by_task[task] = dict(
            prompts=len(rows),
            status=dict(status),
            keep_rate=_rate(status.get("kept", 0), len(rows)),
            pairs_judged=sum(p["stats"].get("pairs", 0) for p in rows),
            points_judged=sum(p["stats"].get("points", 0) for p in rows),
            tie_verdicts=sum(p["stats"].get("ties", 0) for p in rows),
            position_bias=dict(decisive_verdicts=decisive, first_shown_wins=first, rate=_rate(first, decisive)),
            margin=_describe([p["margin"] for p in kept]),
            chosen_score=_describe([p["chosen_score"] for p in kept]),
            rejected_score=_describe([p["rejected_score"] for p in kept]),
            p_chosen_better=_describe([p["p_chosen_better"] for p in kept if p["p_chosen_better"] is not None]),
            precision=dict(
                pairs_with_ground_truth=len(gt),
                chosen_truly_better=sum(p["chosen_gt"] > p["rejected_gt"] for p in gt),
                equal_truth=sum(p["chosen_gt"] == p["rejected_gt"] for p in gt),
                precision=_rate(sum(p["chosen_gt"] > p["rejected_gt"] for p in gt), len(gt)),
            ),
            drop_reasons=dict(
                Counter(_reason_kind(p["reason"]) for p in rows if p["status"] in ("dropped", "excluded")).most_common(
                    8
                )
            ),
        )
    return dict(
        prompts=len(prompts),
        preferences=len(prefs),
        failed_prompts=sum(p["status"] == "failed" for p in prompts),
        errors=dict(
            total=len(errors),
            by_stage=dict(Counter(e["stage"] for e in errors)),
            by_status=dict(Counter(e["status"] for e in errors)),
            by_code=dict(Counter(_reason_kind(e["reason"]) for e in errors).most_common(10)),
        ),
        tasks=by_task,
    )


def _reason_kind(reason: str | None) -> str:
    """A short class of a reason: the media error code, or its first words."""
    if not reason:
        return "-"
    head = reason.split(":")[0].strip()
    if head in ("not_found", "empty", "too_large", "decode_failed", "unsupported", "invalid_uri", "io_error"):
        return head
    words = reason.split()
    return " ".join(w for w in words[:4] if not any(ch.isdigit() for ch in w))


def _describe(xs: Sequence[float]) -> dict[str, float | int | None]:
    if not xs:
        return dict(n=0, mean=None, min=None, max=None)
    a = np.asarray(xs, dtype=float)
    return dict(n=len(a), mean=float(a.mean()), min=float(a.min()), max=float(a.max()))


def plot_curation(summary: dict[str, Any], prefs: Sequence[dict[str, Any]], uri: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(summary["tasks"])
    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    by_task = defaultdict(list)
    for p in prefs:
        by_task[p["task"]].append(p)
    bins = np.linspace(0, 1, 21)
    pp = [p for p in prefs if p["strategy"] == "pair_point"]
    ax[0, 0].hist([p["chosen_score"] for p in pp], bins=bins, alpha=0.6, label="chosen")
    ax[0, 0].hist([p["rejected_score"] for p in pp], bins=bins, alpha=0.6, label="rejected")
    ax[0, 0].set_title("point scores of kept pairs (normalised)")
    ax[0, 0].legend()
    for task in tasks:
        if by_task[task]:
            ax[0, 1].hist([p["margin"] for p in by_task[task]], bins=20, alpha=0.5, label=task)
    ax[0, 1].set_title("margins of kept pairs")
    if any(by_task.values()):
        ax[0, 1].legend(fontsize=8)
    x = np.arange(len(tasks))
    ax[1, 0].bar(x, [summary["tasks"][t]["keep_rate"] or 0 for t in tasks])
    ax[1, 0].set_title("keep rate per task (prompts with a kept pair)")
    ax[1, 0].set_ylim(0, 1)
    rates = [summary["tasks"][t]["position_bias"]["rate"] for t in tasks]
    ax[1, 1].bar(x, [r if r is not None else 0 for r in rates])
    ax[1, 1].axhline(0.5, color="grey", ls="--", lw=1, label="no bias")
    ax[1, 1].set_title("position bias: first-shown candidate wins")
    ax[1, 1].set_ylim(0, 1)
    ax[1, 1].legend(fontsize=8)
    for a in (ax[1, 0], ax[1, 1]):
        a.set_xticks(x, [t.replace("_", "\n") for t in tasks], fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    storage.write_bytes(uri, buf.getvalue())


def summarize_scores(judgments: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Summary of a ``kind: score`` run: statuses, verdicts, position bias, agreement with labels."""
    from ..judge.metrics import spearman

    out: dict[str, Any] = dict(items=len(judgments), tasks={})
    for task in sorted({j["task"] for j in judgments}):
        rows = [j for j in judgments if j["task"] == task]
        pairs = [j for j in rows if j["mode"] == "pair_rank"]
        points = [j for j in rows if j["mode"] != "pair_rank"]
        ok_pairs = [j for j in pairs if j["status"] == "ok"]
        labelled = [j for j in ok_pairs if j.get("label")]
        decisive = [j for j in ok_pairs if j["verdict"] in ("first", "second")]
        truth = [
            (j["score_norm"], j["gt_scores"][0])
            for j in points
            if j["status"] == "ok" and j.get("gt_scores") and j["gt_scores"][0] is not None
        ]
        out["tasks"][task] = dict(
            status=dict(Counter(j["status"] for j in rows)),
            verdicts=dict(Counter(j["verdict"] for j in ok_pairs)),
            position_bias=_rate(sum(j["verdict"] == "first" for j in decisive), len(decisive)),
            pair_accuracy=_rate(sum(j["verdict"] == j["label"] for j in labelled), len(labelled)),
            point_spearman=spearman([a for a, _ in truth], [b for _, b in truth]) if len(truth) > 1 else None,
            mean_score_norm=_describe([j["score_norm"] for j in points if j["status"] == "ok"])["mean"],
        )
    return out


def write_json(obj: Any, uri: str) -> None:
    storage.write_bytes(uri, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())
