"""``unireward bench train``: judge SFT with ZeRO-3 and ZeRO-2 against plain data parallel (same
model, data and steps)."""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import __version__


def bench_train(
    size: str = "base",
    steps: int = 12,
    batch_size: int = 4,
    workers: int = 2,
    prompts: int = 8,
    stages: Sequence[int] = (3, 2, 0),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Judge SFT on Ray Train + DeepSpeed, the same model, data and steps with ZeRO-3, ZeRO-2 and
    plain data parallel (ZeRO disabled): per-worker peak memory (CUDA max allocated on GPU; the
    process's peak RSS on CPU) and step throughput (examples/s over all workers, the first logging
    window left out as warm-up)."""
    import json as _json

    import ray

    from ..config import TrainRewardSpec
    from ..models.tiny import build_tiny_judge
    from ..pipelines.train import run_train_reward
    from ..synth.world import TASKS, generate_world

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)  # the workers' lines would garble --json
    work = Path(tempfile.mkdtemp(prefix="unireward-bench-train-"))
    judge = build_tiny_judge(work / "judge", size=size)
    world = generate_world(str(work / "world"), n=prompts, seed=11, n_candidates=4)
    results: dict[str, Any] = {}
    for stage in stages:
        label = f"zero{stage}" if stage else "ddp"
        spec = TrainRewardSpec.model_validate(
            dict(
                kind="train_reward",
                name=label,
                model=str(judge),
                output=str(work / "runs"),
                data=dict(
                    train=[dict(path=world.items[t]) for t in TASKS],
                    eval=[dict(path=world.items["image_generation"], sampling="first:4")],
                ),
                training=dict(
                    max_steps=steps,
                    batch_size=batch_size,
                    lr=1e-4,
                    eval_every=steps,
                    eval_before=False,
                    deepspeed=dict(zero_stage=stage),
                ),
                resources=dict(workers=workers),
            )
        )
        log(f"training {label}: {steps} steps, {workers} workers, micro-batch {batch_size}")
        run_train_reward(spec, log)
        recs = [_json.loads(x) for x in (work / "runs" / label / "logs" / "metrics.jsonl").read_text().splitlines()]
        windows = [r for r in recs if "train/examples_per_s" in r]
        timed = windows[1:] or windows
        results[label] = dict(
            examples_per_s=statistics.median(r["train/examples_per_s"] for r in timed),
            peak_memory_mb=max(r["train/peak_memory_mb"] for r in windows),
            final_loss=windows[-1]["train/loss"],
        )
    import json as _j

    params = _j.loads((Path(judge) / "unireward_tiny.json").read_text())["parameters"]
    base = results.get("ddp")
    ratios = {
        f"{k}_vs_ddp": dict(
            throughput=v["examples_per_s"] / base["examples_per_s"],
            peak_memory=v["peak_memory_mb"] / base["peak_memory_mb"],
        )
        for k, v in results.items()
        if base and k != "ddp"
    }
    return dict(
        results=results,
        ratios=ratios,
        setup=dict(
            size=size,
            parameters=params,
            steps=steps,
            batch_size=batch_size,
            workers=workers,
            unireward=__version__,
            device="cpu",
        ),
    )
