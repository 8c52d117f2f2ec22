"""GenAI-Bench (HF dataset TIGER-Lab/GenAI-Bench; scorer TIGER-AI-Lab/GenAI-Bench ``inference.py``
``parse_response`` and ``show_results.py``).

Layout: ``{config}/{split}-00000-of-00001.parquet`` for the configs ``image_generation`` (prompt,
left_image, right_image), ``image_edition`` (source_prompt, target_prompt, instruct_prompt,
source_image, left_output_image, right_output_image) and ``video_generation`` (prompt, left_video,
right_video as URLs, resolved here by their file name in ``media_root``), splits ``test_v1`` (the
leaderboard's) and ``test``; images as HF Image structs {bytes, path}; ``vote_type`` leftvote,
rightvote, tievote or bothbad_vote. A is the left candidate, B the right one.

Metrics:
- ``<config>/official_4way_accuracy`` (test_v1): the official exact match over all rows. The judge's
  verdict is written as the official vote string (``[[A>B]]``, ``[[B>A]]``; a tie as ``[[A=B]]``,
  which the official scorer counts correct for a tievote and for a bothbad_vote alike); a failed or
  unparsed judgment has no vote and counts wrong, as an unparsable response does officially.
- ``leaderboard_average``: the mean of the configs' 4-way accuracies, each rounded to two decimals
  in percent first, as ``show_results.py`` does (the value is that mean over 100).
- ``<config>/accuracy_without_ties`` (test): the convention of UnifiedReward's own evaluation: rows
  voted left or right; a tie or failed judgment counts wrong.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

from ..io import storage
from .core import BenchmarkError, Counts, LoadError, Metric, Prediction, Unit, finish

NAME = "genai-bench"
CONFIGS = ("image_generation", "image_edition", "video_generation")
SPLITS = ("test_v1", "test")
VOTES = ("leftvote", "rightvote", "tievote", "bothbad_vote")
TASK = {
    "image_generation": "image_generation",
    "image_edition": "image_editing",
    "video_generation": "video_generation",
}
VOTE_STRING = {"first": "[[A>B]]", "second": "[[B>A]]", "tie": "[[A=B]]"}
_OFFICIAL_VOTE = re.compile(r"\[\[.*\]\]")


def files(data: str, configs: list[str] | None = None, splits: list[str] | None = None) -> list[tuple[str, str, str]]:
    """(config, split, uri) of the Parquet files present under ``data``."""
    out = []
    for config in configs or CONFIGS:
        if config not in CONFIGS:
            raise BenchmarkError(f"unknown GenAI-Bench config {config!r}; known: {list(CONFIGS)}")
        for split in splits or SPLITS:
            uri = storage.join(data, config, f"{split}-00000-of-00001.parquet")
            if storage.exists(uri):
                out.append((config, split, uri))
    if not out:
        raise BenchmarkError(
            f"{data}: no GenAI-Bench files (looked for {{config}}/{{split}}-00000-of-00001.parquet with configs "
            f"{list(configs or CONFIGS)} and splits {list(splits or SPLITS)}); pass the folder of a local copy of "
            "the HF dataset TIGER-Lab/GenAI-Bench"
        )
    return out


def _image(value: Any, base: str, what: str) -> Any:
    """An HF Image struct {bytes, path} as bytes, or its path resolved against the config folder."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        if value.get("path"):
            return storage.join(base, value["path"]) if not os.path.isabs(value["path"]) else value["path"]
    raise ValueError(f"{what} has neither bytes nor a path")


def _video(url: Any, media_root: str | None) -> str:
    if not isinstance(url, str) or not url:
        raise ValueError("the video URL is empty")
    if media_root is None:
        raise ValueError(
            "video_generation videos are URLs: download them and pass media_root (the folder that "
            "holds them by file name)"
        )
    return storage.join(media_root, url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])


