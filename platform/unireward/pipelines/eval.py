"""The Ray Data driver of ``kind: eval``. Thin: the benchmark's loader (``unireward.eval``) writes its
units as Parquet parts under ``<output>/_units`` (streamed, so the driver's memory does not grow with
the benchmark), the batch skeleton judges them on an actor pool with exactly-once shards (resume,
S3, progress, error records), and the driver scores the predictions with the benchmark's metrics.

Outputs: ``predictions.jsonl`` (one row per judged unit with the benchmark's own key, the verdict or
scores, probabilities, status and reason), the benchmark's own prediction format under
``upstream/``, and ``report/summary.json`` + ``report/report.png``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .. import __version__
from .. import eval as benchmarks
from ..config import EvalSpec
from ..eval.core import LoadError, Prediction, Unit, iter_chunks, not_loaded, prediction
from ..io import schema, staging, storage
from ..judge import records
from ..judge.types import JudgeItem
from .batch import BatchKind, JudgeStage, check_errors, fingerprint, run_batch

UNITS = "_units"
COMPLETE = "_complete.json"


def unit_row(u: Unit | LoadError) -> dict[str, Any]:
    """A unit as a row of ``schema.EVAL_UNIT_SCHEMA``: bytes become the row's own blobs."""
    if isinstance(u, LoadError):
        return dict(
            key=u.key,
            group=u.group,
            task=None,
            mode=None,
            prompt=None,
            context=None,
            candidates=None,
            blobs=None,
            label=json.dumps(u.label),
            extra=json.dumps(u.extra, default=str),
            load_error=u.reason,
        )
    blobs: list[bytes] = []

    def ref(x: Any) -> Any:
        if isinstance(x, (bytes, bytearray, memoryview)):
            blobs.append(bytes(x))
            return f"{records.BLOB}{len(blobs) - 1}"
        return x

    cands = [ref(c) for c in u.candidates]
    context = ref(u.context) if u.context is not None else None
    return dict(
        key=u.key,
        group=u.group,
        task=u.task,
        mode=u.mode,
        prompt=u.prompt,
        context=context,
        candidates=cands,
        blobs=blobs,
        label=json.dumps(u.label),
        extra=json.dumps(u.extra, default=str),
        load_error=None,
    )


def prepare_units(spec: EvalSpec, folder: str, chunk: int = 128) -> dict[str, Any]:
    """Writes the benchmark's units as Parquet parts (``chunk`` units each) and a completion marker;
    a complete folder is kept (a rerun resumes the judging, not the reading)."""
    marker = storage.join(folder, COMPLETE)
    if storage.exists(marker):
        return json.loads(storage.read_bytes(marker))
    staging.clear(folder)
    mod = benchmarks.benchmark(spec.benchmark)
    counts = dict(units=0, load_errors=0, duplicate_keys=0)
    options = spec.options.model_dump(exclude_none=True)
    seen: dict[str, int] = {}
    for k, part in enumerate(iter_chunks(mod.load(spec.data, options), chunk)):
        rows = [unit_row(u) for u in part]
        for r in rows:  # a key the benchmark repeats is judged and counted once per entry, never merged
            n = seen[r["key"]] = seen.get(r["key"], 0) + 1
            if n > 1:
                r["key"] = f"{r['key']}#{n}"
                counts["duplicate_keys"] += 1
        counts["units"] += len(rows)
        counts["load_errors"] += sum(r["load_error"] is not None for r in rows)
        schema.write_parquet(rows, schema.EVAL_UNIT_SCHEMA, storage.join(folder, f"part-{k:05d}.parquet"))
    if not counts["units"]:
        raise benchmarks.BenchmarkError(f"{spec.data}: the benchmark holds no entries to judge")
    storage.write_bytes(marker, json.dumps(counts).encode())
    return counts


def _unit(row: dict[str, Any]) -> Unit:
    return Unit(
        row["key"],
        row["group"],
        row["task"],
        row["mode"],
        row["prompt"],
        list(row["candidates"] or []),
        row.get("context"),
        json.loads(row["label"]) if row.get("label") else None,
        json.loads(row["extra"]) if row.get("extra") else {},
    )


