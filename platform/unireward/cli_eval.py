"""``unireward eval``: a judge on a public reward benchmark, or an existing predictions file scored
with the benchmark's official metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .console import fail, progress_printer, quiet_libraries, storage_errors

BENCHMARKS = "genai-bench, videogen-rewardbench, vl-rewardbench, mmrb2 or imagereward"


def eval_command(
    benchmark: str = typer.Option(..., help=BENCHMARKS),
    data: str = typer.Option(..., help="the benchmark as distributed (a local folder or s3:// prefix)"),
    model: Optional[str] = typer.Option(None, help="the judge checkpoint (or --set judge.endpoint=URL)"),
    predictions: Optional[str] = typer.Option(
        None, help="score this predictions file instead (ours or the benchmark's own format): no model, no Ray"
    ),
    output: Optional[str] = typer.Option(None, help="where predictions and the report go (default: runs/eval/NAME)"),
    name: Optional[str] = typer.Option(None, help="the run's name (default: eval-BENCHMARK)"),
    set_: Optional[list[str]] = typer.Option(
        None, "--set", help="override a spec field: --set judge.method=generate, --set options.limit=100"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: RAY_ADDRESS or a local Ray)"),
) -> None:
    """Evaluate a judge on a public reward benchmark (Ray Data, like `unireward run` of a kind: eval
    spec), or score a predictions file; prints the official metrics with 95% intervals."""
    quiet_libraries()
    import os

    from rich.console import Console

    from . import eval as benchmarks
    from .cli import _apply_overrides
    from .config import ConfigError, parse_spec
    from .eval.core import BenchmarkError
    from .pipelines.batch import JobFailed

    if benchmark not in benchmarks.BENCHMARKS:
        fail(f"unknown benchmark {benchmark!r}; known: {BENCHMARKS}")
    if (model is None) == (predictions is None) and not any(s.startswith("judge.endpoint=") for s in set_ or []):
        fail("give --model (or --set judge.endpoint=URL) to judge, or --predictions FILE to score a file")
    console = Console(stderr=True)
    with storage_errors():
        if predictions is not None:
            from .pipelines.eval import score_predictions

            try:
                report = score_predictions(benchmark, data, predictions, output)
            except (BenchmarkError, OSError, ValueError, KeyError) as e:
                fail(f"cannot score {predictions}: {e}")
        else:
            name = name or f"eval-{benchmark}"
            spec_data = _apply_overrides(
                dict(
                    kind="eval",
                    name=name,
                    benchmark=benchmark,
                    data=data,
                    output=output or str(Path("runs") / "eval" / name),
                    judge=dict(model=model or ""),
                ),
                set_ or [],
            )
            try:
                spec = parse_spec(spec_data, "unireward eval")
            except ConfigError as e:
                fail(str(e))
            if address:
                os.environ["RAY_ADDRESS"] = address
            from .io import staging
            from .pipelines.eval import run_eval

            try:
                report = run_eval(spec, progress_printer(console, spec.name))
            except (staging.SpecMismatch, BenchmarkError) as e:
                fail(str(e))
            except JobFailed as e:
                fail(str(e), code=1)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    for line in benchmarks.table(report):
        typer.echo(line)
    if report.get("output"):
        typer.echo(
            f"written: {report['output']}/predictions.jsonl, report/summary.json, report/report.png"
            + (", upstream/" if report.get("upstream") else "")
        )
