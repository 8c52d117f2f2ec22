"""VideoGen-RewardBench (KwaiVGI/VideoAlign: ``calc_accuracy.py``, ``eval_videogen_rewardbench.py``).

Layout: a CSV (``videogen-rewardbench.csv``; another name with the ``csv`` option) with path_A,
path_B (videos relative to the CSV's folder), A_model, B_model, prompt, VQ, MQ, TA and Overall (each
A, B or same), fps and frame counts.

Units: every row's pair, judged for the overall preference (margin m = P(A) - P(B) with the logit
method, +1 / 0 / -1 from a generated verdict); and, with ``dimensions`` (default true), every video
scored once with the multi-dimension point protocol, whose dimensions stand for the benchmark's:
VQ (visual quality) <- style, MQ (motion quality) <- physics, TA (text alignment) <- alignment, so
that m_dim = score_dim(A) - score_dim(B).

Metrics, per dimension in overall, vq, mq, ta, exactly as ``calc_accuracy.py``:
- ``<dim>/accuracy_without_ties``: C / (C + D) over the pairs whose human label is not ``same``; a
  zero model margin counts wrong (D); a pair the judge could not judge counts wrong too.
- ``<dim>/accuracy_with_ties``: the tie-threshold sweep of "Ties Matter" as VideoAlign implements it:
  the pairs sorted by |m| (stable, in CSV order), the first k marked as model ties for k = 1..N,
  accuracy (C + both-tied) / all at each k, the best kept. Pairs without a margin are sorted last
  and never become ties.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from ..io import schema, storage
from .core import BenchmarkError, Counts, LoadError, Metric, Prediction, Unit, finish

NAME = "videogen-rewardbench"
DIMS = {"overall": "Overall", "vq": "VQ", "mq": "MQ", "ta": "TA"}
POINT_DIM = {"vq": "style", "mq": "physics", "ta": "alignment"}  # the judge's video point_multi dimensions
LABEL = {"A": 1, "B": -1, "same": 0}
COLUMNS = ("path_A", "path_B", "prompt", "VQ", "MQ", "TA", "Overall")


def csv_uri(data: str, options: dict[str, Any]) -> str:
    if data.endswith(".csv"):
        return data
    uri = storage.join(data, options.get("csv") or "videogen-rewardbench.csv")
    if not storage.exists(uri):
        raise BenchmarkError(
            f"{data}: no {options.get('csv') or 'videogen-rewardbench.csv'} (the benchmark's CSV "
            "from KwaiVGI/VideoGen-RewardBench; another name with --set options.csv=NAME)"
        )
    return uri


def rows(data: str, options: dict[str, Any]) -> tuple[list[dict[str, str]], str]:
    uri = csv_uri(data, options)
    reader = csv.DictReader(io.StringIO(storage.read_bytes(uri).decode("utf-8-sig")))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise BenchmarkError(f"{uri}: not the VideoGen-RewardBench CSV (missing columns {missing})")
    out = list(reader)
    return (out[: options["limit"]] if options.get("limit") else out), schema.parent(uri)


def load(data: str, options: dict[str, Any]) -> Iterator[Unit | LoadError]:
    table, base = rows(data, options)
    videos: dict[str, str] = {}
    for i, r in enumerate(table):
        key, group = str(i), "pairs"
        labels = {d: r.get(col) for d, col in DIMS.items()}
        extra = dict(row=i, fields=r)
        bad = {d: v for d, v in labels.items() if v not in LABEL}
        if bad:
            yield LoadError(key, group, f"unknown label(s) {bad} (expected A, B or same)", labels, extra)
            continue
        if not (r.get("path_A") and r.get("path_B")) or not (r.get("prompt") or "").strip():
            yield LoadError(key, group, "a row without both videos or without a prompt", labels, extra)
            continue
        a, b = (schema.resolve_media(r[c], base) for c in ("path_A", "path_B"))
        extra.update(path_a=a, path_b=b)
        yield Unit(key, group, "video_generation", "pair_rank", r["prompt"], [a, b], label=labels, extra=extra)
        if options.get("dimensions", True):
            for path, prompt in ((a, r["prompt"]), (b, r["prompt"])):
                if path not in videos:
                    videos[path] = prompt
                    yield Unit(
                        f"video:{path}",
                        "videos",
                        "video_generation",
                        "point_multi",
                        prompt,
                        [path],
                        extra=dict(path=path),
                    )


def margins(predictions: list[Prediction]) -> dict[str, list[tuple[int, float | None]]]:
    """Per dimension, (human label h, model margin m or None) for every row in CSV order."""
    videos = {p.extra.get("path"): p for p in predictions if p.mode == "point_multi"}
    out: dict[str, list[tuple[int, float | None]]] = {d: [] for d in DIMS}
    for p in sorted((p for p in predictions if p.group == "pairs"), key=lambda p: p.extra.get("row", 0)):
        labels = p.label or {}
        for d in DIMS:
            h = LABEL.get(labels.get(d))
            if h is None:
                out[d].append((0, None))  # not loadable: no human label is usable either
                continue
            if d == "overall":
                m = p.margin
            else:
                a, b = (videos.get(p.extra.get(k)) for k in ("path_a", "path_b"))
                if a is None and b is None:  # predictions read from out_pair.csv carry the rewards
                    ra, rb = p.extra.get(f"reward_{DIMS[d]}_A"), p.extra.get(f"reward_{DIMS[d]}_B")
                    m = ra - rb if ra is not None and rb is not None else None
                else:
                    m = _dim_margin(a, b, POINT_DIM[d])
            out[d].append((h, m))
    return out


def _dim_margin(a: Prediction | None, b: Prediction | None, dim: str) -> float | None:
    if a is None or b is None or not a.ok or not b.ok or not a.dims or not b.dims:
        return None
    if dim not in a.dims or dim not in b.dims:
        return None
    return a.dims[dim] - b.dims[dim]


def without_ties(pairs: list[tuple[int, float | None]]) -> tuple[int, int]:
    """C / (C + D) over non-tied human labels; a zero (or missing) margin is D."""
    c = d = 0
    for h, m in pairs:
        if h == 0:
            continue
        if m is not None and h * m > 0:
            c += 1
        else:
            d += 1
    return c, c + d


def with_ties(pairs: list[tuple[int, float | None]]) -> tuple[int, int]:
    """The best (C + Thm) / N over the prefix cuts k = 1..N of the pairs sorted by |m| (stable);
    returns the numerator and N at the best cut."""
    n = len(pairs)
    if not n:
        return 0, 0
    # state with no model tie (eps = -1): C, D (all non-ties that are not C), Th (human ties)
    c = sum(1 for h, m in pairs if h != 0 and m is not None and h * m > 0)
    th = sum(1 for h, _ in pairs if h == 0)
    thm = 0
    best = -1
    order = sorted(range(n), key=lambda i: abs(pairs[i][1]) if pairs[i][1] is not None else float("inf"))
    for i in order:
        h, m = pairs[i]
        if m is None:
            break  # a pair without a margin never becomes a model tie
        if h == 0:  # Th -> Thm
            th -= 1
            thm += 1
        elif h * m > 0:  # C -> Tm
            c -= 1
        # (D -> Tm: D falls out of the numerator already)
        best = max(best, c + thm)
    return max(best, 0), n


def counts(predictions: list[Prediction]) -> Counts:
    out: Counts = {}
    for d, pairs in margins(predictions).items():
        if not pairs:
            continue
        out[f"{d}/accuracy_without_ties"] = without_ties(pairs)
        out[f"{d}/accuracy_with_ties"] = with_ties(pairs)
    return out


def metrics(predictions: list[Prediction]) -> dict[str, Metric]:
    return finish(counts(predictions))


def item_key(key: str) -> str | None:
    """The CSV row a unit is (None for a video's own scores: they have no row of their own)."""
    return None if key.startswith("video:") else key


def cluster(p: Prediction) -> str:
    """The item a prediction belongs to, for the bootstrap: its row (a video's point judgment goes
    with every row that uses it; it is resampled with the pairs)."""
    return p.key


# ------------------------------------------------------------------------------------ upstream format
def write_upstream(predictions: list[Prediction], folder: str, model: str = "unireward") -> list[str]:
    """``out_pair.csv`` as eval_videogen_rewardbench.py writes it: the CSV's columns, then
    reward_{VQ,MQ,TA,Overall}_{A,B} (Overall: P(A better) and P(B better), or 1 / 0 for a generated
    verdict; the dimensions: each video's point scores). A reward the judge could not give is empty."""
    videos = {p.extra.get("path"): p for p in predictions if p.mode == "point_multi"}
    pairs = sorted((p for p in predictions if p.group == "pairs"), key=lambda p: p.extra.get("row", 0))
    if not pairs:
        return []
    fields = list(pairs[0].extra.get("fields", {}))
    rewards = [f"reward_{D}_{s}" for D in ("VQ", "MQ", "TA", "Overall") for s in ("A", "B")]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields + rewards, extrasaction="ignore")
    w.writeheader()
    for p in pairs:
        row = dict(p.extra.get("fields", {}))
        if p.ok:
            pa = p.p_first if p.p_first is not None else {"first": 1.0, "second": 0.0, "tie": 0.5}.get(p.verdict)
            pb = p.p_second if p.p_second is not None else {"first": 0.0, "second": 1.0, "tie": 0.5}.get(p.verdict)
            row.update(reward_Overall_A=pa, reward_Overall_B=pb)
        for d, dim in POINT_DIM.items():
            for side, k in (("A", "path_a"), ("B", "path_b")):
                v = videos.get(p.extra.get(k))
                if v is not None and v.ok and v.dims and dim in v.dims:
                    row[f"reward_{DIMS[d]}_{side}"] = v.dims[dim]
        w.writerow(row)
    uri = storage.join(folder, "videogen-rewardbench-output", "out_pair.csv")
    storage.write_bytes(uri, buf.getvalue().encode())
    return [uri]


