"""What the command line shares: quiet libraries, one-line errors, and results as a table or JSON."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import typer


def quiet_libraries() -> None:
    """Keep library chatter (DeepSpeed's accelerator probe, HF progress bars) off our output."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # "Creating parquet from Arrow format"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "DS_ACCELERATOR" not in os.environ:
        import torch

        if not torch.cuda.is_available():
            # DeepSpeed (imported by transformers) would otherwise print its CPU fallback warning on stdout
            os.environ["DS_ACCELERATOR"] = "cpu"
    for name in ("DeepSpeed", "deepspeed", "transformers", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)


def fail(message: str, code: int = 2) -> None:
    """Ends the command with one ``error:`` line on stderr and exit status ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def progress_log(as_json: bool) -> Callable[[str], None]:
    """Where a command's progress lines go: stderr when stdout carries JSON."""
    return (lambda s: typer.echo(s, err=True)) if as_json else typer.echo


def emit(result: dict[str, Any], as_json: bool, lines: Callable[[dict[str, Any]], Iterable[str]]) -> None:
    """A result as JSON (``--json``) or as the human-readable ``lines`` of it."""
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    for line in lines(result):
        typer.echo(line)


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """An object-store failure (a credential, permission or endpoint problem; also raised inside a
    Ray task) ends the command with one ``error:`` line naming the object, the operation and the
    variables to check (exit status 2), not with a traceback."""
    from .io.storage import describe_error

    try:
        yield
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as e:
        message = describe_error(e)
        if message is None:
            raise
        fail(message)


def progress_printer(console, name: str) -> Callable[[int, int, dict], None]:
    """A batch job's progress lines (units done, rate, ETA, statuses), at most one every 2 s."""
    import time

    state = {"last": 0.0, "started": time.time()}

    def progress(done: int, total: int, counts: dict) -> None:
        now = time.time()
        if now - state["last"] < 2 and done < total:
            return
        state["last"] = now
        rate = done / max(now - state["started"], 1e-9)
        eta = (total - done) / rate if rate > 0 else float("inf")
        summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        console.print(
            f"[{name}] {done}/{total} ({done / max(total, 1):.0%}) {rate:.2f}/s ETA {eta:.0f}s  {summary}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )

    return progress
