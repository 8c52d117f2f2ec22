"""``unireward bench curate``: curation on Ray Data (one and two judge actors) against a plain loop
over the same stage code, in the same process."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import __version__


def bench_curate(
    n_prompts: int = 48,
    batch_size: int = 4,
    size: str = "small",
    task: str = "image_generation",
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Curation throughput: the same judge and batch size in (a) a plain in-process loop over the
    same stage code, (b) Ray Data with one judge actor, (c) Ray Data with two. Each worker gets one
    torch thread (the loop too), so the ratios measure the pipeline, not thread counts. Throughput is
    steady state: prompts per second from the first committed batch to the last (actor start-up and
    model loading excluded for both); end-to-end seconds are reported as well."""
    import pyarrow as pa
    import ray
    import torch

    from ..config import CurateSpec
    from ..io import schema
    from ..models.tiny import build_tiny_judge
    from ..pipelines import batch as pipeline
    from ..synth.world import generate_world

    tmp = tempfile.TemporaryDirectory(prefix="unireward-bench-curate-")
    root = Path(tmp.name)
    log(f"building a tiny judge ({size}) and a world of {n_prompts} {task} prompts ...")
    judge = build_tiny_judge(root / "judge", size=size)
    world = generate_world(str(root / "world"), n=n_prompts, seed=0, tasks=(task,))

    def spec(name: str, actors: int) -> CurateSpec:
        return CurateSpec.model_validate(
            dict(
                kind="curate",
                name=name,
                input=world.pools[task],
                output=str(root / name),
                judge=dict(model=str(judge)),
                resources=dict(
                    min_actors=actors,
                    max_actors=actors,
                    cpus_per_actor=0.5,
                    decode_cpus=0.5,
                    batch_size=batch_size,
                    decode_batch_size=batch_size,
                ),
                max_error_fraction=1.0,
            )
        )

    def steady(stamps: list[tuple[float, int]]) -> float:
        (t0, d0), (t1, d1) = stamps[0], stamps[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else float("nan")

    # (a) the plain loop: the same decode function and judge stage, called in process, one batch after
    # the other (decoding does not overlap judging), with 1 torch thread and with all cores
    def loop(n_threads: int) -> dict[str, float]:
        threads = torch.get_num_threads()
        torch.set_num_threads(n_threads)
        t_start = time.perf_counter()
        s = spec(f"loop{n_threads}", 1)
        stage = pipeline.CurateStage(s.model_dump_json())
        torch.set_num_threads(n_threads)  # the stage set its own thread count
        rows = schema.read_parquet(world.pools[task])
        stamps = []
        for k in range(0, len(rows), batch_size):
            chunk = pa.Table.from_pylist(rows[k : k + batch_size], schema=schema.POOL_SCHEMA)
            stage(pipeline.decode_pool_rows(chunk, s.input, s.judge.model_dump_json()))
            stamps.append((time.perf_counter(), min(k + batch_size, len(rows))))
        torch.set_num_threads(threads)
        out = dict(prompts_per_s=steady(stamps), seconds=time.perf_counter() - t_start)
        log(f"  loop, {n_threads} thread(s): {out['prompts_per_s']:.2f} prompts/s")
        return out

    results = {"loop": loop(1), "loop_all_threads": loop(os.cpu_count() or 1)}
    pipeline.init_ray()
    for actors in (1, 2):
        stamps = []
        t_start = time.perf_counter()
        pipeline.run_spec(
            spec(f"ray{actors}", actors), lambda done, total, counts: stamps.append((time.perf_counter(), done))
        )
        results[f"ray_{actors}_actor{'s' if actors > 1 else ''}"] = dict(
            prompts_per_s=steady(stamps), seconds=time.perf_counter() - t_start
        )
        log(f"  ray, {actors} actor(s): {steady(stamps):.2f} prompts/s")
    ray.shutdown()
    tmp.cleanup()
    r1, r2 = results["ray_1_actor"]["prompts_per_s"], results["ray_2_actors"]["prompts_per_s"]
    return dict(
        results=results,
        ray_1_actor_vs_loop=r1 / results["loop"]["prompts_per_s"],
        ray_2_actors_vs_1=r2 / r1,
        ray_2_actors_vs_loop_all_threads=r2 / results["loop_all_threads"]["prompts_per_s"],
        setup=dict(
            task=task,
            prompts=n_prompts,
            candidates=4,
            batch_size=batch_size,
            judge_size=size,
            torch_threads_per_worker=1,
            cpus=os.cpu_count(),
            unireward=__version__,
            work_per_prompt="2 pairs + 4 points + 1 confirmation pair (logits)",
        ),
    )