def load(data: str, options: dict[str, Any]) -> Iterator[Unit | LoadError]:
    import pyarrow.parquet as pq

    media_root = options.get("media_root")
    for config, split, uri in files(data, options.get("configs"), options.get("splits")):
        fs, path = storage.resolve(uri)
        base = storage.join(data, config)
        idx = 0
        with fs.open_input_file(path) as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=32):
                for row in batch.to_pylist():
                    yield _unit(config, split, idx, row, base, media_root)
                    idx += 1
                    if options.get("limit") and idx >= options["limit"]:
                        break
                if options.get("limit") and idx >= options["limit"]:
                    break


def _unit(config: str, split: str, idx: int, row: dict[str, Any], base: str, media_root: str | None):
    key, group = f"{config}/{split}/{idx}", f"{config}/{split}"
    vote = row.get("vote_type")
    extra = dict(
        config=config,
        split=split,
        idx=idx,
        prompt=row.get("prompt"),
        **(
            {k: row.get(k) for k in ("source_prompt", "target_prompt", "instruct_prompt")}
            if config == "image_edition"
            else {}
        ),
    )
    if vote not in VOTES:
        return LoadError(key, group, f"unknown vote_type {vote!r} (expected one of {list(VOTES)})", vote, extra)
    try:
        if config == "image_generation":
            cands = [
                _image(row.get("left_image"), base, "left_image"),
                _image(row.get("right_image"), base, "right_image"),
            ]
            prompt, context = row.get("prompt"), None
        elif config == "image_edition":
            cands = [
                _image(row.get("left_output_image"), base, "left_output_image"),
                _image(row.get("right_output_image"), base, "right_output_image"),
            ]
            prompt, context = row.get("instruct_prompt"), _image(row.get("source_image"), base, "source_image")
        else:
            cands = [_video(row.get("left_video"), media_root), _video(row.get("right_video"), media_root)]
            prompt, context = row.get("prompt"), None
    except ValueError as e:
        return LoadError(key, group, str(e), vote, extra)
    if not isinstance(prompt, str) or not prompt.strip():
        return LoadError(key, group, "empty prompt", vote, extra)
    return Unit(key, group, TASK[config], "pair_rank", prompt, cands, context, vote, extra)


def official_vote(p: Prediction) -> str | None:
    """The official vote string for a prediction (None: no vote, counted wrong); a prediction read
    from an upstream file keeps the vote it had."""
    if "official_vote" in p.extra:
        return p.extra["official_vote"]
    return VOTE_STRING.get(p.verdict) if p.ok else None


def official_correct(vote: str | None, human: str) -> bool:
    """``parse_response``'s rule: the first [[...]] match (greedy to the last ]] on its line) must be
    exactly one of the strings its vote accepts."""
    if vote is None:
        return False
    m = _OFFICIAL_VOTE.search(vote)
    if m is None:
        return False
    v = m.group()
    return {
        "leftvote": v in ("[[A>>B]]", "[[A>B]]"),
        "rightvote": v in ("[[B>>A]]", "[[B>A]]"),
        "tievote": v in ("[[A=B]]", "[[A=B=Good]]"),
        "bothbad_vote": v in ("[[A=B]]", "[[A=B=Bad]]"),
    }.get(human, False)


def counts(predictions: list[Prediction]) -> Counts:
    out: Counts = {}
    for p in predictions:
        config, split = p.group.split("/")
        if split == "test_v1":
            n, d = out.get(f"{config}/official_4way_accuracy", (0, 0))
            out[f"{config}/official_4way_accuracy"] = (n + official_correct(official_vote(p), p.label), d + 1)
        elif split == "test" and p.label in ("leftvote", "rightvote"):
            want = "first" if p.label == "leftvote" else "second"
            n, d = out.get(f"{config}/accuracy_without_ties", (0, 0))
            out[f"{config}/accuracy_without_ties"] = (n + (p.ok and p.verdict == want), d + 1)
    return out


