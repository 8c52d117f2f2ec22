"""VL-RewardBench (HF dataset MMInstruction/VL-RewardBench; scorer vl-rewardbench/VL_RewardBench
``cal.py``).

Layout: ``data/test-00000-of-00001.parquet`` with id, query, response (two answers), human_ranking
([0, 1]: the first answer is preferred; 0 is the better rank), image (an HF Image struct), ...

Groups from the id's source prefix, as ``cal.py`` derives them: the prefix is the id up to its first
``_`` or ``-``; RLAIF, RLHF and hallucination are *hallucination*; mathverse and mmmu are
*reasoning*; wildvision and everything else are *general*.

Metrics (the judge's verdict stands in for the official parser's reading of "Answer N is better"):
- ``overall_accuracy`` (pooled over the answered items), ``macro_accuracy`` (the mean of the three
  groups' accuracies) and ``<group>_accuracy``, as ``cal.py``: an item whose judgment gives no
  answer (unparsed, failed, or a tie, which names no better answer) is left out of the denominator;
- the same with ``_unparsed_as_wrong`` appended: those items counted wrong instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..io import storage
from .core import BenchmarkError, Counts, LoadError, Metric, Prediction, Unit, finish, ratio

NAME = "vl-rewardbench"
GROUPS = ("general", "hallucination", "reasoning")
DATA_FILE = "data/test-00000-of-00001.parquet"


def group_of(item_id: str) -> str:
    """The group ``cal.py`` puts an id in (its dataset from the id's prefix, then the group)."""
    cuts = [i for i in (item_id.find("_"), item_id.find("-")) if i != -1]
    prefix = item_id[: min(cuts)] if cuts else item_id
    if prefix in ("RLAIF", "RLHF", "hallucination"):
        return "hallucination"
    if prefix in ("mathverse", "mmmu"):
        return "reasoning"
    return "general"  # wildvision-battle and vlfeedback


def data_uri(data: str) -> str:
    uri = data if data.endswith(".parquet") else storage.join(data, DATA_FILE)
    if not storage.exists(uri):
        raise BenchmarkError(f"{data}: no {DATA_FILE} (a local copy of the HF dataset MMInstruction/VL-RewardBench)")
    return uri


def load(data: str, options: dict[str, Any]) -> Iterator[Unit | LoadError]:
    import pyarrow.parquet as pq

    uri = data_uri(data)
    fs, path = storage.resolve(uri)
    n = 0
    with fs.open_input_file(path) as f:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=32):
            for row in batch.to_pylist():
                yield _unit(row, n)
                n += 1
                if options.get("limit") and n >= options["limit"]:
                    return


def _unit(row: dict[str, Any], n: int) -> Unit | LoadError:
    item_id = str(row.get("id") or f"row-{n}")
    group = group_of(item_id)
    ranking, responses = row.get("human_ranking"), row.get("response")
    extra = dict(id=item_id, query=row.get("query"), response=responses, ranking=ranking, row=n)
    if not isinstance(responses, list) or len(responses) != 2 or not all(isinstance(r, str) for r in responses):
        return LoadError(item_id, group, "response must hold two answers", None, extra)
    if not isinstance(ranking, list) or sorted(ranking) != [0, 1]:
        return LoadError(item_id, group, f"human_ranking {ranking!r} is not a ranking of two answers", None, extra)
    image = row.get("image")
    if not isinstance(image, dict) or not image.get("bytes"):
        return LoadError(item_id, group, "no image bytes", None, extra)
    label = "first" if ranking.index(0) == 0 else "second"
    return Unit(
        item_id,
        group,
        "image_understanding",
        "pair_rank",
        row.get("query") or "",
        list(responses),
        image["bytes"],
        label,
        extra,
    )


def answered(p: Prediction) -> bool:
    """Whether the official parser would find an answer: a first or second verdict."""
    return p.ok and p.verdict in ("first", "second")


def counts(predictions: list[Prediction]) -> Counts:
    out: Counts = {}
    for g in GROUPS:
        rows = [p for p in predictions if p.group == g]
        if not rows:
            continue
        right = sum(answered(p) and p.verdict == p.label for p in rows)
        out[f"{g}_accuracy"] = (right, sum(answered(p) for p in rows))
        out[f"{g}_accuracy_unparsed_as_wrong"] = (right, len(rows))
    return out


