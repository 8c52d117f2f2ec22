"""Agreement metrics: rankdata, spearman, pair_metrics, point_metrics, status_counts on hand-made
judgments with hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unireward.judge.metrics import pair_metrics, point_metrics, rankdata, spearman, status_counts
from unireward.judge.types import Judgment, Status


def J(status="ok", verdict=None, *, agreement=None, mass=None, score_norm=None, mode="pair_rank") -> Judgment:
    return Judgment(
        item_id=None,
        task="image_generation",
        mode=mode,
        method="logits",
        status=Status(status),
        verdict=verdict,
        agreement=agreement,
        mass=mass,
        score_norm=score_norm,
    )


# ------------------------------------------------------------------------------------ rankdata
@pytest.mark.parametrize(
    "x, expected",
    [
        ([3, 1, 2], [3, 1, 2]),
        ([10, 20, 20, 5, 20], [2, 4, 4, 1, 4]),  # three-way tie at ranks 3, 4, 5 -> 4
        ([1.5, 1.5, 0.0, 9.0], [2.5, 2.5, 1, 4]),  # two-way tie at ranks 2, 3 -> 2.5
        ([7, 7, 7], [2, 2, 2]),
        ([-1, 5, -1, 5], [1.5, 3.5, 1.5, 3.5]),
        ([42], [1]),
        ([], []),
    ],
)
def test_rankdata_average_ranks(x, expected):
    r = rankdata(x)
    assert isinstance(r, np.ndarray)
    assert r.tolist() == pytest.approx(expected)


def test_rankdata_ranks_sum_like_1_to_n():
    rng = np.random.default_rng(0)
    for _ in range(50):
        x = rng.integers(0, 5, size=int(rng.integers(1, 30)))
        assert rankdata(x).sum() == pytest.approx(len(x) * (len(x) + 1) / 2)


# ------------------------------------------------------------------------------------ spearman
def test_spearman_perfect_monotone():
    assert spearman([1, 2, 3, 4], [1, 4, 9, 100]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [10, 5, 0, -7]) == pytest.approx(-1.0)
    assert spearman([0.1, 0.2], [3, 4]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "x, y",
    [
        ([], []),
        ([1.0], [2.0]),  # fewer than 2 points
        ([1, 1, 1], [1, 2, 3]),  # constant first side
        ([1, 2, 3], [5, 5, 5]),  # constant second side
        ([1, 2, 3], [1, 2]),  # length mismatch
    ],
)
def test_spearman_undefined_is_none(x, y):
    assert spearman(x, y) is None


def test_spearman_matches_hand_computation():
    # no ties: rho = 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 2 / 60
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # with a tie in y: ranks y = [1, 2, 3.5, 5, 3.5]; Pearson of ranks = 8 / sqrt(10 * 9.5)
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))
    assert isinstance(spearman([1, 2, 3], [3, 1, 2]), float)


def test_spearman_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for _ in range(30):
        n = int(rng.integers(3, 25))
        x = rng.integers(0, 6, size=n).astype(float)
        y = rng.normal(size=n).round(1)
        ours = spearman(x, y)
        ref = stats.spearmanr(x, y).statistic
        if ours is None:
            assert np.isnan(ref)
        else:
            assert ours == pytest.approx(ref, abs=1e-12)


# ------------------------------------------------------------------------------------ pair_metrics
def test_pair_metrics_hand_made():
    judgments = [
        J("ok", "first", agreement=True, mass=0.9),  # truth first: correct
        J("ok", "second", agreement=False, mass=0.5),  # truth first: wrong
        J("ok", "tie", mass=0.7),  # truth tie: correct (3-way)
        J("ok", "tie"),  # truth second: a predicted tie is wrong
        J("unparsed"),  # truth first: a failure counts as wrong
        J("invalid_input"),  # truth tie
        J("ok", "first", agreement=False, mass=0.0),  # no label: ignored everywhere
        J("error", "second"),  # truth second: failed, its verdict must not count
        J("ok", "second", agreement=True, mass=0.6),  # truth second: correct
        J("ok", "tie", agreement=False, mass=0.1),  # no label: ignored (not a predicted tie)
    ]
    labels = ["first", "first", "tie", "second", "first", "tie", None, "second", "second", None]
    m = pair_metrics(judgments, labels)
    assert m["n"] == 8
    assert m["n_ok"] == 5
    assert m["acc"] == pytest.approx(3 / 8)
    assert m["acc_without_ties"] == pytest.approx(2 / 6)
    assert m["acc_judged"] == pytest.approx(3 / 5)
    assert m["predicted_ties"] == 2
    assert m["first_wins"] == 1
    assert m["swap_agreement"] == pytest.approx(2 / 3)
    assert m["mean_mass"] == pytest.approx((0.9 + 0.5 + 0.7 + 0.6) / 4)


def test_pair_metrics_all_correct_and_all_failed():
    js = [J("ok", "first"), J("ok", "second"), J("ok", "tie")]
    m = pair_metrics(js, ["first", "second", "tie"])
    assert (m["acc"], m["acc_without_ties"], m["acc_judged"]) == (1.0, 1.0, 1.0)
    assert m["swap_agreement"] is None and m["mean_mass"] is None

    failed = [J("error"), J("invalid_input"), J("unparsed")]
    m = pair_metrics(failed, ["first", "second", "tie"])
    assert m["n"] == 3 and m["n_ok"] == 0
    assert m["acc"] == 0.0
    assert m["acc_without_ties"] == 0.0
    assert m["acc_judged"] is None
    assert m["predicted_ties"] == 0 and m["first_wins"] == 0


def test_pair_metrics_undefined_parts_are_none():
    m = pair_metrics([], [])
    assert m["n"] == 0 and m["n_ok"] == 0
    assert m["acc"] is None and m["acc_without_ties"] is None and m["acc_judged"] is None
    # only ties in the truth: acc_without_ties has nothing to count
    m = pair_metrics([J("ok", "tie"), J("ok", "first")], ["tie", "tie"])
    assert m["acc"] == pytest.approx(0.5)
    assert m["acc_without_ties"] is None
    # no labels at all: everything ignored
    m = pair_metrics([J("ok", "first", agreement=True, mass=0.3)], [None])
    assert m["n"] == 0 and m["first_wins"] == 0 and m["swap_agreement"] is None and m["mean_mass"] is None


# ------------------------------------------------------------------------------------ point_metrics
def test_point_metrics_counts_and_ignores_non_ok():
    js = [
        J("ok", score_norm=0.1, mass=0.5, mode="point_score"),
        J("ok", score_norm=0.5, mass=0.7, mode="point_score"),
        J("ok", score_norm=0.9, mass=0.9, mode="point_score"),
        J("unparsed", score_norm=0.0, mass=0.1, mode="point_score"),  # must not enter the correlation
        J("invalid_input", mode="point_score"),
        J("ok", score_norm=0.3, mode="point_score"),  # truth unknown: ignored
    ]
    truth = [0.2, 0.4, 0.8, 1.0, 0.3, None]
    m = point_metrics(js, truth)
    assert m["n"] == 5
    assert m["n_ok"] == 3
    assert m["spearman"] == pytest.approx(1.0)
    assert m["mean_score_norm"] == pytest.approx(0.5)
    assert m["mean_mass"] == pytest.approx(0.7)


def test_point_metrics_anti_correlated_and_empty():
    js = [J("ok", score_norm=s, mode="point_score") for s in (0.9, 0.5, 0.1)]
    assert point_metrics(js, [0.0, 0.5, 1.0])["spearman"] == pytest.approx(-1.0)
    m = point_metrics([J("error", mode="point_score")], [0.5])
    assert m == dict(n=1, n_ok=0, spearman=None, mean_score_norm=None, mean_mass=None)


# ------------------------------------------------------------------------------------ status_counts
def test_status_counts_has_all_four_statuses():
    assert status_counts([]) == {"ok": 0, "unparsed": 0, "invalid_input": 0, "error": 0}
    js = [J("ok"), J("ok"), J("error"), J("invalid_input"), J("ok")]
    c = status_counts(js)
    assert c == {"ok": 3, "unparsed": 0, "invalid_input": 1, "error": 1}
    assert set(c) == {s.value for s in Status}
    assert sum(c.values()) == len(js)
