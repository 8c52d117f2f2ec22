"""The record schemas (one module for all of them) and Parquet helpers.

- **pool**: one row per prompt with its N candidates (what curation consumes and produces).
- **item**: one row per thing to judge: a pair (two candidates) or a point (one candidate).

Media references are strings: an absolute path, an ``s3://`` URI, a ``data:`` URI, or a path
relative to the folder of the Parquet file that holds the row (so a dataset folder can be moved).
For generation tasks the candidates are media references; for understanding tasks they are answer
texts and ``context`` is the media reference.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from . import storage

CANDIDATE = pa.struct(
    [
        ("id", pa.string()),
        ("text", pa.string()),  # understanding tasks: the answer
        ("media", pa.string()),  # generation tasks: the image or video
        ("gt_score", pa.float64()),  # ground truth in [0, 1] where known (synthetic world)
        ("seed", pa.int64()),  # generator seed where the candidate was sampled
    ]
)

POOL_SCHEMA = pa.schema(
    [
        ("prompt_id", pa.string()),
        ("task", pa.string()),
        ("prompt", pa.string()),
        ("context", pa.string()),
        ("candidates", pa.list_(CANDIDATE)),
        ("meta", pa.string()),  # JSON: free-form description (e.g. the synthetic scene)
    ]
)

ITEM_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("task", pa.string()),
        ("mode", pa.string()),  # pair_rank | point_score | point_multi
        ("prompt", pa.string()),
        ("context", pa.string()),
        ("candidates", pa.list_(pa.string())),  # media refs (generation) or answer texts (understanding)
        ("label", pa.string()),  # pairs: ground-truth verdict first | second | tie, where known
        ("gt_scores", pa.list_(pa.float64())),  # ground truth per candidate in [0, 1], where known
        ("axis", pa.string()),  # pairs: what decides it, where known (synthetic world: alignment | coherence |
        # physics | style | mixed; correctness | hallucination); optional: files without it read as None
        ("rationales", pa.list_(pa.string())),  # reasoning about each candidate, where known (Think-style
        # training targets); optional
    ]
)


def resolve_media(ref: str | None, base: str | None) -> str | None:
    """Makes a relative media reference absolute against ``base`` (the Parquet file's folder)."""
    if ref is None or base is None:
        return ref
    if "://" in ref or ref.startswith("data:") or os.path.isabs(ref):
        return ref
    return storage.join(base, ref)


def write_parquet(rows: Iterable[dict[str, Any]], schema: pa.Schema, uri: str) -> None:
    """Writes rows (dicts) with ``schema`` to one Parquet file, atomically."""
    table = pa.Table.from_pylist(list(rows), schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    storage.write_bytes(uri, buf.getvalue())


def read_parquet(uri: str) -> list[dict[str, Any]]:
    fs, path = storage.resolve(uri)
    return pq.read_table(path, filesystem=fs).to_pylist()


def parent(uri: str) -> str:
    """The folder of a file path or URI (the base for its relative media references)."""
    if storage.is_s3(uri):
        return uri.rsplit("/", 1)[0]
    return os.path.dirname(os.path.abspath(uri))


PREFERENCE_SCHEMA = pa.schema(
    [
        ("prompt_id", pa.string()),
        ("task", pa.string()),
        ("prompt", pa.string()),
        ("context", pa.string()),  # understanding tasks: the image or video (absolute reference)
        ("chosen_id", pa.string()),
        ("rejected_id", pa.string()),
        ("chosen", pa.string()),  # answer text (understanding) or media reference (generation)
        ("rejected", pa.string()),
        ("chosen_score", pa.float64()),  # pair_point: normalised point score; bradley_terry: BT strength
        ("rejected_score", pa.float64()),
        ("margin", pa.float64()),  # chosen_score - rejected_score
        ("p_chosen_better", pa.float64()),  # the judge's P(chosen better than rejected), where known
        ("strategy", pa.string()),
        ("chosen_gt", pa.float64()),  # ground truth of the candidates, where the pool has it
        ("rejected_gt", pa.float64()),
        ("judge", pa.string()),  # the judge's model path
        ("protocol", pa.string()),
        ("method", pa.string()),
        ("provenance", pa.string()),  # JSON: the judge's full provenance, selection settings, seeds
    ]
)

ERROR_SCHEMA = pa.schema(
    [
        ("unit_id", pa.string()),  # the prompt (curate) or item (score) the error belongs to
        ("candidate_id", pa.string()),  # the candidate, when the error is about one
        ("task", pa.string()),
        ("stage", pa.string()),  # input | decode | generate | judge | select
        ("status", pa.string()),  # invalid_input | unparsed | error
        ("reason", pa.string()),
    ]
)

JUDGMENT_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("task", pa.string()),
        ("mode", pa.string()),
        ("method", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("verdict", pa.string()),
        ("p_first", pa.float64()),
        ("p_second", pa.float64()),
        ("p_tie", pa.float64()),
        ("score", pa.float64()),
        ("score_norm", pa.float64()),
        ("dims", pa.string()),  # JSON: multi-dimension scores (pair_score: "<dim>/1", "<dim>/2")
        ("scores", pa.list_(pa.float64())),  # pair_score and reasoning judges: each candidate's score
        ("margin", pa.float64()),  # pair_score: first's score minus second's
        ("agreement", pa.bool_()),
        ("mass", pa.float64()),
        ("raw_text", pa.string()),
        ("label", pa.string()),  # passed through from the item, where known
        ("gt_scores", pa.list_(pa.float64())),
        ("provenance", pa.string()),  # JSON
    ]
)

# kind: eval. A unit of a benchmark as the judge stage reads it (media as references, or as bytes in
# ``blobs`` referenced "blob:<k>"), and the prediction it commits.
EVAL_UNIT_SCHEMA = pa.schema(
    [
        ("key", pa.string()),  # the benchmark's own item key (with the unit's part, e.g. a video)
        ("group", pa.string()),
        ("task", pa.string()),
        ("mode", pa.string()),
        ("prompt", pa.string()),
        ("context", pa.string()),
        ("candidates", pa.list_(pa.string())),
        ("blobs", pa.list_(pa.binary())),
        ("label", pa.string()),  # JSON
        ("extra", pa.string()),  # JSON
        ("load_error", pa.string()),  # the entry could not be used: why (it is committed as not_loaded)
    ]
)

PREDICTION_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("group", pa.string()),
        ("status", pa.string()),
        ("prediction", pa.string()),  # JSON: unireward.eval.Prediction
    ]
)

STAGED_PROMPT_SCHEMA = pa.schema(
    [
        ("prompt_id", pa.string()),
        ("task", pa.string()),
        ("prompt", pa.string()),
        ("context", pa.string()),
        ("status", pa.string()),  # kept | dropped | excluded | failed
        ("reason", pa.string()),
        ("preferences", pa.string()),  # JSON lists (the final tables are typed; shards stay schema-stable)
        ("errors", pa.string()),
        ("judgments", pa.string()),
        ("stats", pa.string()),
    ]
)

PROMPT_STATUS_SCHEMA = pa.schema(
    [
        ("prompt_id", pa.string()),
        ("task", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("stats", pa.string()),  # JSON
    ]
)
