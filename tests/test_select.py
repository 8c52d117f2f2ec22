"""Selection (pair ranking + point sifting, Bradley-Terry) on scripted verdicts: every decision the
algorithm makes, including ties, unparsed verdicts, broken media and the confirmation pair."""

import json
import math

import numpy as np
import pytest

from unireward.config import SelectConfig
from unireward.curate.select import Candidate, PoolRow, bradley_terry, curate_batch, plan_pairs
from unireward.io.media import MediaError
from unireward.judge.types import Judgment, Mode, Status


class Script:
    """A judge that answers from tables: pair verdicts by (first id, second id), point scores by id.
    Records every call (items, swap)."""

    def __init__(self, pairs=None, points=None):
        self.pairs = pairs or {}
        self.points = points or {}
        self.calls = []

    def __call__(self, items, swap):
        self.calls.append(([it.id for it in items], swap))
        out = []
        for it in items:
            mode = it.resolved_mode()
            if mode is Mode.PAIR_RANK:
                a, b = it.candidates
                v = self.pairs.get((a, b))
                if v is None and (b, a) in self.pairs:
                    v = {"first": "second", "second": "first"}.get(self.pairs[(b, a)], self.pairs[(b, a)])
                out.append(_pair(v))
            else:
                s = self.points.get(it.candidates[0])
                out.append(_point(s))
        return out


def _pair(v):
    if v in (None, "unparsed"):
        return Judgment(None, "image_generation", "pair_rank", "generate", Status.UNPARSED, reason="no verdict phrase")
    if v == "invalid":
        return Judgment(None, "image_generation", "pair_rank", "generate", Status.INVALID_INPUT, reason="not_found: x")
    return Judgment(
        None,
        "image_generation",
        "pair_rank",
        "generate",
        Status.OK,
        verdict=v,
        provenance=dict(model="m", protocol="qwen/image_generation/pair_rank", method="generate"),
    )


def _point(s):
    if s is None:
        return Judgment(None, "image_generation", "point_score", "generate", Status.UNPARSED, reason="no marker")
    return Judgment(
        None,
        "image_generation",
        "point_score",
        "generate",
        Status.OK,
        score=s,
        score_norm=s,
        provenance=dict(model="m", protocol="qwen/image_generation/point_score", method="generate"),
    )


def _row(n=4, pid="p1", task="image_generation", gts=None):
    cands = [Candidate(f"c{k}", f"c{k}.png", f"c{k}", gts[k] if gts else None) for k in range(n)]
    return PoolRow(pid, task, "two red circles", cands)


def test_pair_ranking_and_point_sifting():
    judge = Script(
        pairs={("c0", "c1"): "first", ("c2", "c3"): "second", ("c0", "c2"): "first"},
        points={"c0": 0.9, "c1": 0.2, "c2": 0.1, "c3": 0.6},
    )
    [res] = curate_batch([_row(gts=[1.0, 0.0, 0.0, 0.5])], judge, SelectConfig(), swap=False)
    assert res.status == "kept"
    [p] = res.preferences
    # winners c0 (0.9), c3 (0.6); losers c1 (0.2), c2 (0.1): chosen = best winner, rejected = worst loser
    assert (p["chosen_id"], p["rejected_id"]) == ("c0", "c2")
    assert p["margin"] == pytest.approx(0.8)
    assert p["p_chosen_better"] == 1.0  # the confirmation pair said "first"
    assert (p["chosen_gt"], p["rejected_gt"]) == (1.0, 0.0)
    prov = json.loads(p["provenance"])
    assert prov["selection"]["strategy"] == "pair_point" and prov["confirm"]["verdict"] == "first"
    assert judge.calls[-1][0] == ["p1:confirm:c0~c2"] and len(judge.calls) == 2  # no re-judging was needed


def test_scores_are_numbers_not_strings():
    # "10" > "9" as numbers; the original compared strings and picked "9"
    judge = Script(
        pairs={("c0", "c1"): "first", ("c2", "c3"): "first", ("c0", "c2"): "first"},
        points={"c0": 1.0, "c1": 0.0, "c2": 0.8889, "c3": 0.5},
    )
    [res] = curate_batch([_row()], judge, SelectConfig(), swap=False)
    assert res.preferences[0]["chosen_id"] == "c0"


def test_margin_must_be_exceeded():
    judge = Script(pairs={("c0", "c1"): "first"}, points={"c0": 0.5, "c1": 0.4})
    [res] = curate_batch([_row(n=2)], judge, SelectConfig(margin=0.1, confirm=False), swap=False)
    assert res.status == "dropped" and "margin" in res.reason
    [res] = curate_batch([_row(n=2)], judge, SelectConfig(margin=0.05, confirm=False), swap=False)
    assert res.status == "kept"


@pytest.mark.parametrize("verdict", ["tie", "unparsed"])
def test_tie_or_unparsed_never_makes_candidate_one_win(verdict):
    judge = Script(pairs={("c0", "c1"): verdict}, points={"c0": 0.9, "c1": 0.1})
    cfg = SelectConfig(on_tie="drop_pair", on_unparsed="drop_pair")
    [res] = curate_batch([_row(n=2)], judge, cfg, swap=False)
    assert res.status == "dropped" and not res.preferences


