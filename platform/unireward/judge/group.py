"""Group rewards: from the judgments of one group of G candidates (the samples an RL policy drew
for one prompt) to one reward per candidate. Pure arithmetic on Judgments; the endpoint's
``/v1/rewards`` route and any offline caller build the items, judge them in one batch and hand the
judgments back here.

Three schemes:

- ``pairwise_winrate`` (Pref-GRPO's rule): every pair of distinct valid candidates is judged (in
  both orders when ``swap``); a candidate's reward is the fraction of its comparisons it wins. A
  tie, an unparsed verdict or a failed judgment is worth 0.5 to each side and is counted. Two
  identical candidates are a tie by definition and are not sent to the judge.
- ``pointwise``: the normalised point score (``score_norm``, in [0, 1]) of each candidate; an
  unparsed or failed point judgment gives ``None`` with its reason.
- ``bradley_terry``: strengths fitted to the pair judgments (P(first better) with ties counting
  half, as curation does) with a small L2 prior, centred on the group's valid candidates.

An invalid candidate (its media unreadable, an empty answer, ...) gets ``None`` with its reason
and takes no part in its neighbours' comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .types import Judgment, Status

SCHEMES = ("pairwise_winrate", "pointwise", "bradley_terry")
NO_RIVAL = "no other valid candidate in the group to compare with"


def p_first_better(j: Judgment) -> float | None:
    """P(the first candidate is better), ties counting half; None if the judgment is not ok."""
    if j.status is not Status.OK:
        return None
    if j.probs is not None:
        return j.probs.get("first", 0.0) + 0.5 * j.probs.get("tie", 0.0)
    return {"first": 1.0, "second": 0.0, "tie": 0.5}.get(j.verdict)


def bradley_terry(n: int, outcomes: Sequence[tuple[int, int, float]], l2: float = 0.1, iters: int = 50) -> np.ndarray:
    """Strengths s (mean 0) maximising sum w log sigma(s_a - s_b) + (1 - w) log sigma(s_b - s_a) - l2/2 |s|^2
    by Newton's method; ``outcomes``: (a, b, P(a beats b))."""
    s = np.zeros(n)
    for _ in range(iters):
        grad = -l2 * s
        hess = -l2 * np.eye(n)
        for a, b, w in outcomes:
            p = 1.0 / (1.0 + math.exp(-(s[a] - s[b])))
            g = w - p
            grad[a] += g
            grad[b] -= g
            h = p * (1 - p)
            hess[a, a] -= h
            hess[b, b] -= h
            hess[a, b] += h
            hess[b, a] += h
        step = np.linalg.solve(hess, grad)
        s -= step
        if np.abs(step).max() < 1e-9:
            break
    return s - s.mean()


@dataclass
class GroupPlan:
    """What to judge for one group. ``rep[i]``: the index of the first valid candidate identical to
    candidate ``i`` (``i`` itself when it is the first), None when ``i`` is invalid. ``jobs``: the
    judgments to make, ``(a, b)`` ordered pairs of representatives or ``(a,)`` points."""

    scheme: str
    n: int
    reasons: list[str | None]
    rep: list[int | None]
    swap: bool
    jobs: list[tuple[int, ...]] = field(default_factory=list)

    @property
    def valid(self) -> list[int]:
        return [i for i in range(self.n) if self.rep[i] is not None]

    @property
    def representatives(self) -> list[int]:
        return [i for i in range(self.n) if self.rep[i] == i]


