"""``unireward bench judge`` and ``bench batching``: judging throughput, each method side by side on
the same model and items.

``bench_judge``: pairwise image-generation judging, on the same model and the same items, by
(a) one item at a time as the original code does it: batch 1, greedy ``generate``, parse the text
    (once with a short verdict of about 12 new tokens, once with about 128 tokens of reasoning);
(b) batched ``generate`` (left padding, token-budget batches);
(c) the logit method (one forward pass per batch, last positions' logits only).
Generation lengths are forced (min = max new tokens) so an untrained model cannot stop early and
flatter the generate paths."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .common import bench_model, bf16_peak, device_sync, image_pairs, model_setup, timed, video_pairs


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
    stages: bool | None = None,
    video_frames: int = 8,
    video_size: int = 336,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """The methods side by side; with ``stages`` (default for real shapes) also the logit method's
    time per stage (preprocess, vision tower, language model), its FLOPs, achieved TFLOP/s and the
    fraction of the device's bf16 peak, for image pairs and for video pairs."""
    import torch

    from ..judge.parsing import parse

    rm, described, max_pixels, tmp = bench_model(
        model,
        size,
        shape,
        device,
        dtype,
        max_pixels,
        log,
        max_batch_size=batch_size,
        token_budget=1 << 30,
        max_new_tokens=short_tokens,
    )
    dev = rm.device
    sync = device_sync(rm)
    items = image_pairs(n_pairs, image_size, seed)
    protocol = rm.protocols.get(rm.family, "image_generation", "pair_rank")
    first = rm.encode_item(items[0], protocol, {})
    prompt_tokens = int(first["input_ids"].shape[1])
    visual_tokens = int((first["input_ids"] == rm.model.config.image_token_id).sum())

    def one_at_a_time(new_tokens: int):
        def run():
            for it in items:  # the original's loop: one item at a time, generate, decode, parse
                enc = {k: (v.to(dev) if hasattr(v, "to") else v) for k, v in rm.encode_item(it, protocol, {}).items()}
                with torch.inference_mode():
                    out = rm.model.generate(
                        **enc,
                        max_new_tokens=new_tokens,
                        min_new_tokens=new_tokens,
                        do_sample=False,
                        temperature=None,
                        top_p=None,
                        top_k=None,
                        pad_token_id=rm.pad_id,
                    )
                text = rm.tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
                parse(text, protocol)

        return run

    def batched(method: str):
        def run():
            rm.generation_kwargs = {"min_new_tokens": short_tokens} if method == "generate" else {}
            rm.judge(items, method=method)

        return run

    results: dict[str, float] = {}
    for name, fn in [
        ("one_at_a_time_short", one_at_a_time(short_tokens)),
        ("one_at_a_time_reasoning", one_at_a_time(long_tokens)),
        ("batched_generate", batched("generate")),
        ("logits", batched("logits")),
    ]:
        log(f"timing {name} ...")
        t = timed(fn, repeats, sync)
        results[name] = n_pairs / t
        log(f"  {name}: {results[name]:.2f} pairs/s")
    rm.generation_kwargs = {}
    breakdown = None
    if stages if stages is not None else shape != "tiny":
        breakdown = {
            "images": stage_breakdown(rm, items, batch_size, repeats, sync, log),
            "videos": stage_breakdown(
                rm, video_pairs(n_pairs, video_frames, video_size, seed), batch_size, repeats, sync, log
            ),
        }
    base = results["one_at_a_time_short"]
    out: dict[str, Any] = {
        "pairs_per_s": results,
        "speedup_vs_one_at_a_time": {k: v / base for k, v in results.items()},
        "speedup_logits_vs_one_at_a_time": results["logits"] / base,
        **({"stages": breakdown} if breakdown else {}),
        "setup": dict(
            model_setup(rm, described),
            n_pairs=n_pairs,
            image_size=image_size,
            max_pixels=max_pixels,
            prompt_tokens=prompt_tokens,
            visual_tokens=visual_tokens,
            batch_size=batch_size,
            short_tokens=short_tokens,
            long_tokens=long_tokens,
            repeats=repeats,
        ),
    }
    tmp.cleanup()
    return out


