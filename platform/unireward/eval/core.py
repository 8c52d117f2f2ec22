"""What every benchmark shares: the units a judge judges, the predictions that come back, metrics as
numerator over denominator with bootstrap intervals, swap agreement, calibration (expected
calibration error and a reliability diagram), and failures counted by reason.

A benchmark module (``genai_bench``, ``videogen_rewardbench``, ``vl_rewardbench``, ``mmrb2``,
``imagereward``) provides:

- ``load(data, options)``: the benchmark as distributed (a local folder or ``s3://``) as a stream of
  ``Unit``s (what to judge, with the benchmark's own key and label) and ``LoadError``s (an entry that
  cannot be used: an unknown vote, a malformed record), never raising for one bad entry;
- ``metrics(predictions)``: its official metrics, each ``(numerator, denominator)``, computed
  exactly as its official scorer does (the module docstring cites the scorer and its rules);
- ``write_upstream(predictions, folder)`` and ``read_upstream(path)``: its own prediction format,
  so the official scripts can score our predictions and theirs can be scored here.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..judge.types import Judgment, Status

Counts = dict[str, tuple[float, float]]  # metric name -> (numerator, denominator)


class BenchmarkError(ValueError):
    """The data is not the benchmark's published layout (the message says what was looked for)."""


@dataclass
class Unit:
    """One thing to judge: a pair (or a point) of a benchmark, with its own key and label.

    Candidates and context are media references (paths, ``s3://``), raw bytes (images a Parquet
    file carries), or answer texts (understanding tasks)."""

    key: str  # the benchmark's own item key
    group: str  # the subset it is reported under (a config, a task, a source group)
    task: str
    mode: str
    prompt: str
    candidates: list[Any]
    context: Any = None
    label: Any = None  # the benchmark's truth, in its own terms (a vote, 'A'/'B'/'same', a ranking)
    extra: dict[str, Any] = field(default_factory=dict)  # what the upstream format needs (row index, fields)


@dataclass
class LoadError:
    """An entry of the benchmark that cannot be judged, with the reason; counted, never dropped."""

    key: str
    group: str
    reason: str
    label: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Prediction:
    """What the judge said about one unit (or why it could not), in the terms metrics need."""

    key: str
    group: str
    task: str
    mode: str
    status: str  # ok | unparsed | invalid_input | error | not_loaded
    reason: str | None = None
    verdict: str | None = None  # first | second | tie (pairs)
    p_first: float | None = None
    p_second: float | None = None
    p_tie: float | None = None
    order_verdicts: list[str | None] | None = None  # swap: the verdict of each order, in its own frame
    agreement: bool | None = None
    score: float | None = None  # points: the score (its scale's); pair_score: the margin
    dims: dict[str, float] | None = None
    scores: list[float] | None = None
    label: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    raw_text: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == Status.OK.value

    @property
    def margin(self) -> float | None:
        """first minus second: P(first) - P(second) (logits), the score margin (pair_score), or the
        verdict as +1 / 0 / -1 (generated text); None when not judged."""
        if not self.ok:
            return None
        if self.p_first is not None and self.p_second is not None:
            return self.p_first - self.p_second
        if self.scores is not None and len(self.scores) == 2:
            return self.scores[0] - self.scores[1]
        return {"first": 1.0, "second": -1.0, "tie": 0.0}.get(self.verdict)

    @property
    def confidence(self) -> float | None:
        """The probability the judge gave its own verdict (logits method), for calibration."""
        probs = [p for p in (self.p_first, self.p_second, self.p_tie) if p is not None]
        return max(probs) if self.ok and probs else None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != {}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Prediction:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def prediction(unit: Unit, j: Judgment) -> Prediction:
    """A judgment of ``unit`` as a Prediction."""
    probs = j.probs or {}
    orders = [o.verdict for o in j.orders] if j.orders else None
    return Prediction(
        key=unit.key,
        group=unit.group,
        task=unit.task,
        mode=unit.mode,
        status=j.status.value,
        reason=j.reason,
        verdict=j.verdict,
        p_first=probs.get("first"),
        p_second=probs.get("second"),
        p_tie=probs.get("tie"),
        order_verdicts=orders,
        agreement=j.agreement,
        score=j.score,
        dims=j.dims,
        scores=j.scores,
        label=unit.label,
        extra=unit.extra,
        raw_text=j.raw_text
        if j.raw_text is not None
        else (
            "\n---\n".join(o.raw_text or "" for o in j.orders)
            if j.orders and j.orders[0].raw_text is not None
            else None
        ),
    )