def test_rejudge_swapped_uses_the_second_order():
    judge = Script(pairs={("c0", "c1"): "tie", ("c1", "c0"): "first"}, points={"c0": 0.2, "c1": 0.8})
    [res] = curate_batch([_row(n=2)], judge, SelectConfig(on_tie="rejudge_swapped", confirm=False), swap=False)
    assert res.status == "kept"
    assert res.preferences[0]["chosen_id"] == "c1"  # c1 won when shown first
    assert judge.calls[1][0] == ["p1:c1~c0"]


def test_rejudge_that_stays_a_tie_drops_the_pair():
    judge = Script(pairs={("c0", "c1"): "tie", ("c1", "c0"): "tie"}, points={"c0": 0.2, "c1": 0.8})
    [res] = curate_batch([_row(n=2)], judge, SelectConfig(on_tie="rejudge_swapped"), swap=False)
    assert res.status == "dropped"


def test_rejudge_is_skipped_when_both_orders_were_judged():
    judge = Script(pairs={("c0", "c1"): "tie"}, points={"c0": 0.2, "c1": 0.8})
    [res] = curate_batch([_row(n=2)], judge, SelectConfig(on_tie="rejudge_swapped"), swap=True)
    assert res.status == "dropped" and len(judge.calls) == 1


@pytest.mark.parametrize("verdict, setting", [("tie", "on_tie"), ("unparsed", "on_unparsed")])
def test_exclude_prompt(verdict, setting):
    judge = Script(pairs={("c0", "c1"): "first", ("c2", "c3"): verdict}, points={f"c{k}": k / 4 for k in range(4)})
    [res] = curate_batch([_row()], judge, SelectConfig(**{setting: "exclude_prompt"}), swap=False)
    assert res.status == "excluded" and "exclude_prompt" in res.reason


def test_unparsed_point_removes_the_candidate():
    judge = Script(
        pairs={("c0", "c1"): "first", ("c2", "c3"): "first", ("c2", "c1"): "first"},
        points={"c0": None, "c1": 0.1, "c2": 0.7, "c3": 0.3},
    )
    [res] = curate_batch([_row()], judge, SelectConfig(), swap=False)
    assert res.preferences[0]["chosen_id"] == "c2"  # c0 won its pair but has no score
    assert any("point c0" in e["reason"] for e in res.errors)


def test_confirmation_below_confidence_drops():
    judge = Script(pairs={("c0", "c1"): "first"}, points={"c0": 0.9, "c1": 0.1})
    judge.pairs[("c0", "c1")] = "first"
    # the head-to-head confirmation disagrees: rejected wins
    calls = {"n": 0}

    def flipping(items, swap):
        calls["n"] += 1
        out = judge(items, swap)
        if calls["n"] == 2:  # the confirmation call
            out = [_pair("second")]
        return out

    [res] = curate_batch([_row(n=2)], flipping, SelectConfig(), swap=False)
    assert res.status == "dropped" and "min_confidence" in res.reason


def test_broken_media_and_bad_rows_become_errors():
    good = _row(pid="ok")
    broken = _row(pid="broken")
    broken.candidates[1].source = MediaError("decode_failed", "truncated png")
    no_cands = PoolRow("empty", "image_generation", "x", [])
    bad_task = PoolRow("bad", "audio", "x", _row().candidates)
    und = PoolRow(
        "und",
        "image_understanding",
        "q?",
        [Candidate("a", "A", "A"), Candidate("b", "B", "B")],
        context_ref="ctx.png",
        context=MediaError("not_found", "no such file: ctx.png"),
    )
    pairs = {(f"c{a}", f"c{b}"): "first" for a in range(4) for b in range(4) if a != b}
    judge = Script(pairs=pairs, points={f"c{k}": 1 - k / 4 for k in range(4)})
    out = curate_batch([good, broken, no_cands, bad_task, und], judge, SelectConfig(), swap=False)
    by_id = {r.prompt_id: r for r in out}
    assert [r.prompt_id for r in out] == ["ok", "broken", "empty", "bad", "und"]
    assert by_id["ok"].status == "kept"
    # the broken candidate is left out, the other three are re-paired and judged
    assert by_id["broken"].errors[0]["candidate_id"] == "c1" and "decode_failed" in by_id["broken"].errors[0]["reason"]
    assert by_id["broken"].status in ("kept", "dropped")
    assert all("c1" not in i for c in judge.calls for i in c[0] if i.startswith("broken:"))
    assert by_id["empty"].status == "failed" and "at least 2" in by_id["empty"].reason
    assert by_id["bad"].status == "failed" and "unknown task" in by_id["bad"].reason
    assert by_id["und"].status == "failed" and "not_found" in by_id["und"].reason