def stage_breakdown(rm, items, batch_size: int, repeats: int, sync, log) -> dict[str, Any]:
    """The logit method on ``items`` stage by stage: preprocessing (media and processor, on the
    host), the vision tower, and the language model (the full forward less the vision tower), each
    timed on its own; FLOPs counted from the shapes (2 per multiply-add: weights x tokens, plus
    attention within each sequence, window or visual), achieved TFLOP/s over the device time."""
    import torch

    protocol = rm.protocols.get(rm.family, items[0].task, "pair_rank")
    inner = rm.model.model
    video = items[0].task == "video_generation"
    pv_key, grid_key = ("pixel_values_videos", "video_grid_thw") if video else ("pixel_values", "image_grid_thw")
    vision_fn = inner.get_video_features if video else inner.get_image_features

    def preprocess():
        cache: dict = {}
        return [rm.encode_item(it, protocol, cache) for it in items]

    encs = preprocess()
    t_pre = timed(preprocess, repeats, lambda: None)
    batches = [
        {k: (v.to(rm.device) if hasattr(v, "to") else v) for k, v in rm.collate(encs[i : i + batch_size]).items()}
        for i in range(0, len(encs), batch_size)
    ]

    def vision():
        with torch.inference_mode():
            for b in batches:
                vision_fn(b[pv_key], b[grid_key])

    def forward():
        with torch.inference_mode():
            for b in batches:
                rm.model(**b, logits_to_keep=1)

    t_vis = timed(vision, repeats, sync)
    t_all = timed(forward, repeats, sync)
    t_lm = max(t_all - t_vis, 0.0)
    flops = _flops(rm, batches, pv_key, grid_key)
    device_s = t_all
    peak = bf16_peak(torch.cuda.get_device_name(rm.device)) if rm.device.type == "cuda" else None
    achieved = flops["total"] / device_s / 1e12
    out = dict(
        pairs=len(items),
        batch_size=batch_size,
        seconds=dict(preprocess=t_pre, vision_tower=t_vis, language_model=t_lm, forward=t_all),
        share_of_forward=dict(vision_tower=t_vis / t_all, language_model=t_lm / t_all),
        pairs_per_s_device=len(items) / t_all,
        pairs_per_s_serial=len(items) / (t_all + t_pre),
        tflop_per_pair=flops["total"] / len(items) / 1e12,
        flops=flops,
        achieved_tflops=achieved,
        bf16_peak_tflops=peak,
        fraction_of_bf16_peak=achieved / peak if peak else None,
        pairs_per_s_at_bf16_peak=(peak * 1e12 / (flops["total"] / len(items))) if peak else None,
        tokens_per_pair=float(sum(int(b["attention_mask"].sum()) for b in batches) / len(items)),
    )
    log(
        f"  {'videos' if video else 'images'}: preprocess {t_pre:.3f} s, vision {t_vis:.3f} s, language model "
        f"{t_lm:.3f} s for {len(items)} pairs; {achieved:.2f} TFLOP/s"
        + (f" ({out['fraction_of_bf16_peak']:.1%} of bf16 peak)" if peak else "")
    )
    return out


def _flops(rm, batches, pv_key: str, grid_key: str) -> dict[str, float]:
    """Forward FLOPs of the batches: the language model's weights over the real (unpadded) tokens
    plus causal attention, and the vision tower's weights over the patches plus attention within
    each window or visual."""
    cfg = rm.model.config
    text = getattr(cfg, "text_config", cfg)
    vis = cfg.vision_config
    inner = rm.model.model
    lm_params = sum(p.numel() for n, p in inner.language_model.named_parameters() if "embed" not in n)
    vis_params = sum(p.numel() for p in inner.visual.parameters())
    lm = vision = 0.0
    for b in batches:
        lengths = b["attention_mask"].sum(-1).tolist()
        lm += 2 * lm_params * sum(lengths) + 2 * text.num_hidden_layers * text.hidden_size * sum(n * n for n in lengths)
        grid = b[grid_key]
        patches = int(grid.prod(-1).sum())
        hidden = getattr(vis, "hidden_size", None) or vis.embed_dim
        depth = vis.depth
        full = len(getattr(vis, "fullatt_block_indexes", None) or range(depth))
        per_visual = [int(x) for x in grid.prod(-1).tolist()]
        window = (getattr(vis, "window_size", 0) // vis.patch_size) ** 2 if getattr(vis, "window_size", 0) else 0
        attn_full = sum(n * n for n in per_visual)
        attn_window = sum(n * min(n, window) for n in per_visual) if window else attn_full
        vision += 2 * vis_params * patches + 4 * hidden * (full * attn_full + (depth - full) * attn_window)
    return dict(language_model=lm, vision_tower=vision, total=lm + vision)


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
    rm, described, max_pixels, tmp = bench_model(
        model, size, shape, device, dtype, max_pixels, log, max_batch_size=max(batch_sizes), token_budget=1 << 30
    )
    sync = device_sync(rm)
    items = image_pairs(n_items, image_size, seed)
    rm.judge(items[: max(batch_sizes)], method="logits")  # warm-up: kernels, allocator
    rates: dict[str, float] = {}
    for bs in batch_sizes:
        rm.max_batch_size = bs
        t = timed(lambda: rm.judge(items, method="logits"), repeats, sync)
        rates[str(bs)] = n_items / t
        log(f"  batch size {bs}: {rates[str(bs)]:.2f} pairs/s")
    base = rates[str(batch_sizes[0])]
    out = {
        "pairs_per_s": rates,
        "speedup_vs_first": {k: v / base for k, v in rates.items()},
        "setup": dict(
            model_setup(rm, described), n_items=n_items, image_size=image_size, max_pixels=max_pixels, repeats=repeats
        ),
    }
    tmp.cleanup()
    return out
