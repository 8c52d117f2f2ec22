"""``unireward bench eval``: a benchmark evaluation on Ray Data (one judge actor) against a plain loop
over the same stage code, and the driver's peak memory for a small and a large GenAI-Bench-layout
copy (it must not grow with the number of items: the units stream through Parquet parts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import __version__

_DRIVER = """
import json, resource, sys, time
from unireward.config import parse_spec
from unireward.pipelines.eval import run_eval
spec = parse_spec(json.loads(sys.argv[1]), "bench")
stamps = []
t = time.perf_counter()
report = run_eval(spec, lambda done, total, counts: stamps.append((time.perf_counter(), done)))
(t0, d0), (t1, d1) = stamps[0], stamps[-1]
print(json.dumps(dict(peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      units=report["units"], seconds=time.perf_counter() - t,
                      units_per_s=(d1 - d0) / (t1 - t0) if t1 > t0 else None)))
"""


def bench_eval(
    n_small: int = 100,
    n_large: int = 1000,
    size: str = "nano",
    batch_size: int = 32,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """(a) throughput: the large copy judged by a plain in-process loop (the same decode and stage
    code, batch after batch, one torch thread) and by Ray Data with one judge actor (steady state,
    actor start-up excluded; the large copy, so that a progress report's granularity is small
    against the run); (b) memory: each copy evaluated by a fresh driver process, its peak
    resident memory read at the end."""
    import pyarrow.parquet as pq
    import torch

    from ..config import parse_spec
    from ..io import schema, storage
    from ..models.tiny import build_tiny_judge
    from ..pipelines import batch as pipeline
    from ..pipelines.eval import EvalStage, prepare_units
    from ..synth.benchmarks import genai_bench

    tmp = tempfile.TemporaryDirectory(prefix="unireward-bench-eval-")
    root = Path(tmp.name)
    log(f"building a tiny judge ({size}) and GenAI-Bench-layout copies of {n_small} and {n_large} pairs ...")
    judge = build_tiny_judge(root / "judge", size=size)
    copies = {
        n: genai_bench(str(root / f"genai-{n}"), n=n, configs=("image_generation",), splits=("test_v1",))
        for n in (n_small, n_large)
    }

    def spec_data(n: int, name: str) -> dict[str, Any]:
        return dict(
            kind="eval",
            name=name,
            benchmark="genai-bench",
            data=copies[n],
            output=str(root / name),
            judge=dict(model=str(judge)),
            resamples=0,
            resources=dict(
                min_actors=1,
                max_actors=1,
                cpus_per_actor=0.5,
                decode_cpus=0.5,
                batch_size=batch_size,
                decode_batch_size=batch_size,
            ),
        )

    # (a) the loop: the same decode function and stage, in process, one batch after the other
    spec = parse_spec(spec_data(n_large, "loop"), "bench")
    units = storage.join(spec.output, "_units")
    prepare_units(spec, units)
    threads = torch.get_num_threads()
    stage = EvalStage(spec.model_dump_json())
    torch.set_num_threads(1)
    stamps, done = [], 0
    for part in sorted(Path(units).glob("part-*.parquet")):
        table = pq.read_table(part)
        for k in range(0, table.num_rows, batch_size):
            chunk = table.slice(k, batch_size)
            stage(pipeline.decode_rows(chunk, units, spec.judge.model_dump_json(), schema.EVAL_UNIT_SCHEMA))
            done += chunk.num_rows
            stamps.append((time.perf_counter(), done))
    torch.set_num_threads(threads)
    (t0, d0), (t1, d1) = stamps[0], stamps[-1]
    loop = (d1 - d0) / (t1 - t0)
    log(f"  loop: {loop:.2f} pairs/s")

    # (a) Ray with one actor, and (b) the driver's memory, each run in a fresh process
    runs = {}
    for n in (n_small, n_large):
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(
                [str(Path(__file__).resolve().parents[2])] + [p for p in [os.environ.get("PYTHONPATH")] if p]
            ),
        )
        out = subprocess.run(
            [sys.executable, "-c", _DRIVER, json.dumps(spec_data(n, f"ray-{n}"))],
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if out.returncode:
            raise RuntimeError(f"the eval of {n} pairs failed:\n{out.stderr[-3000:]}")
        runs[n] = json.loads(out.stdout.strip().splitlines()[-1])
        log(
            f"  ray, 1 actor, {n} pairs: {runs[n]['units_per_s']:.2f} pairs/s, driver peak "
            f"{runs[n]['peak_rss_mb']:.0f} MB, {runs[n]['seconds']:.0f} s"
        )
    tmp.cleanup()
    small, large = runs[n_small], runs[n_large]
    return dict(
        loop_pairs_per_s=loop,
        ray_1_actor_pairs_per_s=large["units_per_s"],
        ray_1_actor_vs_loop=large["units_per_s"] / loop,
        driver_peak_rss_mb={str(n_small): small["peak_rss_mb"], str(n_large): large["peak_rss_mb"]},
        driver_memory_ratio=large["peak_rss_mb"] / small["peak_rss_mb"],
        runs={str(k): v for k, v in runs.items()},
        setup=dict(
            benchmark="genai-bench (image_generation, test_v1 layout; synthetic)",
            judge_size=size,
            batch_size=batch_size,
            swap=True,
            method="logits",
            cpus=os.cpu_count(),
            torch_threads_per_worker=1,
            unireward=__version__,
        ),
    )
