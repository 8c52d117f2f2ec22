"""Records (rows of the ``unireward.io.schema`` tables) to and from the judge's types: item rows to
JudgeItems, judgments to judgment rows, a row's unit id, and a row's media references resolved and
decoded. Pure: the Ray drivers, the training data plan and the evaluation all use these.

A row's media references are its candidates (generation tasks: media references; understanding
tasks: answer texts, never media) and its ``context`` (understanding tasks). Pool rows hold
candidates as structs with ``id`` and ``media``; item rows as plain strings."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..io import media as media_io
from ..io import schema
from .types import JudgeItem, Judgment, Task

CONTEXT_KEY = "__context__"  # the context media's key among a row's decoded media
BLOB = "blob:"  # a media reference to the row's own bytes: "blob:<k>" is row["blobs"][k]


def _generation(task: Any) -> bool | None:
    """Whether ``task``'s candidates are visuals; None for an unknown task."""
    try:
        return Task(task).is_generation
    except ValueError:
        return None


def resolve_row(row: dict[str, Any], base: str | None) -> dict[str, Any]:
    """The row with its relative media references made absolute against ``base`` (the folder of
    the Parquet file that holds it). Other fields are kept; the input row is not changed."""
    out = dict(row)
    if base is None:
        return out
    cands = out.get("candidates")
    if _generation(out.get("task")) and isinstance(cands, (list, tuple)):
        out["candidates"] = [_resolve_candidate(c, base) for c in cands]
    if isinstance(out.get("context"), str) and not out["context"].startswith(BLOB):
        out["context"] = schema.resolve_media(out["context"], base)
    return out


def _resolve_candidate(c: Any, base: str) -> Any:
    if isinstance(c, str):
        return c if c.startswith(BLOB) else schema.resolve_media(c, base)
    if isinstance(c, dict) and isinstance(c.get("media"), str):
        return dict(c, media=schema.resolve_media(c["media"], base))
    return c


def decode_row_media(row: dict[str, Any], limits: media_io.MediaLimits) -> dict[str, Any]:
    """Every media file judging ``row`` needs, decoded: the candidates when they are visuals (keyed
    by the candidate's id in a pool row, by its index in an item row) and the context when the task
    has one (``CONTEXT_KEY``). A reference ``blob:<k>`` is the row's own bytes ``blobs[k]``. A file
    that cannot be used is its MediaError, never an exception."""
    try:
        task = Task(row.get("task"))
    except ValueError:
        return {}
    blobs = row.get("blobs") or []
    decoded: dict[str, Any] = {}
    if task.is_generation:
        for k, c in enumerate(row.get("candidates") or []):
            key, ref = (c.get("id"), c.get("media")) if isinstance(c, dict) else (str(k), c)
            if isinstance(ref, str) and ref:
                decoded[key] = _load(ref, task.media_kind, limits, blobs)
    if task.has_context and row.get("context"):
        decoded[CONTEXT_KEY] = _load(row["context"], task.media_kind, limits, blobs)
    return decoded


def _load(ref: str, kind: str, limits: media_io.MediaLimits, blobs: list[bytes] | None = None) -> Any:
    try:
        if ref.startswith(BLOB):
            k = int(ref[len(BLOB) :])
            if not blobs or not 0 <= k < len(blobs) or blobs[k] is None:
                raise media_io.MediaError("not_found", f"{ref}: the row has no such bytes")
            return media_io.load_media(blobs[k], kind, limits)
        return media_io.load_media(ref, kind, limits)
    except media_io.MediaError as e:
        return e


def item_from_record(row: dict[str, Any], base: str | None = None, decoded: dict[str, Any] | None = None) -> JudgeItem:
    """A JudgeItem from an item row; relative media references resolve against ``base``, and media
    already decoded (``decode_row_media``) replace their references. Never raises: a malformed row
    yields an item whose ``problem()`` says what is wrong."""
    row = resolve_row(row, base)
    cands = row.get("candidates")
    context = row.get("context")
    if decoded:
        if isinstance(cands, (list, tuple)):
            cands = [decoded.get(str(k), c) for k, c in enumerate(cands)]
        context = decoded.get(CONTEXT_KEY, context)
    return JudgeItem(
        task=row.get("task"),
        prompt=row.get("prompt"),
        candidates=cands,
        context=context,
        mode=row.get("mode"),
        id=row.get("item_id"),
    )


def read_items(uri: str) -> tuple[list[JudgeItem], list[dict[str, Any]]]:
    """The JudgeItems of an item Parquet file, and its raw rows (for labels and ground truth)."""
    rows = schema.read_parquet(uri)
    base = schema.parent(uri)
    return [item_from_record(r, base) for r in rows], rows


def unit_id(row: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    """An item row's unit id: its ``item_id``, or a hash of its content (``skip``: transport columns
    that are not content)."""
    if row.get("item_id"):
        return str(row["item_id"])
    payload = json.dumps({k: v for k, v in row.items() if k not in skip}, sort_keys=True, default=str)
    return "row-" + hashlib.sha256(payload.encode()).hexdigest()[:16]


def raw_texts(j: Judgment) -> str | None:
    """What the model wrote: its text, or (swap) the JSON list of both orders' texts."""
    if j.raw_text is not None:
        return j.raw_text
    if j.orders and j.orders[0].raw_text is not None:
        return json.dumps([o.raw_text for o in j.orders])
    return None


def judgment_record(item_row: dict[str, Any], unit: str, j: Judgment) -> dict[str, Any]:
    """A judgment as a row of the judgment table (``schema.JUDGMENT_SCHEMA``), with the item's
    label and ground truth passed through."""
    probs = j.probs or {}
    return dict(
        item_id=unit,
        task=j.task,
        mode=j.mode,
        method=j.method,
        status=j.status.value,
        reason=j.reason,
        verdict=j.verdict,
        p_first=probs.get("first"),
        p_second=probs.get("second"),
        p_tie=probs.get("tie"),
        score=j.score,
        score_norm=j.score_norm,
        dims=json.dumps(j.dims) if j.dims else None,
        scores=j.scores,
        margin=j.margin,
        agreement=j.agreement,
        mass=j.mass,
        raw_text=raw_texts(j),
        label=item_row.get("label"),
        gt_scores=item_row.get("gt_scores"),
        provenance=json.dumps(j.provenance, sort_keys=True, default=str),
    )
