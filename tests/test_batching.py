"""plan_batches: token-budget batching properties over many seeded random length lists."""

from __future__ import annotations

import numpy as np
import pytest

from unireward.judge.batching import plan_batches


def _cases(n_cases: int = 400, seed: int = 20240611):
    """(lengths, token_budget, max_batch_size, extra_per_row) drawn to hit every branch: tiny and
    huge budgets, rows longer than the budget, many ties, batch-size limits of 1."""
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        n = int(rng.integers(0, 60))
        hi = int(rng.choice([4, 50, 500, 5000]))
        lengths = [int(x) for x in rng.integers(1, hi + 1, size=n)]
        budget = int(rng.choice([1, 16, 100, 1000, 10_000, 1 << 30]))
        max_bs = int(rng.choice([1, 2, 3, 8, 32, 1000]))
        extra = int(rng.choice([0, 0, 1, 12, 256]))
        yield lengths, budget, max_bs, extra


CASES = list(_cases())


def _check_plan(lengths, budget, max_bs, extra):
    batches = plan_batches(lengths, budget, max_bs, extra)
    flat = [i for b in batches for i in b]
    # every index exactly once
    assert sorted(flat) == list(range(len(lengths)))
    assert len(flat) == len(set(flat))
    for b in batches:
        assert b, "empty batch"
        assert len(b) <= max_bs
        if len(b) >= 2:
            assert len(b) * (max(lengths[i] for i in b) + extra) <= budget
        # a row that does not fit the budget on its own is alone in its batch
        for i in b:
            if lengths[i] + extra > budget:
                assert b == [i]
    # longest first, over the concatenated order
    seq = [lengths[i] for i in flat]
    assert all(x >= y for x, y in zip(seq, seq[1:]))
    return batches


def test_many_random_plans_satisfy_every_property():
    n_multi = n_oversized = 0
    for lengths, budget, max_bs, extra in CASES:
        batches = _check_plan(lengths, budget, max_bs, extra)
        n_multi += sum(len(b) >= 2 for b in batches)
        n_oversized += sum(lengths[b[0]] + extra > budget for b in batches)
    # the random cases really exercise both multi-row batches and oversized rows
    assert n_multi > 100
    assert n_oversized > 50


def test_planner_is_not_wasteful_when_everything_fits():
    # a huge budget and batch size: one batch holding everything, longest first
    lengths = [3, 9, 1, 9, 4]
    assert plan_batches(lengths, 1 << 30, 1000) == [[1, 3, 4, 0, 2]]


def test_batch_size_limit_splits_in_order():
    lengths = [5] * 7
    assert plan_batches(lengths, 1 << 30, 3) == [[0, 1, 2], [3, 4, 5], [6]]


def test_budget_counts_padding_to_the_longest_row_plus_extra():
    # rows of 10, 10, 10 with extra 2: two rows cost 2 x 12 = 24 <= 25; three cost 36 > 25
    assert plan_batches([10, 10, 10], 25, 32, extra_per_row=2) == [[0, 1], [2]]
    # the first (longest) row sets the width: 2 x (10 + 0) = 20 fits, three rows = 30 do not
    assert plan_batches([1, 10, 2], 20, 32) == [[1, 2], [0]]


def test_row_longer_than_budget_gets_its_own_batch():
    batches = plan_batches([100, 3, 2, 200], token_budget=10, max_batch_size=8)
    assert batches[0] == [3]
    assert batches[1] == [0]
    assert sorted(i for b in batches[2:] for i in b) == [1, 2]


def test_ties_keep_input_order():
    assert plan_batches([2, 2, 2, 2], 1 << 30, 2) == [[0, 1], [2, 3]]


def test_empty_input():
    assert plan_batches([], 100, 4) == []


@pytest.mark.parametrize("budget, max_bs", [(0, 4), (-1, 4), (100, 0), (100, -3), (0, 0)])
def test_non_positive_budget_or_batch_size_is_an_error(budget, max_bs):
    with pytest.raises(ValueError, match="positive"):
        plan_batches([1, 2, 3], budget, max_bs)
    with pytest.raises(ValueError):
        plan_batches([], budget, max_bs)