def not_loaded(err: LoadError, task: str = "", mode: str = "") -> Prediction:
    """A benchmark entry that could not be used, as a Prediction that every metric counts as it
    counts a failure (the benchmark's own rule: wrong, or excluded)."""
    return Prediction(
        key=err.key,
        group=err.group,
        task=task,
        mode=mode,
        status="not_loaded",
        reason=err.reason,
        label=err.label,
        extra=err.extra,
    )


# ------------------------------------------------------------------------------------ metrics
@dataclass
class Metric:
    value: float | None
    num: float
    den: float
    ci95: tuple[float, float] | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(value=self.value, num=_number(self.num), den=_number(self.den))
        if self.ci95 is not None:
            out["ci95"] = [round(self.ci95[0], 6), round(self.ci95[1], 6)]
        if self.note:
            out["note"] = self.note
        return out


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score 95% interval of a proportion k / n (sound at small n and at 0 or n)."""
    if n <= 0:
        return None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def finish(
    counts: Counts,
    derived: dict[str, Callable[[Counts], float | None]] | None = None,
    notes: dict[str, str] | None = None,
) -> dict[str, Metric]:
    """Metrics from counts, plus metrics derived from them (e.g. a leaderboard average)."""
    out = {k: Metric(ratio(n, d), n, d, note=(notes or {}).get(k)) for k, (n, d) in counts.items()}
    for name, fn in (derived or {}).items():
        n = sum(counts[k][0] for k in counts)
        d = sum(counts[k][1] for k in counts)
        out[name] = Metric(fn(counts), n, d, note=(notes or {}).get(name))
    return out


def bootstrap(
    predictions: Sequence[Prediction],
    compute: Callable[[Sequence[Prediction]], dict[str, Metric]],
    metrics: dict[str, Metric],
    n: int = 1000,
    seed: int = 0,
    cluster: Callable[[Prediction], str] | None = None,
) -> None:
    """Adds a 95% percentile interval to every metric: ``n`` resamples of the benchmark's items
    (``cluster``: the item a prediction belongs to, e.g. the prompt of a rank list; stratified by
    group), the metric recomputed on each."""
    cluster = cluster or (lambda p: p.key)
    by_group: dict[str, dict[str, list[Prediction]]] = {}
    for p in predictions:
        by_group.setdefault(p.group, {}).setdefault(cluster(p), []).append(p)
    groups = {g: list(c.values()) for g, c in by_group.items()}
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {k: [] for k in metrics}
    for _ in range(n):
        draw = [p for items in groups.values() for _ in range(len(items)) for p in rng.choice(items)]
        for k, m in compute(draw).items():
            if k in samples and m.value is not None:
                samples[k].append(m.value)
    for k, vals in samples.items():
        if len(vals) >= max(10, n // 10):
            vals.sort()
            metrics[k].ci95 = (vals[int(0.025 * (len(vals) - 1))], vals[int(math.ceil(0.975 * (len(vals) - 1)))])


def swap_agreement(predictions: Iterable[Prediction]) -> Metric:
    """Of the pairs judged in both orders, the share whose two orders picked the same candidate
    (1 - the position bias); a tie in either order counts as not agreeing."""
    both = [p for p in predictions if p.ok and p.agreement is not None]
    agree = sum(bool(p.agreement) for p in both)
    return Metric(ratio(agree, len(both)), agree, len(both))


def calibration(pairs: Sequence[tuple[float, bool]], bins: int = 10) -> dict[str, Any]:
    """Expected calibration error of (confidence, correct) pairs over ``bins`` equal-width bins, and
    the reliability diagram's points (mean confidence, accuracy, count per bin)."""
    table = []
    ece = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(c, y) for c, y in pairs if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        if not inside:
            continue
        conf = sum(c for c, _ in inside) / len(inside)
        acc = sum(y for _, y in inside) / len(inside)
        ece += len(inside) / len(pairs) * abs(acc - conf)
        table.append(dict(low=lo, high=hi, confidence=conf, accuracy=acc, count=len(inside)))
    return dict(ece=ece if pairs else None, n=len(pairs), bins=table)


def failures(predictions: Iterable[Prediction]) -> dict[str, Any]:
    """Predictions that are not ok, by status and by the first words of the reason."""
    bad = [p for p in predictions if not p.ok]
    return dict(
        total=len(bad),
        by_status=dict(Counter(p.status for p in bad)),
        by_reason=dict(Counter(_reason_kind(p.reason) for p in bad).most_common(12)),
    )


def _reason_kind(reason: str | None) -> str:
    if not reason:
        return "unknown"
    head = reason.split(":", 1)[0].strip()
    return head if len(head) <= 40 else " ".join(reason.split()[:5])


def iter_chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for x in items:
        chunk.append(x)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