def _macro(c: Counts, suffix: str) -> float | None:
    vals = [ratio(*c[f"{g}_accuracy{suffix}"]) for g in GROUPS if f"{g}_accuracy{suffix}" in c]
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def metrics(predictions: list[Prediction]) -> dict[str, Metric]:
    c = counts(predictions)
    out = finish(c)
    for suffix in ("", "_unparsed_as_wrong"):
        parts = [c[f"{g}_accuracy{suffix}"] for g in GROUPS if f"{g}_accuracy{suffix}" in c]
        n, d = sum(x for x, _ in parts), sum(y for _, y in parts)
        out[f"overall_accuracy{suffix}"] = Metric(ratio(n, d), n, d)
        out[f"macro_accuracy{suffix}"] = Metric(_macro(c, suffix), n, d, note="the mean of the group accuracies")
    return out


# ------------------------------------------------------------------------------------ upstream format
def judgement_text(p: Prediction) -> str:
    """What cal.py's parser reads: "Overall Judgment: Answer N is better" for a first or second
    verdict (Answer 1 is response[0]: random_number 0), nothing it can read otherwise."""
    if answered(p):
        return f"Overall Judgment: Answer {1 if p.verdict == 'first' else 2} is better"
    return p.reason or "no answer"


def write_upstream(predictions: list[Prediction], folder: str, model: str = "unireward") -> list[str]:
    """The JSONL ``cal.py`` reads: id, query, response, ranking, and meta with the judge's text
    (filter_choice), random_number 0 (the answers in their stored order) and flag_status."""
    lines = []
    for p in sorted(predictions, key=lambda p: p.extra.get("row", 0)):
        e = p.extra
        flag = ("agree" if p.verdict == p.label else "reject") if answered(p) else "doesntMatch"
        lines.append(
            json.dumps(
                dict(
                    id=e.get("id", p.key),
                    query=e.get("query"),
                    response=e.get("response"),
                    ranking=e.get("ranking"),
                    meta=dict(filter_choice=judgement_text(p), random_number=0, flag_status=flag, filter_number=1),
                )
            )
        )
    uri = storage.join(folder, f"{model}.jsonl")
    storage.write_bytes(uri, ("\n".join(lines) + "\n").encode())
    return [uri]


_CAL = r"(?:Overall Judgment|Therefore)\s*.*\s*-*\s*Answer\s*(\d+)\s*is\s*(?:the\s*)?(?:slightly\s*)?better"


def read_upstream(path: str, data: str) -> list[Prediction]:
    """Predictions from a cal.py input JSONL, read with cal.py's own pattern (on the text without
    newlines and asterisks, case-insensitive, the last match after the first cue)."""
    import re

    out = []
    for n, line in enumerate(storage.read_bytes(path).decode().splitlines()):
        if not line.strip():
            continue
        r = json.loads(line)
        r = r.get("0", r)
        meta = r.get("meta") or {}
        ranking = r.get("ranking") or r.get("human_ranking")
        item_id = str(r.get("id"))
        label = ("first" if ranking.index(0) == 0 else "second") if isinstance(ranking, list) and 0 in ranking else None
        m = re.search(_CAL, str(meta.get("filter_choice", "")).replace("\n", "").replace("*", ""), re.IGNORECASE)
        verdict = None
        if m and label is not None:
            # cal.py: the displayed number of the rejected answer; any other number agrees
            rejected = ranking.index(1 if meta.get("random_number", 0) == 0 else 0) + 1
            verdict = label if int(m.group(1)) != rejected else ("second" if label == "first" else "first")
        out.append(
            Prediction(
                key=item_id,
                group=group_of(item_id),
                task="image_understanding",
                mode="pair_rank",
                status="ok" if verdict else "unparsed",
                reason=None if verdict else "doesntMatch",
                verdict=verdict,
                label=label,
                extra=dict(id=item_id, query=r.get("query"), response=r.get("response"), ranking=ranking, row=n),
            )
        )
    return out
