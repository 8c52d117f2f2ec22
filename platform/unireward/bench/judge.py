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

from .common import bench_model, device_sync, image_pairs, model_setup, timed


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
    base = results["one_at_a_time_short"]
    out: dict[str, Any] = {
        "pairs_per_s": results,
        "speedup_vs_one_at_a_time": {k: v / base for k, v in results.items()},
        "speedup_logits_vs_one_at_a_time": results["logits"] / base,
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