def plan_group(scheme: str, keys: Sequence[Any], reasons: Sequence[str | None], swap: bool = True) -> GroupPlan:
    """The judgments a group needs. ``keys``: a hashable identity per candidate (equal keys are the
    same candidate); ``reasons``: why a candidate is invalid, or None."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if len(keys) != len(reasons):
        raise ValueError("one key and one reason (or None) per candidate")
    first: dict[Any, int] = {}
    rep: list[int | None] = []
    for i, (k, r) in enumerate(zip(keys, reasons)):
        rep.append(None if r is not None else first.setdefault(k, i))
    plan = GroupPlan(scheme, len(keys), list(reasons), rep, swap and scheme != "pointwise")
    reps = plan.representatives
    if scheme == "pointwise":
        plan.jobs = [(a,) for a in reps]
    else:
        for x, a in enumerate(reps):
            for b in reps[x + 1 :]:
                plan.jobs.append((a, b))
                if plan.swap:
                    plan.jobs.append((b, a))
    return plan


def _outcome(j: Judgment) -> tuple[float, str]:
    """(points for the first candidate, kind) of one pair judgment; kind: win, loss, tie, unparsed or failed."""
    if j.status is Status.OK:
        return {"first": (1.0, "win"), "second": (0.0, "loss")}.get(j.verdict or "", (0.5, "tie"))
    return 0.5, ("unparsed" if j.status is Status.UNPARSED else "failed")


def group_rewards(plan: GroupPlan, judgments: Sequence[Judgment]) -> tuple[list[float | None], dict[str, Any]]:
    """One reward per candidate (None for an invalid one) and the details: per-candidate counts and
    reasons, the group's ties, unparsed and failed judgments, and (with swap) how often the two
    orders of a pair agree."""
    if len(judgments) != len(plan.jobs):
        raise ValueError(f"{len(judgments)} judgments for {len(plan.jobs)} jobs")
    by_job = dict(zip(plan.jobs, judgments))
    cands: list[dict[str, Any]] = [
        dict(reason=r)
        if r is not None
        else dict(reason=None, **({} if plan.rep[i] == i else dict(duplicate_of=plan.rep[i])))
        for i, r in enumerate(plan.reasons)
    ]
    counts = dict(judgments=len(judgments), ties=0, unparsed=0, failed=0)
    for j in judgments:
        if j.status is Status.UNPARSED:
            counts["unparsed"] += 1
        elif j.status is not Status.OK:
            counts["failed"] += 1
        elif len(plan.jobs[0]) == 2 and _outcome(j)[1] == "tie":
            counts["ties"] += 1
    valid = plan.valid
    details: dict[str, Any] = dict(
        scheme=plan.scheme,
        candidates=cands,
        valid=len(valid),
        invalid=plan.n - len(valid),
        duplicates=len(valid) - len(plan.representatives),
        **counts,
    )
    rewards: list[float | None] = [None] * plan.n
    if plan.scheme == "pointwise":
        for i in valid:
            j = by_job[(plan.rep[i],)]
            if j.status is Status.OK and j.score_norm is not None:
                rewards[i] = float(j.score_norm)
                cands[i]["score"] = j.score
            else:
                cands[i]["reason"] = f"{j.status.value}: {j.reason or 'no score'}"
        return rewards, details
    if len(valid) < 2:
        for i in valid:
            cands[i]["reason"] = NO_RIVAL
        return rewards, details
    if plan.swap:
        pairs = [(a, b) for a, b in plan.jobs if a < b]
        agree = [
            _outcome(by_job[(a, b)])[0] == 1.0 - _outcome(by_job[(b, a)])[0]
            for a, b in pairs
            if by_job[(a, b)].ok and by_job[(b, a)].ok
        ]
        details["swap_agreement"] = sum(agree) / len(agree) if agree else None
    if plan.scheme == "pairwise_winrate":
        for i in valid:
            tally = dict(wins=0, losses=0, ties=0, unparsed=0, failed=0, comparisons=0)
            points = 0.0
            for k in valid:
                if k == i:
                    continue
                a, b = plan.rep[i], plan.rep[k]
                orders = 2 if plan.swap else 1
                if a == b:  # identical candidates: a tie in every order, not judged
                    tally["ties"] += orders
                    points += 0.5 * orders
                    tally["comparisons"] += orders
                    continue
                for x, y in ((a, b), (b, a)):
                    if (x, y) not in by_job:
                        continue
                    p, kind = _outcome(by_job[(x, y)])
                    mine = p if x == a else 1.0 - p
                    if kind in ("win", "loss"):
                        kind = "wins" if mine == 1.0 else "losses"
                    elif kind == "tie":
                        kind = "ties"
                    tally[kind] += 1
                    tally["comparisons"] += 1
                    points += mine
            rewards[i] = points / tally["comparisons"]
            cands[i].update(tally)
        return rewards, details
    # bradley_terry over the distinct candidates, centred on the valid ones (duplicates count)
    reps = plan.representatives
    index = {a: x for x, a in enumerate(reps)}
    outcomes = []
    for (a, b), j in by_job.items():
        p = p_first_better(j)
        if p is not None:
            outcomes.append((index[a], index[b], p))
    s = bradley_terry(len(reps), outcomes)
    used = {a for a, b, _ in outcomes} | {b for a, b, _ in outcomes}
    centre = float(np.mean([s[index[plan.rep[i]]] for i in valid]))  # type: ignore[index]
    for i in valid:
        rewards[i] = float(s[index[plan.rep[i]]]) - centre  # type: ignore[index]
        cands[i]["comparisons"] = sum(1 for (a, b) in by_job if plan.rep[i] in (a, b))
        if index[plan.rep[i]] not in used:  # type: ignore[index]
            cands[i]["note"] = "no usable judgment: the prior's strength (the group's centre)"
    details["used"] = len(outcomes)
    return rewards, details