class EvalStage(JudgeStage):
    """Judges a batch of benchmark units and commits one prediction per unit."""

    spec_type, unit, record_schema = EvalSpec, "key", schema.PREDICTION_SCHEMA

    def process(self, rows, decoded):
        preds: dict[int, Prediction] = {}
        items, owners = [], []
        for i, (row, d) in enumerate(zip(rows, decoded)):
            if row.get("load_error"):
                preds[i] = not_loaded(
                    LoadError(
                        row["key"],
                        row["group"],
                        row["load_error"],
                        json.loads(row["label"] or "null"),
                        json.loads(row["extra"] or "{}"),
                    )
                )
                continue
            unit = _unit(row)
            cands = [d.get(str(k), c) for k, c in enumerate(unit.candidates)]
            context = d.get(records.CONTEXT_KEY, unit.context)
            items.append(JudgeItem(unit.task, unit.prompt, cands, context=context, mode=unit.mode, id=unit.key))
            owners.append((i, unit))
        if items:
            judgments = self.rm.judge(items, self.spec.judge.method, self.spec.judge.swap)
            for (i, unit), j in zip(owners, judgments):
                preds[i] = prediction(unit, j)
        return [
            dict(key=p.key, group=p.group, status=p.status, prediction=json.dumps(p.to_dict(), default=str))
            for p in (preds[i] for i in range(len(rows)))
        ]


def finish_eval(spec: EvalSpec, run: dict[str, Any]) -> dict[str, Any]:
    """The report (driver side, from the committed predictions), predictions.jsonl and the benchmark's
    own format."""
    preds = [Prediction.from_dict(json.loads(r["prediction"])) for r in staging.read_staged(spec.output, "key")]
    for sub in ("report", "upstream"):
        staging.clear(storage.join(spec.output, sub))
    storage.write_jsonl(storage.join(spec.output, "predictions.jsonl"), [p.to_dict() for p in preds])
    upstream = (
        benchmarks.benchmark(spec.benchmark).write_upstream(preds, storage.join(spec.output, "upstream"), spec.name)
        if spec.upstream
        else []
    )
    report = benchmarks.evaluate(spec.benchmark, preds, spec.resamples)
    failed = sum(p.status in ("invalid_input", "error", "not_loaded") for p in preds)
    report.update(
        name=spec.name,
        kind="eval",
        data=spec.data,
        output=spec.output,
        unireward=__version__,
        judge=dict(
            model=spec.judge.model,
            endpoint=spec.judge.endpoint,
            method=spec.judge.method,
            swap=spec.judge.swap,
            family=spec.judge.family,
            protocols=spec.judge.protocols,
        ),
        run=run,
        upstream=upstream,
        error_fraction=failed / len(preds) if preds else 0.0,
        max_error_fraction=spec.max_error_fraction,
    )
    storage.write_bytes(storage.join(spec.output, "report", "summary.json"), json.dumps(report, indent=2).encode())
    benchmarks.plot(report, storage.join(spec.output, "report", "report.png"))
    check_errors(report, "units")
    return report


EVAL = BatchKind("key", schema.EVAL_UNIT_SCHEMA, EvalStage, finish_eval)


def run_eval(spec: EvalSpec, progress=None) -> dict[str, Any]:
    """Reads the benchmark into units (once), judges them on Ray Data, scores the predictions."""
    t0 = time.time()
    staging.check_fingerprint(spec.output, fingerprint(spec))  # before anything is written
    folder = storage.join(spec.output, UNITS)
    prepared = prepare_units(spec, folder)
    report = run_batch(spec, EVAL, progress, inputs=folder)
    report["run"].update(prepared, total_seconds=round(time.time() - t0, 2))
    return report


def score_predictions(
    benchmark: str, data: str, path: str, output: str | None = None, resamples: int = 1000
) -> dict[str, Any]:
    """The report of an existing predictions file (ours, or the benchmark's upstream format), with no
    model and no Ray."""
    preds = benchmarks.read_predictions(benchmark, path, data)
    if not preds:
        raise benchmarks.BenchmarkError(f"{path}: no predictions")
    report = benchmarks.evaluate(benchmark, preds, resamples)
    mod = benchmarks.benchmark(benchmark)
    item_key = getattr(mod, "item_key", lambda k: k)
    wanted = {item_key(u.key) for u in mod.load(data, {})} - {None}
    have = {item_key(p.key) for p in preds}
    missing = sorted(wanted - have)
    report.update(
        predictions=path,
        data=data,
        unireward=__version__,
        missing=dict(
            count=len(missing),
            first=missing[:10],
            note="benchmark entries the file has no prediction for: not counted, as the "
            "official scorers do not count them",
        ),
    )
    if output:
        storage.write_bytes(storage.join(output, "report", "summary.json"), json.dumps(report, indent=2).encode())
        benchmarks.plot(report, storage.join(output, "report", "report.png"))
    return report


__all__ = ["EVAL", "EvalStage", "prepare_units", "run_eval", "score_predictions"]
