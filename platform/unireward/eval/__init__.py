"""Evaluation on the public reward benchmarks, as pure functions: loaders for their published
layouts, their official metrics, their prediction formats, and what no upstream scorer reports
(bootstrap intervals, swap agreement, calibration, failures by reason). The Ray driver of
``kind: eval`` is ``unireward.pipelines.eval``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from ..io import storage
from . import genai_bench, imagereward, mmrb2, videogen_rewardbench, vl_rewardbench
from .core import BenchmarkError, LoadError, Metric, Prediction, Unit, bootstrap, calibration, failures, swap_agreement

BENCHMARKS: dict[str, ModuleType] = {
    m.NAME: m for m in (genai_bench, videogen_rewardbench, vl_rewardbench, mmrb2, imagereward)
}


def benchmark(name: str) -> ModuleType:
    if name not in BENCHMARKS:
        raise BenchmarkError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}")
    return BENCHMARKS[name]


def truth(name: str, p: Prediction) -> str | None:
    """A pairwise unit's preferred candidate (first or second), where the benchmark has one."""
    if p.mode != "pair_rank":
        return None
    label = p.label
    if name == genai_bench.NAME:
        return {"leftvote": "first", "rightvote": "second"}.get(label)
    if name == videogen_rewardbench.NAME:
        return {"A": "first", "B": "second"}.get((label or {}).get("overall")) if isinstance(label, dict) else None
    if name == vl_rewardbench.NAME:
        return label if label in ("first", "second") else None
    if name == mmrb2.NAME:
        return {"A": "first", "B": "second"}.get(label)
    return None


def evaluate(name: str, predictions: Sequence[Prediction], resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The report of a benchmark's predictions: its official metrics (value, num, den, 95% bootstrap
    interval), swap agreement, calibration, failures by reason, and what was not judged."""
    mod = benchmark(name)
    preds = list(predictions)
    metrics = mod.metrics(preds)
    if resamples:
        bootstrap(preds, mod.metrics, metrics, n=resamples, seed=seed, cluster=getattr(mod, "cluster", None))
    pairs = [p for p in preds if p.mode == "pair_rank"]
    conf = [
        (p.confidence, p.verdict == truth(name, p))
        for p in pairs
        if p.confidence is not None and truth(name, p) is not None
    ]
    out: dict[str, Any] = dict(
        benchmark=name,
        metrics={k: m.to_dict() for k, m in sorted(metrics.items())},
        swap_agreement=swap_agreement(pairs).to_dict() if pairs else None,
        calibration=calibration(conf)
        if conf
        else dict(ece=None, n=0, bins=[], note="no verdict probabilities (logit method) to calibrate"),
        failures=failures(preds),
        units=len(preds),
        groups={g: sum(p.group == g for p in preds) for g in sorted({p.group for p in preds})},
    )
    if name == mmrb2.NAME:
        out["unsupported"] = mmrb2.unsupported(preds)
    return out


def read_predictions(name: str, path: str, data: str) -> list[Prediction]:
    """Predictions from a file: ours (``predictions.jsonl``: one JSON object per judged unit, with its
    key and status) or the benchmark's upstream format (its module's ``read_upstream``)."""
    if path.endswith(".jsonl"):
        lines = [ln for ln in storage.read_bytes(path).decode("utf-8-sig").splitlines() if ln.strip()]
        first = json.loads(lines[0]) if lines else {}
        if "key" in first and "status" in first:
            return [Prediction.from_dict(json.loads(ln)) for ln in lines]
    return benchmark(name).read_upstream(path, data)


def table(report: dict[str, Any]) -> list[str]:
    """The report as lines for a terminal."""
    lines = [f"{report['benchmark']}: {report['units']} units"]
    width = max([len(k) for k in report["metrics"]] + [10])
    for k, m in report["metrics"].items():
        ci = f"  [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]" if m.get("ci95") else ""
        value = "-" if m["value"] is None else f"{m['value']:.4f}"
        lines.append(f"  {k:{width}s} {value:>8s}  ({m['num']}/{m['den']}){ci}")
    if report.get("swap_agreement") and report["swap_agreement"]["den"]:
        s = report["swap_agreement"]
        lines.append(
            f"  {'swap agreement':{width}s} {s['value'] if s['value'] is None else round(s['value'], 4)!s:>8s}"
            f"  ({s['num']}/{s['den']})"
        )
    cal = report.get("calibration") or {}
    if cal.get("ece") is not None:
        lines.append(f"  {'calibration (ECE)':{width}s} {cal['ece']:>8.4f}  (n={cal['n']})")
    f = report["failures"]
    if f["total"]:
        lines.append(f"  not judged: {f['total']} {f['by_status']}; reasons {f['by_reason']}")
    if report.get("unsupported"):
        lines.append(f"  unsupported (not judged): {report['unsupported']}")
    return lines


def plot(report: dict[str, Any], path: str) -> None:
    """The report as a PNG: each metric with its 95% interval, and the reliability diagram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..train.runtime import save_png

    metrics = [(k, m) for k, m in report["metrics"].items() if m["value"] is not None]
    fig, axes = plt.subplots(1, 2, figsize=(13, max(3.5, 0.35 * len(metrics) + 1.5)))
    ys = range(len(metrics))
    vals = [m["value"] for _, m in metrics]
    lo = [m["value"] - m["ci95"][0] if m.get("ci95") else 0 for _, m in metrics]
    hi = [m["ci95"][1] - m["value"] if m.get("ci95") else 0 for _, m in metrics]
    axes[0].barh(list(ys), vals, xerr=[lo, hi], color="#4c72b0", capsize=3)
    axes[0].set_yticks(list(ys), [f"{k} (n={m['den']})" for k, m in metrics], fontsize=8)
    axes[0].set_xlim(0, 1)
    axes[0].invert_yaxis()
    axes[0].set_title(f"{report['benchmark']}: metrics with 95% bootstrap intervals")
    cal = report.get("calibration") or {}
    axes[1].plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfectly calibrated")
    if cal.get("bins"):
        axes[1].plot(
            [b["confidence"] for b in cal["bins"]],
            [b["accuracy"] for b in cal["bins"]],
            marker="o",
            label=f"judge (ECE {cal['ece']:.3f}, n={cal['n']})",
        )
    else:
        axes[1].text(0.5, 0.5, cal.get("note", "no probabilities"), ha="center", fontsize=9, wrap=True)
    axes[1].set_xlabel("confidence (the verdict's probability)")
    axes[1].set_ylabel("accuracy")
    axes[1].set_title("reliability")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


__all__ = [
    "BENCHMARKS",
    "BenchmarkError",
    "LoadError",
    "Metric",
    "Prediction",
    "Unit",
    "benchmark",
    "evaluate",
    "plot",
    "read_predictions",
    "table",
]
