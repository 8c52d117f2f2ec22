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

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

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


def build_7b_shaped_judge(out: str) -> str:
    """A Qwen2.5-VL-7B-Instruct-shaped judge with random weights (timing only; a GPU is needed)."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from .models import tiny

    tiny.build_tiny_judge(out, size="nano")  # tokenizer, processor and chat template
    cfg = Qwen2_5_VLConfig.from_pretrained(out)
    big = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                         num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
                         rope_parameters={"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1e6},
                         eos_token_id=cfg.text_config.eos_token_id, pad_token_id=cfg.text_config.pad_token_id),
        vision_config=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                           fullatt_block_indexes=[7, 15, 23, 31]),
        image_token_id=cfg.image_token_id, video_token_id=cfg.video_token_id,
        vision_start_token_id=cfg.vision_start_token_id, vision_end_token_id=cfg.vision_end_token_id,
    )
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2_5_VLForConditionalGeneration(big).to(torch.bfloat16)
    model.save_pretrained(out)
    return out


def bench_judge(
    model: str | None = None,
    n_pairs: int = 16,
    image_size: int = 512,
    max_pixels: int = 224 * 224,
    size: str = "base",
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

    from .io.media import MediaLimits
    from .judge.model import RewardModel
    from .judge.parsing import parse

    tmp = None
    if model is None:
        tmp = tempfile.TemporaryDirectory(prefix="unireward-bench-")
        model = str(Path(tmp.name) / "judge")
        if shape == "7b":
            log("building a Qwen2.5-VL-7B-shaped judge with random weights ...")
            build_7b_shaped_judge(model)
        else:
            from .models.tiny import build_tiny_judge

            log(f"building a tiny judge ({size}) ...")
            build_tiny_judge(model, size=size, image_max_pixels=max_pixels)
    limits = MediaLimits(max_pixels=max_pixels)
    rm = RewardModel(model, device=device, dtype=dtype, media=limits, max_batch_size=batch_size,
                     token_budget=1 << 30, max_new_tokens=short_tokens)
    dev = rm.device
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    items = _pairs(n_pairs, image_size, seed)
    protocol = rm.protocols.get(rm.family, "image_generation", "pair_rank")
    n_params = sum(p.numel() for p in rm.model.parameters())
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
            model=model if tmp is None else f"built: {shape} ({size if shape == 'tiny' else '7b'})",
            parameters=n_params, device=str(dev), device_name=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            dtype=str(rm.dtype).replace("torch.", ""), n_pairs=n_pairs, image_size=image_size, max_pixels=max_pixels,
            prompt_tokens=prompt_tokens, visual_tokens=visual_tokens, batch_size=batch_size,
            short_tokens=short_tokens, long_tokens=long_tokens, repeats=repeats,
            torch_threads=torch.get_num_threads(), unireward=__version__,
        ),
    }
    if tmp is not None:
        tmp.cleanup()
    return out
