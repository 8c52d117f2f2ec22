"""``unireward bench ...``: the benchmark commands (each prints a table, or JSON with ``--json``)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from .console import emit, progress_log, quiet_libraries

app = typer.Typer(
    help="Benchmarks (side by side against a baseline in the same process or on the same machine).",
    no_args_is_help=True,
)


@app.command("judge")
def judge(
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    model: Optional[str] = typer.Option(None, help="an existing judge checkpoint (default: build one)"),
    shape: str = typer.Option("tiny", help="tiny, or 7b: a Qwen2.5-VL-7B-shaped random model (needs a GPU)"),
    size: str = typer.Option("mini", help="tiny judge size: nano, small, mini or base"),
    pairs: int = typer.Option(16, help="pairs per timed run"),
    batch_size: int = typer.Option(8, help="batch size of the batched methods"),
    repeats: int = typer.Option(3, help="timed runs per method (median)"),
    device: Optional[str] = typer.Option(None),
    dtype: Optional[str] = typer.Option(None),
    stages: Optional[bool] = typer.Option(
        None, "--stages/--no-stages", help="time per stage, FLOPs and TFLOP/s (default: on for real shapes)"
    ),
    video_frames: int = typer.Option(8, help="stages: frames per video of the video pairs"),
    video_size: int = typer.Option(336, help="stages: video frame side in pixels"),
) -> None:
    """One item at a time (batch 1, generate, parse) vs batched generate vs the logit method; with
    --stages, the logit method's preprocess / vision tower / language model breakdown for image and
    video pairs, achieved TFLOP/s and the fraction of the bf16 peak."""
    quiet_libraries()
    from .bench import bench_judge

    r = bench_judge(
        model=model,
        n_pairs=pairs,
        size=size,
        shape=shape,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        repeats=repeats,
        stages=stages,
        video_frames=video_frames,
        video_size=video_size,
        log=progress_log(as_json),
    )
    emit(
        r,
        as_json,
        lambda r: [
            f"\n{'method':28s} {'pairs/s':>10s} {'vs one at a time':>17s}",
            *(f"{k:28s} {v:10.2f} {r['speedup_vs_one_at_a_time'][k]:16.2f}x" for k, v in r["pairs_per_s"].items()),
            *(
                f"{kind}: {s['pairs_per_s_device']:.2f} pairs/s on the device, {s['achieved_tflops']:.2f} TFLOP/s; "
                f"vision {s['share_of_forward']['vision_tower']:.0%} of the forward; preprocess "
                f"{s['seconds']['preprocess'] / s['pairs'] * 1e3:.1f} ms per pair"
                for kind, s in (r.get("stages") or {}).items()
            ),
            json.dumps(r["setup"]),
        ],
    )


@app.command("curate")
def curate(
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    prompts: int = typer.Option(48, help="pool rows (prompts with 4 candidates each)"),
    batch_size: int = typer.Option(4, help="prompts per judge call"),
    size: str = typer.Option("small", help="tiny judge size: nano, small, mini or base"),
) -> None:
    """Curation throughput: Ray Data (1 and 2 judge actors) against a plain in-process loop."""
    quiet_libraries()
    from .bench import bench_curate

    r = bench_curate(n_prompts=prompts, batch_size=batch_size, size=size, log=progress_log(as_json))
    emit(
        r,
        as_json,
        lambda r: [
            f"\n{'pipeline':18s} {'prompts/s':>10s} {'seconds':>9s}",
            *(f"{k:18s} {v['prompts_per_s']:10.2f} {v['seconds']:9.1f}" for k, v in r["results"].items()),
            f"ray (1 actor) / loop: {r['ray_1_actor_vs_loop']:.2f}   ray 2 actors / 1: {r['ray_2_actors_vs_1']:.2f}",
            json.dumps(r["setup"]),
        ],
    )


@app.command("train")
def train(
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    size: str = typer.Option("base", help="tiny judge size: nano, small, mini or base"),
    steps: int = typer.Option(12, help="optimizer steps per run"),
    batch_size: int = typer.Option(4, help="examples per worker per step"),
    workers: int = typer.Option(2, help="Ray Train workers"),
) -> None:
    """Judge training: ZeRO-3 and ZeRO-2 against plain data parallel (same model, data, steps)."""
    quiet_libraries()
    from .bench import bench_train

    r = bench_train(size=size, steps=steps, batch_size=batch_size, workers=workers, log=progress_log(as_json))
    emit(
        r,
        as_json,
        lambda r: [
            f"\n{'run':8s} {'examples/s':>11s} {'peak MB/worker':>15s} {'final loss':>11s}",
            *(
                f"{k:8s} {v['examples_per_s']:11.2f} {v['peak_memory_mb']:15.0f} {v['final_loss']:11.4f}"
                for k, v in r["results"].items()
            ),
            *(
                f"{k}: throughput {v['throughput']:.2f}x, peak memory {v['peak_memory']:.2f}x"
                for k, v in r["ratios"].items()
            ),
            json.dumps(r["setup"]),
        ],
    )


@app.command("batching")
def batching(
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    model: Optional[str] = typer.Option(None, help="an existing judge checkpoint (default: build one)"),
    shape: str = typer.Option("tiny", help="tiny, or 7b: a Qwen2.5-VL-7B-shaped random model (needs a GPU)"),
    size: str = typer.Option("small", help="tiny judge size"),
    batch_size: Optional[list[int]] = typer.Option(None, help="batch sizes (default 1 4 16 32)"),
    items: int = typer.Option(64, help="pairs per timed run"),
    repeats: int = typer.Option(3),
    device: Optional[str] = typer.Option(None),
    dtype: Optional[str] = typer.Option(None),
) -> None:
    """In-process judge throughput by batch size: the ceiling of the endpoint's dynamic batching."""
    quiet_libraries()
    from .bench import bench_batching

    r = bench_batching(
        model=model,
        size=size,
        shape=shape,
        batch_sizes=tuple(batch_size or (1, 4, 16, 32)),
        n_items=items,
        repeats=repeats,
        device=device,
        dtype=dtype,
        log=progress_log(as_json),
    )
    emit(
        r,
        as_json,
        lambda r: [
            "speed-up over the first batch size: "
            + ", ".join(f"{b}: {v:.2f}x" for b, v in r["speedup_vs_first"].items())
        ],
    )