def test_judge_calls_are_batched_across_prompts():
    rows = [_row(pid=f"p{k}") for k in range(5)]
    pairs = {(f"c{a}", f"c{b}"): "first" for a in range(4) for b in range(4) if a != b}
    judge = Script(pairs=pairs, points={f"c{k}": 1 - k / 4 for k in range(4)})
    curate_batch(rows, judge, SelectConfig(), swap=False)
    assert len(judge.calls) == 2  # phase 1 for all prompts, then one confirmation call
    assert len(judge.calls[0][0]) == 5 * (2 + 4)


def test_position_bias_statistics():
    judge = Script(pairs={("c0", "c1"): "first", ("c2", "c3"): "first"}, points={f"c{k}": 1 - k / 4 for k in range(4)})
    [res] = curate_batch([_row()], judge, SelectConfig(confirm=False), swap=False)
    assert res.stats["decisive_shown"] == 2 and res.stats["first_shown_wins"] == 2


def test_plan_pairs():
    assert plan_pairs(5, "pair_point", 0, "p", 0) == [(0, 1), (2, 3)]
    a = plan_pairs(6, "bradley_terry", 5, "p", 0)
    assert a == plan_pairs(6, "bradley_terry", 5, "p", 0)  # seeded by prompt and seed
    assert a != plan_pairs(6, "bradley_terry", 5, "q", 0)
    assert len({tuple(sorted(p)) for p in a}) == 5
    assert len(plan_pairs(3, "bradley_terry", 10, "p", 0)) == 3  # at most all pairs


def test_bradley_terry_recovers_an_order():
    rng = np.random.default_rng(0)
    true = np.array([2.0, 1.0, 0.0, -1.0, -2.0])
    outcomes = []
    for _ in range(400):
        a, b = rng.choice(5, 2, replace=False)
        p = 1 / (1 + math.exp(-(true[a] - true[b])))
        outcomes.append((int(a), int(b), float(rng.random() < p)))
    s = bradley_terry(5, outcomes)
    assert list(np.argsort(-s)) == [0, 1, 2, 3, 4]
    assert abs(s.mean()) < 1e-9
    # regularisation keeps a perfectly separated pair finite
    s2 = bradley_terry(2, [(0, 1, 1.0)] * 10)
    assert np.all(np.isfinite(s2)) and s2[0] > s2[1]


def test_bradley_terry_selection():
    order = ["c0", "c1", "c2", "c3", "c4", "c5"]  # c0 best
    pairs = {(a, b): "first" if order.index(a) < order.index(b) else "second" for a in order for b in order if a != b}
    judge = Script(pairs=pairs)
    cfg = SelectConfig(strategy="bradley_terry", pairings=15, min_confidence=0.6)
    [res] = curate_batch([_row(n=6)], judge, cfg, swap=False)
    assert res.status == "kept"
    [p] = res.preferences
    assert (p["chosen_id"], p["rejected_id"]) == ("c0", "c5")
    assert p["p_chosen_better"] > 0.6 and p["strategy"] == "bradley_terry"
    assert len(judge.calls) == 1  # no point scores, no confirmation
    strict = SelectConfig(strategy="bradley_terry", pairings=15, min_confidence=0.999999)
    [res] = curate_batch([_row(n=6)], Script(pairs=pairs), strict, swap=False)
    assert res.status == "dropped" and "min_confidence" in res.reason


def test_pointwise_selection():
    judge = Script(points={"c0": 0.4, "c1": 0.9, "c2": None, "c3": 0.1})
    [res] = curate_batch([_row(gts=[0.5, 1.0, 0.0, 0.2])], judge, SelectConfig(strategy="pointwise"), swap=True)
    assert res.status == "kept"
    [p] = res.preferences
    # best-scored against worst-scored; the unparsed c2 is out, with its reason
    assert (p["chosen_id"], p["rejected_id"]) == ("c1", "c3") and p["margin"] == pytest.approx(0.8)
    assert p["strategy"] == "pointwise" and (p["chosen_gt"], p["rejected_gt"]) == (1.0, 0.2)
    assert [e["candidate_id"] for e in res.errors] == ["c2"]
    assert len(judge.calls) == 1 and all(":c" in i for i in judge.calls[0][0])  # points only: no pair, no confirm
    assert plan_pairs(4, "pointwise", 6, "p", 0) == []
    # all scores equal: no margin, dropped (never "the first candidate wins")
    [res] = curate_batch(
        [_row()],
        Script(points=dict.fromkeys(["c0", "c1", "c2", "c3"], 0.5)),
        SelectConfig(strategy="pointwise"),
        swap=True,
    )
    assert res.status == "dropped" and "margin" in res.reason
    [res] = curate_batch([_row(n=2)], Script(points={"c0": 0.5}), SelectConfig(strategy="pointwise"), swap=True)
    assert res.status == "dropped" and "only 1" in res.reason


def test_a_generation_failure_is_the_recorded_reason():
    row = _row()
    row.error = "RuntimeError: CUDA out of memory"
    [res] = curate_batch([row], Script(), SelectConfig(), swap=False)
    assert res.status == "failed" and "out of memory" in res.reason
    assert res.errors == [
        dict(
            unit_id="p1",
            candidate_id=None,
            task="image_generation",
            stage="generate",
            status="error",
            reason="RuntimeError: CUDA out of memory",
        )
    ]
