"""Benchmarks, each a side-by-side run against a baseline in the same process.

``bench_judge``: pairwise image-generation judging, on the same model and the same items, by
(a) seed-style judging as the original code does it: batch 1, greedy ``generate``, parse the text
    (once with a short verdict of about 12 new tokens, once with about 128 tokens of reasoning);
(b) batched ``generate`` (left padding, token-budget batches);
(c) the logit method (one forward pass per batch, last positions' logits only).
Generation lengths are forced (min = max new tokens) so an untrained model cannot stop early and
flatter the generate paths.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__


def _pairs(n: int, size: int, seed: int):
    import numpy as np

    from .judge.types import JudgeItem
    from .synth import world

    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        scene = world.random_scene(rng)
        a = world.render_scene(scene, size)
        b = world.render_scene(world.perturb(scene, 2, rng)[0], size)
        items.append(JudgeItem("image_generation", world.caption(scene), [a, b], id=f"pair-{i}"))
    return items


def _timed(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_curate(n_prompts: int = 48, batch_size: int = 4, size: str = "small", task: str = "image_generation",
                 log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Curation throughput: the same judge and batch size in (a) a plain in-process loop over the
    same stage code, (b) Ray Data with one judge actor, (c) Ray Data with two. Each worker gets one
    torch thread (the loop too), so the ratios measure the pipeline, not thread counts. Throughput is
    steady state: prompts per second from the first committed batch to the last (actor start-up and
    model loading excluded for both); end-to-end seconds are reported as well."""
    import pyarrow as pa
    import ray
    import torch

    from .config import CurateSpec
    from .io import schema
    from .models.tiny import build_tiny_judge
    from .pipelines import batch as pipeline
    from .synth.world import generate_world

    tmp = tempfile.TemporaryDirectory(prefix="unireward-bench-curate-")
    root = Path(tmp.name)
    log(f"building a tiny judge ({size}) and a world of {n_prompts} {task} prompts ...")
    judge = build_tiny_judge(root / "judge", size=size)
    world = generate_world(str(root / "world"), n=n_prompts, seed=0, tasks=(task,))

    def spec(name: str, actors: int) -> CurateSpec:
        return CurateSpec.model_validate(dict(
            kind="curate", name=name, input=world.pools[task], output=str(root / name), judge=dict(model=str(judge)),
            resources=dict(min_actors=actors, max_actors=actors, cpus_per_actor=0.5, decode_cpus=0.5,
                           batch_size=batch_size, decode_batch_size=batch_size), max_error_fraction=1.0))

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
            chunk = pa.Table.from_pylist(rows[k:k + batch_size], schema=schema.POOL_SCHEMA)
            stage(pipeline.decode_pool_rows(chunk, s.input, s.judge.media.model_dump()))
            stamps.append((time.perf_counter(), min(k + batch_size, len(rows))))
        torch.set_num_threads(threads)
        out = dict(prompts_per_s=steady(stamps), seconds=time.perf_counter() - t_start)
        log(f"  loop, {n_threads} thread(s): {out['prompts_per_s']:.2f} prompts/s")
        return out

    results = {"loop": loop(1), "loop_all_threads": loop(os.cpu_count() or 1)}
    pipeline._ray_init()
    for actors in (1, 2):
        stamps = []
        t_start = time.perf_counter()
        pipeline.run_spec(spec(f"ray{actors}", actors),
                          lambda done, total, counts: stamps.append((time.perf_counter(), done)))
        results[f"ray_{actors}_actor{'s' if actors > 1 else ''}"] = dict(
            prompts_per_s=steady(stamps), seconds=time.perf_counter() - t_start)
        log(f"  ray, {actors} actor(s): {steady(stamps):.2f} prompts/s")
    ray.shutdown()
    tmp.cleanup()
    r1, r2 = results["ray_1_actor"]["prompts_per_s"], results["ray_2_actors"]["prompts_per_s"]
    return dict(
        results=results, ray_1_actor_vs_loop=r1 / results["loop"]["prompts_per_s"], ray_2_actors_vs_1=r2 / r1,
        ray_2_actors_vs_loop_all_threads=r2 / results["loop_all_threads"]["prompts_per_s"],
        setup=dict(task=task, prompts=n_prompts, candidates=4, batch_size=batch_size, judge_size=size,
                   torch_threads_per_worker=1, cpus=os.cpu_count(), unireward=__version__,
                   work_per_prompt="2 pairs + 4 points + 1 confirmation pair (logits)"),
    )


