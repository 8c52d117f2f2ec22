"""Agreement of judgments with ground truth: pairwise accuracy with and without ties, and Spearman
correlation of point scores. Judgments that are not ``ok`` are counted, never silently dropped:
accuracies are reported over all labelled items (a failed judgment counts as wrong) and over the
judged ones."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from .types import Judgment, Status


def status_counts(judgments: Sequence[Judgment]) -> dict[str, int]:
    c = Counter(j.status.value for j in judgments)
    return {s.value: c.get(s.value, 0) for s in Status}


def pair_metrics(judgments: Sequence[Judgment], labels: Sequence[str | None]) -> dict[str, float | int | None]:
    """``labels``: ground-truth verdicts ('first' | 'second' | 'tie' | None for unknown).

    - acc: correct / labelled pairs (3-way: a tie must be called a tie; failures count as wrong)
    - acc_without_ties: over pairs whose truth is not a tie; a judged tie counts as wrong
    - acc_judged: correct / pairs judged ok
    """
    assert len(judgments) == len(labels)
    labelled = [(j, y) for j, y in zip(judgments, labels) if y is not None]
    ok = [(j, y) for j, y in labelled if j.status is Status.OK]
    correct = sum(j.verdict == y for j, y in ok)
    strict = [(j, y) for j, y in labelled if y != "tie"]
    strict_correct = sum(j.status is Status.OK and j.verdict == y for j, y in strict)
    out: dict[str, float | int | None] = dict(
        n=len(labelled),
        n_ok=len(ok),
        acc=correct / len(labelled) if labelled else None,
        acc_without_ties=strict_correct / len(strict) if strict else None,
        acc_judged=correct / len(ok) if ok else None,
        predicted_ties=sum(j.verdict == "tie" for j, _ in ok),
        first_wins=sum(j.verdict == "first" for j, _ in ok),
    )
    agree = [j.agreement for j, _ in ok if j.agreement is not None]
    out["swap_agreement"] = sum(agree) / len(agree) if agree else None
    masses = [j.mass for j, _ in ok if j.mass is not None]
    out["mean_mass"] = float(np.mean(masses)) if masses else None
    return out


def rankdata(x: Sequence[float]) -> np.ndarray:
    """Ranks (1-based) with ties given their average rank."""
    a = np.asarray(x, dtype=float)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a), dtype=float)
    sorted_a = a[order]
    i = 0
    while i < len(a):
        j = i
        while j + 1 < len(a) and sorted_a[j + 1] == sorted_a[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho, or None when undefined (fewer than 2 points, or a constant side)."""
    if len(x) != len(y) or len(x) < 2:
        return None
    rx, ry = rankdata(x), rankdata(y)
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def point_metrics(judgments: Sequence[Judgment], truth: Sequence[float | None]) -> dict[str, float | int | None]:
    """Spearman correlation of judged scores (normalised) with ground truth, over ok judgments."""
    pairs = [
        (j.score_norm, t)
        for j, t in zip(judgments, truth)
        if t is not None and j.status is Status.OK and j.score_norm is not None
    ]
    masses = [j.mass for j in judgments if j.status is Status.OK and j.mass is not None]
    return dict(
        n=sum(t is not None for t in truth),
        n_ok=len(pairs),
        spearman=spearman([p for p, _ in pairs], [t for _, t in pairs]),
        mean_score_norm=float(np.mean([p for p, _ in pairs])) if pairs else None,
        mean_mass=float(np.mean(masses)) if masses else None,
    )
