"""``unireward bench serve``: closed-loop load on the reward endpoint, dynamic batching against batch
size 1, on the same machine."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import __version__


def bench_serve(
    concurrencies: Sequence[int] = (1, 4, 16, 32, 64),
    seconds: float = 6.0,
    size: str = "small",
    batch_size: int = 32,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Closed-loop load against the reward endpoint on a tiny judge: ``c`` clients each send
    /v1/judge requests (an image-generation pair, logits method) back to back for ``seconds``.
    Throughput and p50/p99 latency with dynamic batching (``max_batch_size=batch_size``) against
    batch size 1, one replica each, on the same machine."""
    import asyncio

    import httpx
    import numpy as np
    import ray

    from ..io.media import encode_image, to_data_uri
    from ..models.tiny import build_tiny_judge
    from ..serve import local
    from ..synth import world

    tmp = tempfile.TemporaryDirectory(prefix="unireward-bench-serve-")
    judge = build_tiny_judge(Path(tmp.name) / "judge", size=size)
    rng = np.random.default_rng(0)
    scene = world.random_scene(rng)
    images = [
        to_data_uri(encode_image(world.render_scene(g)), "image/png") for g in (scene, world.perturb(scene, 2, rng)[0])
    ]
    body = dict(task="image_generation", prompt=world.caption(scene), candidates=images)
    if not ray.is_initialized():
        ray.init(include_dashboard=False, ignore_reinit_error=True)
    results: dict[str, Any] = {}

    async def load(url: str, c: int) -> dict[str, float]:
        latencies: list[float] = []
        errors = 0
        stop_at = time.perf_counter() + seconds
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=c)) as client:

            async def worker():
                nonlocal errors
                while time.perf_counter() < stop_at:
                    t = time.perf_counter()
                    r = await client.post("/v1/judge", json=body)
                    if r.status_code == 200:
                        latencies.append(time.perf_counter() - t)
                    else:
                        errors += 1

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(c)))
            elapsed = time.perf_counter() - t0
        lat = np.asarray(latencies)
        return dict(
            requests_per_s=len(lat) / elapsed,
            p50_ms=float(np.percentile(lat, 50) * 1e3),
            p99_ms=float(np.percentile(lat, 99) * 1e3),
            requests=len(lat),
            errors=errors,
        )

    port = 8700
    for mode, bs in (("batched", batch_size), ("batch_size_1", 1)):
        url = local.start(
            args=dict(judge=dict(model=str(judge)), port=port, max_batch_size=bs, max_pending=4096),
            deployment=dict(
                autoscaling_config=None,
                num_replicas=1,
                ray_actor_options={"num_cpus": 1},
                max_ongoing_requests=max(concurrencies) + 8,
                max_queued_requests=-1,
            ),
            name=f"bench-{mode}",
            log_level="WARNING",
        )
        asyncio.run(load(url, 4))  # warm-up
        results[mode] = {}
        for c in concurrencies:
            results[mode][str(c)] = r = asyncio.run(load(url, c))
            log(
                f"  {mode:13s} concurrency {c:3d}: {r['requests_per_s']:7.1f} req/s  p50 {r['p50_ms']:7.1f} ms  "
                f"p99 {r['p99_ms']:7.1f} ms"
            )
        local.stop(f"bench-{mode}")
    tmp.cleanup()
    speedup = {
        c: results["batched"][c]["requests_per_s"] / results["batch_size_1"][c]["requests_per_s"]
        for c in results["batched"]
    }
    return dict(
        results=results,
        speedup_batched_vs_bs1=speedup,
        setup=dict(
            judge_size=size,
            seconds_per_level=seconds,
            max_batch_size=batch_size,
            request="image_generation pair, two 128x128 PNG data URIs, logits method",
            replicas=1,
            cpus=os.cpu_count(),
            unireward=__version__,
        ),
    )