def bench_serve(concurrencies: Sequence[int] = (1, 4, 16, 32, 64), seconds: float = 6.0, size: str = "small",
                batch_size: int = 32, log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Closed-loop load against the reward endpoint on a tiny judge: ``c`` clients each send
    /v1/judge requests (an image-generation pair, logits method) back to back for ``seconds``.
    Throughput and p50/p99 latency with dynamic batching (``max_batch_size=batch_size``) against
    batch size 1, one replica each, on the same machine."""
    import asyncio

    import httpx
    import numpy as np
    import ray

    from .io.media import encode_image, to_data_uri
    from .models.tiny import build_tiny_judge
    from .serve import local
    from .synth import world

    tmp = tempfile.TemporaryDirectory(prefix="unireward-bench-serve-")
    judge = build_tiny_judge(Path(tmp.name) / "judge", size=size)
    rng = np.random.default_rng(0)
    scene = world.random_scene(rng)
    images = [to_data_uri(encode_image(world.render_scene(g)), "image/png")
              for g in (scene, world.perturb(scene, 2, rng)[0])]
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
        return dict(requests_per_s=len(lat) / elapsed, p50_ms=float(np.percentile(lat, 50) * 1e3),
                    p99_ms=float(np.percentile(lat, 99) * 1e3), requests=len(lat), errors=errors)

    port = 8700
    for mode, bs in (("batched", batch_size), ("batch_size_1", 1)):
        url = local.start(args=dict(judge=dict(model=str(judge)), port=port, max_batch_size=bs, max_pending=4096),
                          deployment=dict(autoscaling_config=None, num_replicas=1, ray_actor_options={"num_cpus": 1},
                                          max_ongoing_requests=max(concurrencies) + 8, max_queued_requests=-1),
                          name=f"bench-{mode}", log_level="WARNING")
        asyncio.run(load(url, 4))  # warm-up
        results[mode] = {}
        for c in concurrencies:
            results[mode][str(c)] = r = asyncio.run(load(url, c))
            log(f"  {mode:13s} concurrency {c:3d}: {r['requests_per_s']:7.1f} req/s  p50 {r['p50_ms']:7.1f} ms  "
                f"p99 {r['p99_ms']:7.1f} ms")
        local.stop(f"bench-{mode}")
    tmp.cleanup()
    speedup = {c: results["batched"][c]["requests_per_s"] / results["batch_size_1"][c]["requests_per_s"]
               for c in results["batched"]}
    return dict(results=results, speedup_batched_vs_bs1=speedup,
                setup=dict(judge_size=size, seconds_per_level=seconds, max_batch_size=batch_size,
                           request="image_generation pair, two 128x128 PNG data URIs, logits method",
                           replicas=1, cpus=os.cpu_count(), unireward=__version__))


SHAPES = {
    # Qwen2.5-VL-7B-Instruct: 8.3B parameters
    "7b": dict(text=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                         num_key_value_heads=4, mrope_section=[16, 24, 24], vocab_size=152064),
               vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
                           fullatt_block_indexes=[7, 15, 23, 31])),
    # the same code path at a size a CPU test can afford
    "test": dict(text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, mrope_section=[2, 3, 3], vocab_size=4096),
                 vision=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, fullatt_block_indexes=[1])),
}


def shaped_judge(shape: str, device: str, workdir: str, image_max_pixels: int = 512 * 512):
    """A Qwen2.5-VL judge of a real model's shape with random weights (timing only), built in memory
    on ``device``, with the tiny judge's tokenizer, processor and chat template."""
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from .models import tiny

    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {sorted(SHAPES)}")
    spec = SHAPES[shape]
    small = tiny.build_tiny_judge(workdir, size="nano", image_max_pixels=image_max_pixels)
    cfg = Qwen2_5_VLConfig.from_pretrained(small)
    text = dict(spec["text"])
    section = text.pop("mrope_section")
    cfg = Qwen2_5_VLConfig(
        text_config=dict(text, max_position_embeddings=32768, bos_token_id=None,
                         rope_parameters={"rope_type": "default", "mrope_section": section, "rope_theta": 1e6},
                         eos_token_id=cfg.text_config.eos_token_id, pad_token_id=cfg.text_config.pad_token_id),
        vision_config=dict(spec["vision"], out_hidden_size=text["hidden_size"], patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2, window_size=112),
        image_token_id=cfg.image_token_id, video_token_id=cfg.video_token_id,
        vision_start_token_id=cfg.vision_start_token_id, vision_end_token_id=cfg.vision_end_token_id,
    )
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    cfg._attn_implementation = "sdpa"
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(cfg, dtype=dtype)
    return model.eval(), AutoProcessor.from_pretrained(small)


def _bench_model(model: str | None, size: str, shape: str, device: str | None, dtype: str | None,
                 max_pixels: int | None, log: Callable[[str], None], **opts: Any):
    """(RewardModel, description, max_pixels, temp dir) of a benchmark: a given checkpoint, a tiny judge
    or a real-shaped one with random weights."""
    import torch

    from .io.media import MediaLimits
    from .judge.model import RewardModel

    tmp = tempfile.TemporaryDirectory(prefix="unireward-bench-")
    # tiny judges: images capped at 224x224 (CPU); real shapes: 512x512 images at full resolution
    max_pixels = max_pixels or (224 * 224 if shape == "tiny" else 512 * 512)
    opts = dict(device=device, dtype=dtype, media=MediaLimits(max_pixels=max_pixels), **opts)
    if model is not None:
        return RewardModel(model, **opts), model, max_pixels, tmp
    if shape == "tiny":
        from .models.tiny import build_tiny_judge

        log(f"building a tiny judge ({size}) ...")
        rm = RewardModel(build_tiny_judge(Path(tmp.name) / "judge", size=size, image_max_pixels=max_pixels), **opts)
        return rm, f"tiny Qwen2.5-VL judge ({size}), random weights", max_pixels, tmp
    dev_name = device or ("cuda" if torch.cuda.is_available() else "cpu")
    log(f"building a Qwen2.5-VL {shape}-shaped judge with random weights on {dev_name} ...")
    m, proc = shaped_judge(shape, dev_name, str(Path(tmp.name) / "proc"), image_max_pixels=max_pixels)
    rm = RewardModel.from_model(m, proc, name=f"qwen2.5-vl-{shape}-shaped (random weights)", **opts)
    return rm, rm.model_path, max_pixels, tmp


def _sync(rm) -> Callable[[], None]:
    """Waits for the judge's device (CUDA kernels run asynchronously) before a clock is read."""
    import torch

    return torch.cuda.synchronize if rm.device.type == "cuda" else (lambda: None)


def _model_setup(rm, described: str) -> dict[str, Any]:
    """The judge's part of a benchmark's recorded setup."""
    import torch

    dev = rm.device
    return dict(model=described, parameters=sum(p.numel() for p in rm.model.parameters()), device=str(dev),
                device_name=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                dtype=str(rm.dtype).replace("torch.", ""), torch_threads=torch.get_num_threads(),
                unireward=__version__)


def bench_judge(
    model: str | None = None,
    n_pairs: int = 16,
    image_size: int = 512,
    max_pixels: int | None = None,
    size: str = "mini",
    shape: str = "tiny",
    device: str | None = None,
    dtype: str | None = None,
    short_tokens: int = 12,
    long_tokens: int = 128,
    batch_size: int = 8,
    repeats: int = 3,
    seed: int = 0,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    import torch

    from .judge.parsing import parse

    rm, described, max_pixels, tmp = _bench_model(model, size, shape, device, dtype, max_pixels, log,
                                                   max_batch_size=batch_size, token_budget=1 << 30,
                                                   max_new_tokens=short_tokens)
    dev = rm.device
    sync = _sync(rm)
    items = _pairs(n_pairs, image_size, seed)
    protocol = rm.protocols.get(rm.family, "image_generation", "pair_rank")
    first = rm._encode(items[0], protocol, {})
    prompt_tokens = int(first["input_ids"].shape[1])
    visual_tokens = int((first["input_ids"] == rm.model.config.image_token_id).sum())

    def seed_style(new_tokens: int):
        def run():
            for it in items:  # the original's loop: one item at a time, generate, decode, parse
                enc = {k: (v.to(dev) if hasattr(v, "to") else v) for k, v in rm._encode(it, protocol, {}).items()}
                with torch.inference_mode():
                    out = rm.model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                            do_sample=False, temperature=None, top_p=None, top_k=None,
                                            pad_token_id=rm.pad_id)
                text = rm.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
                parse(text, protocol)
        return run

    def batched(method: str):
        def run():
            rm.generation_kwargs = {"min_new_tokens": short_tokens} if method == "generate" else {}
            rm.judge(items, method=method)
        return run

    results: dict[str, float] = {}
    for name, fn in [
        ("seed_generate_short", seed_style(short_tokens)),
        ("seed_generate_reasoning", seed_style(long_tokens)),
        ("batched_generate", batched("generate")),
        ("logits", batched("logits")),
    ]:
        log(f"timing {name} ...")
        t = _timed(fn, repeats, sync)
        results[name] = n_pairs / t
        log(f"  {name}: {results[name]:.2f} pairs/s")
    rm.generation_kwargs = {}
    base = results["seed_generate_short"]
    out: dict[str, Any] = {
        "pairs_per_s": results,
        "speedup_vs_seed": {k: v / base for k, v in results.items()},
        "speedup_logits_vs_seed": results["logits"] / base,
        "setup": dict(
            _model_setup(rm, described), n_pairs=n_pairs, image_size=image_size, max_pixels=max_pixels,
            prompt_tokens=prompt_tokens, visual_tokens=visual_tokens, batch_size=batch_size,
            short_tokens=short_tokens, long_tokens=long_tokens, repeats=repeats,
        ),
    }
    tmp.cleanup()
    return out


def bench_batching(
    model: str | None = None,
    size: str = "small",
    shape: str = "tiny",
    batch_sizes: Sequence[int] = (1, 4, 16, 32),
    n_items: int = 64,
    image_size: int = 512,
    max_pixels: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    repeats: int = 3,
    seed: int = 0,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """In-process pairs/s of the logit judge by batch size: the most that the endpoint's dynamic
    batching can gain on this device, without HTTP, Serve or the load generator."""
    rm, described, max_pixels, tmp = _bench_model(model, size, shape, device, dtype, max_pixels, log,
                                                   max_batch_size=max(batch_sizes), token_budget=1 << 30)
    sync = _sync(rm)
    items = _pairs(n_items, image_size, seed)
    rm.judge(items[: max(batch_sizes)], method="logits")  # warm-up: kernels, allocator
    rates: dict[str, float] = {}
    for bs in batch_sizes:
        rm.max_batch_size = bs
        t = _timed(lambda: rm.judge(items, method="logits"), repeats, sync)
        rates[str(bs)] = n_items / t
        log(f"  batch size {bs}: {rates[str(bs)]:.2f} pairs/s")
    base = rates[str(batch_sizes[0])]
    out = {
        "pairs_per_s": rates,
        "speedup_vs_first": {k: v / base for k, v in rates.items()},
        "setup": dict(_model_setup(rm, described), n_items=n_items, image_size=image_size, max_pixels=max_pixels,
                      repeats=repeats),
    }
    tmp.cleanup()
    return out


def bench_train(size: str = "base", steps: int = 12, batch_size: int = 4, workers: int = 2, prompts: int = 8,
                stages: Sequence[int] = (3, 2, 0), log: Callable[[str], None] = print) -> dict[str, Any]:
    """Judge SFT on Ray Train + DeepSpeed, the same model, data and steps with ZeRO-3, ZeRO-2 and
    plain data parallel (ZeRO disabled): per-worker peak memory (CUDA max allocated on GPU; the
    process's peak RSS on CPU) and step throughput (examples/s over all workers, the first logging
    window left out as warm-up)."""
    import json as _json

    from .config import TrainRewardSpec
    from .models.tiny import build_tiny_judge
    from .pipelines.train import run_train_reward
    from .synth.world import TASKS, generate_world

    import ray

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)  # the workers' lines would garble --json
    work = Path(tempfile.mkdtemp(prefix="unireward-bench-train-"))
    judge = build_tiny_judge(work / "judge", size=size)
    world = generate_world(str(work / "world"), n=prompts, seed=11, n_candidates=4)
    results: dict[str, Any] = {}
    for stage in stages:
        label = f"zero{stage}" if stage else "ddp"
        spec = TrainRewardSpec.model_validate(dict(
            kind="train_reward", name=label, model=str(judge), output=str(work / "runs"),
            data=dict(train=[dict(path=world.items[t]) for t in TASKS], eval=[dict(path=world.items["image_generation"],
                                                                                   sampling="first:4")]),
            training=dict(max_steps=steps, batch_size=batch_size, lr=1e-4, eval_every=steps, eval_before=False,
                          deepspeed=dict(zero_stage=stage)),
            resources=dict(workers=workers)))
        log(f"training {label}: {steps} steps, {workers} workers, micro-batch {batch_size}")
        run_train_reward(spec, log)
        recs = [_json.loads(x) for x in (work / "runs" / label / "logs" / "metrics.jsonl").read_text().splitlines()]
        windows = [r for r in recs if "train/examples_per_s" in r]
        timed = windows[1:] or windows
        results[label] = dict(examples_per_s=statistics.median(r["train/examples_per_s"] for r in timed),
                              peak_memory_mb=max(r["train/peak_memory_mb"] for r in windows),
                              final_loss=windows[-1]["train/loss"])
    import json as _j

    params = _j.loads((Path(judge) / "unireward_tiny.json").read_text())["parameters"]
    base = results.get("ddp")
    ratios = {f"{k}_vs_ddp": dict(throughput=v["examples_per_s"] / base["examples_per_s"],
                                  peak_memory=v["peak_memory_mb"] / base["peak_memory_mb"])
              for k, v in results.items() if base and k != "ddp"}
    return dict(results=results, ratios=ratios, setup=dict(size=size, parameters=params, steps=steps,
                                                             batch_size=batch_size, workers=workers,
                                                             unireward=__version__, device="cpu"))