@app.command("serve")
def serve(
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    seconds: float = typer.Option(6.0, help="seconds of load per concurrency level"),
    size: str = typer.Option("small", help="tiny judge size"),
    concurrency: Optional[list[int]] = typer.Option(None, help="levels (default 1 4 16 32 64)"),
) -> None:
    """Closed-loop load on the reward endpoint: dynamic batching against batch size 1."""
    quiet_libraries()
    from .bench import bench_serve

    r = bench_serve(
        concurrencies=tuple(concurrency or (1, 4, 16, 32, 64)), seconds=seconds, size=size, log=progress_log(as_json)
    )
    emit(
        r,
        as_json,
        lambda r: [
            "speed-up of dynamic batching by concurrency: "
            + ", ".join(f"{c}: {v:.2f}x" for c, v in r["speedup_batched_vs_bs1"].items())
        ],
    )


@app.command("eval")
def eval_(
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    small: int = typer.Option(100, help="pairs in the small copy (the driver's memory, beside the large one's)"),
    large: int = typer.Option(1000, help="pairs in the large copy (also the throughput comparison)"),
    size: str = typer.Option("nano", help="tiny judge size"),
    batch_size: int = typer.Option(32, help="pairs per judge batch, in both the loop and the Ray run"),
) -> None:
    """Benchmark evaluation: Ray Data (1 judge actor) against an in-process loop, and the driver's
    peak memory for a small and a large GenAI-Bench-layout copy."""
    quiet_libraries()
    from .bench import bench_eval

    r = bench_eval(n_small=small, n_large=large, size=size, batch_size=batch_size, log=progress_log(as_json))
    emit(
        r,
        as_json,
        lambda r: [
            f"\nloop {r['loop_pairs_per_s']:.2f} pairs/s, ray (1 actor) {r['ray_1_actor_pairs_per_s']:.2f} pairs/s: "
            f"{r['ray_1_actor_vs_loop']:.2f}x",
            "driver peak memory: "
            + ", ".join(f"{n} pairs {mb:.0f} MB" for n, mb in r["driver_peak_rss_mb"].items())
            + f" ({r['driver_memory_ratio']:.2f}x)",
            json.dumps(r["setup"]),
        ],
    )


@app.command("rewards")
def rewards(
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    group_size: Optional[list[int]] = typer.Option(None, help="group sizes G (default 8 16)"),
    groups: int = typer.Option(8, help="groups per size and route"),
    concurrency: int = typer.Option(4, help="requests in flight, the same on both routes"),
    size: str = typer.Option("small", help="tiny judge size (ignored with --model)"),
    model: Optional[str] = typer.Option(None, help="a judge checkpoint folder instead of a tiny one"),
) -> None:
    """Group rewards for RL: /v1/rewards against the same judgments as /v1/judge requests, and
    pointwise against pairwise cost per group."""
    quiet_libraries()
    from .bench import bench_rewards

    r = bench_rewards(
        group_sizes=tuple(group_size or (8, 16)),
        n_groups=groups,
        concurrency=concurrency,
        size=size,
        judge=model,
        log=progress_log(as_json),
    )
    emit(
        r,
        as_json,
        lambda r: [
            "groups/s of /v1/rewards over /v1/judge: "
            + ", ".join(f"G={g}: {v:.2f}x" for g, v in r["speedup_rewards_vs_judge"].items()),
            "pointwise: "
            + ", ".join(
                f"G={g}: {x['pointwise_vs_pairwise_groups_per_s']:.2f}x more groups/s than pairwise"
                for g, x in r["results"].items()
            ),
        ],
    )


@app.command("vision")
def vision(
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    depth: int = typer.Option(4, help="vision blocks (the 7B tower has 32; the ratio is per block)"),
    images: int = typer.Option(4, help="images per forward"),
    image_size: int = typer.Option(448, help="image side in pixels"),
    video_frames: int = typer.Option(0, help="also a video of this many frames at 336x336"),
    repeats: int = typer.Option(3, help="timed forwards per path (median)"),
    device: Optional[str] = typer.Option(None),
) -> None:
    """The vision tower: batched span attention against the per-window loop (7B vision configuration)."""
    quiet_libraries()
    from .bench import bench_vision

    r = bench_vision(
        depth=depth,
        images=images,
        image_size=image_size,
        video_frames=video_frames,
        device=device,
        repeats=repeats,
        log=progress_log(as_json),
    )
    emit(
        r,
        as_json,
        lambda r: [
            f"per-window loop {r['seconds_per_forward']['loop']:.3f} s, batched {r['seconds_per_forward']['batched']:.3f} s"
            f" per forward: {r['speedup_batched_vs_loop']:.2f}x (max abs difference {r['max_abs_diff']:.2e})",
            json.dumps(r["setup"]),
        ],
    )