def _leaderboard(c: Counts) -> float | None:
    per = [round(n / d * 100, 2) for k, (n, d) in c.items() if k.endswith("official_4way_accuracy") and d]
    return round(sum(per) / len(per), 2) / 100 if per else None


def metrics(predictions: list[Prediction]) -> dict[str, Metric]:
    c = counts(predictions)
    derived = {"leaderboard_average": _leaderboard} if any(k.endswith("official_4way_accuracy") for k in c) else {}
    out = finish(
        c,
        derived,
        notes={
            "leaderboard_average": "mean of the configs' rounded percentages (show_results.py); "
            "num/den pool the configs"
        },
    )
    if "leaderboard_average" in out:  # its counts are the test_v1 ones only
        v1 = [v for k, v in c.items() if k.endswith("official_4way_accuracy")]
        out["leaderboard_average"].num = sum(n for n, _ in v1)
        out["leaderboard_average"].den = sum(d for _, d in v1)
    return out


# ------------------------------------------------------------------------------------ upstream format
def write_upstream(predictions: list[Prediction], folder: str, model: str = "unireward") -> list[str]:
    """``results/<config>/<model>/pairwise.json`` for test_v1 (what show_results.py reads): one record
    per row in row order, with the vote as the response."""
    written = []
    for config in CONFIGS:
        rows = sorted((p for p in predictions if p.group == f"{config}/test_v1"), key=lambda p: p.extra.get("idx", 0))
        if not rows:
            continue
        records = []
        for p in rows:
            vote = official_vote(p)
            prompts = (
                {k: p.extra.get(k) for k in ("source_prompt", "target_prompt", "instruct_prompt")}
                if config == "image_edition"
                else {"prompt": p.extra.get("prompt")}
            )
            records.append(
                dict(
                    idx=p.extra.get("idx"),
                    **prompts,
                    response=vote or (p.reason or ""),
                    model_vote=vote,
                    human_vote=p.label,
                    correct=official_correct(vote, p.label),
                )
            )
        uri = storage.join(folder, "results", config, model, "pairwise.json")
        storage.write_bytes(uri, json.dumps(records, indent=1).encode())
        written.append(uri)
    return written


def read_upstream(path: str, data: str) -> list[Prediction]:
    """Predictions from ``pairwise.json`` files (a file, or a results folder with ``<config>/<model>/``
    in it): the vote re-read from ``response`` with the official rule."""
    uris = (
        [path]
        if path.endswith(".json")
        else [storage.join(path, c, m, "pairwise.json") for c in CONFIGS for m in _models(path, c)]
    )
    out = []
    for uri in uris:
        config = next((c for c in CONFIGS if f"/{c}/" in uri.replace("\\", "/")), None)
        if config is None:
            raise BenchmarkError(f"{uri}: cannot tell the config (expected .../<config>/<model>/pairwise.json)")
        for r in json.loads(storage.read_bytes(uri)):
            m = _OFFICIAL_VOTE.search(r.get("response") or "")
            vote = m.group() if m else None
            verdict = {
                "[[A>B]]": "first",
                "[[A>>B]]": "first",
                "[[B>A]]": "second",
                "[[B>>A]]": "second",
                "[[A=B]]": "tie",
                "[[A=B=Good]]": "tie",
                "[[A=B=Bad]]": "tie",
            }.get(vote)
            out.append(
                Prediction(
                    key=f"{config}/test_v1/{r['idx']}",
                    group=f"{config}/test_v1",
                    task=TASK[config],
                    mode="pair_rank",
                    status="ok" if verdict else "unparsed",
                    reason=None if verdict else "no official vote in the response",
                    verdict=verdict,
                    label=r.get("human_vote"),
                    extra=dict(config=config, split="test_v1", idx=r["idx"], official_vote=vote),
                )
            )
    return out


def _models(path: str, config: str) -> list[str]:
    folder = storage.join(path, config)
    if storage.is_remote(folder):
        raise BenchmarkError("give the pairwise.json file itself for s3:// predictions")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []
