"""Benchmarks, each a side-by-side run against a baseline in the same process or on the same machine
(``unireward bench ...``; results and how to reproduce them in docs/BENCHMARKS.md)."""

from .curate import bench_curate
from .eval import bench_eval
from .judge import bench_batching, bench_judge
from .rewards import bench_rewards
from .serve import bench_serve
from .train import bench_train
from .vision import bench_vision

__all__ = [
    "bench_batching",
    "bench_curate",
    "bench_eval",
    "bench_judge",
    "bench_rewards",
    "bench_serve",
    "bench_train",
    "bench_vision",
]
