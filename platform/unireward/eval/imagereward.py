"""The ImageReward test set (THUDM/ImageReward: ``data/test.json``, ``test.py`` ``acc()``).

Layout: ``test.json`` (a list of {id, prompt, generations: image paths, ranking: one rank per
generation, lower is better, ties common}) with the images under ``images`` (the ``img_prefix``,
default ``test_images`` beside test.json).

Units: every image scored once with the point protocol (its normalised score is the reward).

Metric ``pairwise_accuracy``, as ``acc()``: over every pair of generations of a prompt whose human
ranks differ, the reward must order them the same way; human ties are skipped; equal rewards count
wrong, and so does a pair with an image the judge could not score.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..io import schema, storage
from .core import BenchmarkError, Counts, LoadError, Metric, Prediction, Unit, finish

NAME = "imagereward"


def test_json(data: str) -> str:
    for rel in ("", "test.json", "data/test.json"):
        uri = data if rel == "" and data.endswith(".json") else storage.join(data, rel) if rel else None
        if uri and storage.exists(uri):
            return uri
    raise BenchmarkError(f"{data}: no test.json or data/test.json (the ImageReward repository's test set)")


def load(data: str, options: dict[str, Any]) -> Iterator[Unit | LoadError]:
    uri = test_json(data)
    images = options.get("images") or storage.join(schema.parent(uri), "test_images")
    try:
        items = json.loads(storage.read_bytes(uri))
    except ValueError as e:
        raise BenchmarkError(f"{uri}: not JSON: {e}") from None
    if not isinstance(items, list):
        raise BenchmarkError(f"{uri}: expected a list of {{id, prompt, generations, ranking}}")
    for n, item in enumerate(items[: options.get("limit") or None]):
        yield from _units(item, n, images)


def _units(item: Any, n: int, images: str) -> Iterator[Unit | LoadError]:
    if not isinstance(item, dict):
        yield LoadError(f"{n}:*", "prompts", "an entry is not a JSON object", extra=dict(index=n))
        return
    item_id = str(item.get("id", n))
    gens, ranking, prompt = item.get("generations"), item.get("ranking"), item.get("prompt")
    base = dict(index=n, id=item_id, prompt=prompt, ranking=ranking)
    if not isinstance(gens, list) or not isinstance(ranking, list) or len(gens) != len(ranking) or len(gens) < 2:
        yield LoadError(
            f"{item_id}:*",
            "prompts",
            "generations and ranking must be lists of the same length (2 or more)",
            extra=dict(base, size=len(gens or [])),
        )
        return
    if not isinstance(prompt, str) or not prompt.strip():
        yield LoadError(f"{item_id}:*", "prompts", "empty prompt", extra=dict(base, size=len(gens)))
        return
    for k, g in enumerate(gens):
        yield Unit(
            f"{item_id}:{k}",
            "prompts",
            "image_generation",
            "point_score",
            prompt,
            [storage.join(images, g)],
            label=ranking[k],
            extra=dict(base, k=k, size=len(gens)),
        )


def rewards(predictions: list[Prediction]) -> dict[str, dict[str, Any]]:
    """Per prompt (by its index in test.json): its ranking and each generation's reward (None when
    it could not be scored)."""
    out: dict[str, dict[str, Any]] = {}
    for p in predictions:
        e = p.extra
        entry = out.setdefault(
            str(e.get("index")),
            dict(id=e.get("id"), prompt=e.get("prompt"), ranking=e.get("ranking"), rewards=[None] * e.get("size", 0)),
        )
        if "k" in e:
            entry["rewards"][e["k"]] = p.score if p.ok else None
        elif "rewards" in e:  # read from an upstream file
            entry["rewards"] = list(e["rewards"])
    return out


def counts(predictions: list[Prediction]) -> Counts:
    right = total = 0
    for entry in rewards(predictions).values():
        ranks, rw = entry["ranking"] or [], entry["rewards"]
        for i in range(len(ranks)):
            for j in range(i + 1, len(ranks)):
                if ranks[i] == ranks[j]:
                    continue  # a human tie is skipped
                total += 1
                if i >= len(rw) or j >= len(rw) or rw[i] is None or rw[j] is None:
                    continue  # could not be scored: wrong
                right += (rw[i] < rw[j]) if ranks[i] > ranks[j] else (rw[i] > rw[j])
    return {"pairwise_accuracy": (right, total)}


def metrics(predictions: list[Prediction]) -> dict[str, Metric]:
    return finish(counts(predictions))


def item_key(key: str) -> str:
    """The prompt (rank list) a unit belongs to: what an upstream predictions file has one entry for."""
    return key.rsplit(":", 1)[0] + ":*"


def cluster(p: Prediction) -> str:
    return str(p.extra.get("index"))  # the bootstrap resamples prompts (rank lists), not images


# ------------------------------------------------------------------------------------ upstream format
def write_upstream(predictions: list[Prediction], folder: str, model: str = "unireward") -> list[str]:
    """``test_<model>.json`` as test.py writes it: in test.json order, {id, prompt, ranking (1 = the
    highest reward), rewards}; a generation the judge could not score has reward null (test.py's
    acc() cannot compare it: fill it or drop the prompt before using that script)."""
    out = []
    for _, entry in sorted(rewards(predictions).items(), key=lambda kv: int(kv[0])):
        rw = entry["rewards"]
        order = sorted(range(len(rw)), key=lambda k: -(rw[k] if rw[k] is not None else float("-inf")))
        rank = [0] * len(rw)
        for r, k in enumerate(order, 1):
            rank[k] = r
        out.append(dict(id=entry["id"], prompt=entry["prompt"], ranking=rank, rewards=rw))
    uri = storage.join(folder, f"test_{model}.json")
    storage.write_bytes(uri, json.dumps(out, indent=1).encode())
    return [uri]


def read_upstream(path: str, data: str) -> list[Prediction]:
    """Predictions from a ``test_<model>.json``, matched to test.json by position as acc() does."""
    preds = json.loads(storage.read_bytes(path))
    truth = json.loads(storage.read_bytes(test_json(data)))
    if len(preds) != len(truth):
        raise BenchmarkError(f"{path} has {len(preds)} entries, test.json {len(truth)}: acc() matches them by position")
    out = []
    for n, (p, t) in enumerate(zip(preds, truth)):
        rw = p.get("rewards") or []
        out.append(
            Prediction(
                key=f"{t.get('id')}:*",
                group="prompts",
                task="image_generation",
                mode="point_score",
                status="ok",
                label=t.get("ranking"),
                extra=dict(
                    index=n, id=t.get("id"), prompt=t.get("prompt"), ranking=t.get("ranking"), size=len(rw), rewards=rw
                ),
            )
        )
    return out
