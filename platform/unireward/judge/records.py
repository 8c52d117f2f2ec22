"""Item records (the ``item`` schema of ``unireward.io.schema``) to and from JudgeItems."""

from __future__ import annotations

from typing import Any

from ..io import schema
from .types import JudgeItem, Task


def item_from_record(row: dict[str, Any], base: str | None = None) -> JudgeItem:
    """A JudgeItem from an item row; relative media references resolve against ``base``. Never
    raises: a malformed row yields an item whose ``problem()`` says what is wrong."""
    task = row.get("task")
    cands = row.get("candidates")
    try:
        generation = Task(task).is_generation
    except ValueError:
        generation = False
    if isinstance(cands, (list, tuple)) and generation:
        cands = [schema.resolve_media(c, base) if isinstance(c, str) else c for c in cands]
    context = row.get("context")
    if isinstance(context, str):
        context = schema.resolve_media(context, base)
    return JudgeItem(task=task, prompt=row.get("prompt"), candidates=cands, context=context,
                     mode=row.get("mode"), id=row.get("item_id"))


def read_items(uri: str) -> tuple[list[JudgeItem], list[dict[str, Any]]]:
    """The JudgeItems of an item Parquet file, and its raw rows (for labels and ground truth)."""
    rows = schema.read_parquet(uri)
    base = schema.parent(uri)
    return [item_from_record(r, base) for r in rows], rows