def read_upstream(path: str, data: str) -> list[Prediction]:
    """Predictions from an ``out_pair.csv`` (the original columns and the reward columns)."""
    reader = csv.DictReader(io.StringIO(storage.read_bytes(path).decode("utf-8-sig")))
    need = [f"reward_{D}_{s}" for D in ("VQ", "MQ", "TA", "Overall") for s in ("A", "B")]
    if not set(need) & set(reader.fieldnames or []):
        raise BenchmarkError(f"{path}: no reward_* columns; not an out_pair.csv")
    out = []
    for i, r in enumerate(reader):
        labels = {d: r.get(col) for d, col in DIMS.items()}
        rewards = {k: float(r[k]) if r.get(k) not in (None, "") else None for k in need}
        ra, rb = rewards["reward_Overall_A"], rewards["reward_Overall_B"]
        ok = ra is not None and rb is not None
        out.append(
            Prediction(
                key=str(i),
                group="pairs",
                task="video_generation",
                mode="pair_rank",
                status="ok" if ok else "unparsed",
                reason=None if ok else "no Overall reward",
                p_first=ra if ok else None,
                p_second=rb if ok else None,
                verdict=("first" if ra > rb else "second" if rb > ra else "tie") if ok else None,
                label=labels,
                extra=dict(row=i, fields={k: v for k, v in r.items() if k not in need}, **rewards),
            )
        )
    return out
