"""``unireward bench rewards``: group rewards for RL through ``/v1/rewards`` against the same
judgments sent as individual ``/v1/judge`` requests (one per pair, both orders, the client doing the
win-rate arithmetic), at the same client concurrency, on one endpoint on this machine; and the cost
of a pointwise group beside a pairwise one."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import __version__


def _group_bodies(n_groups: int, g: int, seed: int) -> list[tuple[str, list[str]]]:
    """``n_groups`` captions, each with ``g`` distinct candidate images (PNG data URIs)."""
    import numpy as np

    from ..io.media import encode_image, to_data_uri
    from ..synth import world

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_groups):
        scene = world.random_scene(rng)
        images = [world.render_scene(scene)] + [
            world.render_scene(world.perturb(scene, 1 + k % 3, rng)[0]) for k in range(g - 1)
        ]
        out.append((world.caption(scene), [to_data_uri(encode_image(im), "image/png") for im in images]))
    return out


def _stats(latencies: Sequence[float], elapsed: float, errors: int) -> dict[str, float]:
    import numpy as np

    lat = np.asarray(latencies)
    return dict(
        groups=len(lat),
        groups_per_s=len(lat) / elapsed,
        p50_s=float(np.percentile(lat, 50)),
        p99_s=float(np.percentile(lat, 99)),
        errors=errors,
    )


async def _via_group_route(url: str, groups, scheme: str, concurrency: int) -> dict[str, float]:
    """``concurrency`` groups in flight, one /v1/rewards request each."""
    import httpx

    sem = asyncio.Semaphore(concurrency)
    latencies, errors = [], 0
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=concurrency)) as c:

        async def one(prompt, cands):
            nonlocal errors
            async with sem:
                t = time.perf_counter()
                r = await c.post(
                    "/v1/rewards",
                    json=dict(task="image_generation", prompt=prompt, candidates=cands, scheme=scheme, swap=True),
                )
                if r.status_code == 200 and None not in r.json()["rewards"]:
                    latencies.append(time.perf_counter() - t)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one(p, cs) for p, cs in groups))
        return _stats(latencies, time.perf_counter() - t0, errors)


async def _via_judge_route(url: str, groups, concurrency: int) -> dict[str, float]:
    """The same groups as individual /v1/judge requests (each pair once, swap=true: both orders),
    ``concurrency`` requests in flight, a group's win rates computed here from its verdicts."""
    import httpx

    sem = asyncio.Semaphore(concurrency)
    latencies, errors = [], 0
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=concurrency)) as c:

        async def pair(prompt, a, b):
            async with sem:
                r = await c.post(
                    "/v1/judge", json=dict(task="image_generation", prompt=prompt, candidates=[a, b], swap=True)
                )
                return r.json() if r.status_code == 200 else None

        t0 = time.perf_counter()
        for prompt, cands in groups:
            t = time.perf_counter()
            pairs = [(i, k) for i in range(len(cands)) for k in range(i + 1, len(cands))]
            answers = await asyncio.gather(*(pair(prompt, cands[i], cands[k]) for i, k in pairs))
            if any(a is None for a in answers):
                errors += 1
                continue
            points = [0.0] * len(cands)
            for (i, k), a in zip(pairs, answers):
                for order, (x, y) in zip(a.get("orders") or [a], ((i, k), (k, i))):
                    w = {"first": 1.0, "second": 0.0}.get(order.get("verdict"), 0.5)  # each order in its own terms
                    points[x] += w
                    points[y] += 1.0 - w
            latencies.append(time.perf_counter() - t)
        return _stats(latencies, time.perf_counter() - t0, errors)


def bench_rewards(
    group_sizes: Sequence[int] = (8, 16),
    n_groups: int = 8,
    concurrency: int = 4,
    size: str = "small",
    judge: str | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Groups per second and p50/p99 group latency: ``/v1/rewards`` (pairwise_winrate, swap) against
    the same judgments as ``/v1/judge`` requests at the same client concurrency, for each group
    size; and pointwise groups through ``/v1/rewards``. One replica (1 CPU) on this machine."""
    import ray

    from ..models.tiny import build_tiny_judge
    from ..serve import local

    tmp = tempfile.TemporaryDirectory(prefix="unireward-bench-rewards-")
    judge_dir = judge or str(build_tiny_judge(Path(tmp.name) / "judge", size=size))
    if not ray.is_initialized():
        ray.init(include_dashboard=False, ignore_reinit_error=True)
    url = local.start(
        args=dict(judge=dict(model=judge_dir), port=8710, max_pending=4096, max_group=max(group_sizes)),
        deployment=dict(
            autoscaling_config=None,
            num_replicas=1,
            ray_actor_options={"num_cpus": 1, "num_gpus": 0},
            max_ongoing_requests=4096,
            max_queued_requests=-1,
        ),
        name="bench-rewards",
        log_level="WARNING",
    )
    results: dict[str, Any] = {}
    try:
        asyncio.run(_via_group_route(url, _group_bodies(2, 4, 99), "pairwise_winrate", 2))  # warm-up
        for g in group_sizes:
            groups = _group_bodies(n_groups, g, seed=g)
            r = dict(
                rewards_route=asyncio.run(_via_group_route(url, groups, "pairwise_winrate", concurrency)),
                judge_route=asyncio.run(_via_judge_route(url, groups, concurrency)),
                pointwise=asyncio.run(_via_group_route(url, groups, "pointwise", concurrency)),
                judgments_per_group=dict(pairwise_winrate=g * (g - 1), pointwise=g),
            )
            r["speedup_rewards_vs_judge"] = r["rewards_route"]["groups_per_s"] / r["judge_route"]["groups_per_s"]
            r["pointwise_vs_pairwise_groups_per_s"] = (
                r["pointwise"]["groups_per_s"] / r["rewards_route"]["groups_per_s"]
            )
            results[str(g)] = r
            for name in ("rewards_route", "judge_route", "pointwise"):
                s = r[name]
                log(
                    f"  G={g:3d} {name:14s} {s['groups_per_s']:7.3f} groups/s  p50 {s['p50_s']:6.2f} s  "
                    f"p99 {s['p99_s']:6.2f} s  errors {s['errors']}"
                )
    finally:
        local.stop("bench-rewards")
        tmp.cleanup()
    return dict(
        results=results,
        speedup_rewards_vs_judge={g: r["speedup_rewards_vs_judge"] for g, r in results.items()},
        setup=dict(
            judge=judge or f"tiny ({size}), random weights",
            groups_per_size=n_groups,
            client_concurrency=concurrency,
            scheme="pairwise_winrate, swap (both orders), logits method; 128x128 PNG data URIs",
            baseline="/v1/judge, one request per pair with swap=true, win rates computed by the client",
            replicas=1,
            replica_cpus=1,
            cpus=os.cpu_count(),
            unireward=__version__,
        ),
    )
