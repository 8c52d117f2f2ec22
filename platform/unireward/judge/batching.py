"""Token-budget batching: sort by length, then fill each batch while the padded size
(rows x longest row, plus tokens each row will generate) stays within the budget."""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(
    lengths: Sequence[int], token_budget: int, max_batch_size: int, extra_per_row: int = 0
) -> list[list[int]]:
    """Groups indices into batches. Rows are taken longest first, so the first batch shows the
    peak memory early; a row longer than the budget still gets a batch of its own."""
    if token_budget <= 0 or max_batch_size <= 0:
        raise ValueError("token_budget and max_batch_size must be positive")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        width = max(longest, lengths[i]) + extra_per_row
        if current and (len(current) >= max_batch_size or (len(current) + 1) * width > token_budget):
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, lengths[i])
    if current:
        batches.append(current)
    return batches
