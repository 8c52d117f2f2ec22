"""What the benchmarks share: the items they judge, timing, the judges they time (a given checkpoint,
a tiny one, or a real model's shape with random weights) and the setup they record."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import __version__


def image_pairs(n: int, size: int, seed: int):
    import numpy as np

    from ..judge.types import JudgeItem
    from ..synth import world

    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        scene = world.random_scene(rng)
        a = world.render_scene(scene, size)
        b = world.render_scene(world.perturb(scene, 2, rng)[0], size)
        items.append(JudgeItem("image_generation", world.caption(scene), [a, b], id=f"pair-{i}"))
    return items


def video_pairs(n: int, frames: int, size: int, seed: int):
    """``n`` video-generation pairs of two clips of ``frames`` frames at ``size`` x ``size``."""
    import numpy as np
    from PIL import Image

    from ..io.media import Video
    from ..judge.types import JudgeItem
    from ..synth import world

    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        m = world.random_motion(rng)
        clips = [
            Video([Image.fromarray(f) for f in world.render_motion(x, 0.0, rng, size=size, n_frames=frames)], fps=2.0)
            for x in (m, world.perturb_motion(m, 2, rng)[0])
        ]
        items.append(JudgeItem("video_generation", m.caption(), clips, id=f"video-pair-{i}"))
    return items


# dense bf16 tensor-core peaks (TFLOP/s) of the GPUs the benchmarks are run on, by name fragment
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "L4": 121.0}


def bf16_peak(device_name: str) -> float | None:
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in device_name), None)


def timed(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> float:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


SHAPES = {
    # Qwen2.5-VL-7B-Instruct: 8.3B parameters
    "7b": dict(
        text=dict(
            hidden_size=3584,
            intermediate_size=18944,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            mrope_section=[16, 24, 24],
            vocab_size=152064,
        ),
        vision=dict(
            depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, fullatt_block_indexes=[7, 15, 23, 31]
        ),
    ),
    # the same code path at a size a CPU test can afford
    "test": dict(
        text=dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            mrope_section=[2, 3, 3],
            vocab_size=4096,
        ),
        vision=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, fullatt_block_indexes=[1]),
    ),
}


def shaped_judge(shape: str, device: str, workdir: str, image_max_pixels: int = 512 * 512):
    """A Qwen2.5-VL judge of a real model's shape with random weights (timing only), built in memory
    on ``device``, with the tiny judge's tokenizer, processor and chat template."""
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from ..models import tiny

    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {sorted(SHAPES)}")
    spec = SHAPES[shape]
    small = tiny.build_tiny_judge(workdir, size="nano", image_max_pixels=image_max_pixels)
    cfg = Qwen2_5_VLConfig.from_pretrained(small)
    text = dict(spec["text"])
    section = text.pop("mrope_section")
    cfg = Qwen2_5_VLConfig(
        text_config=dict(
            text,
            max_position_embeddings=32768,
            bos_token_id=None,
            rope_parameters={"rope_type": "default", "mrope_section": section, "rope_theta": 1e6},
            eos_token_id=cfg.text_config.eos_token_id,
            pad_token_id=cfg.text_config.pad_token_id,
        ),
        vision_config=dict(
            spec["vision"],
            out_hidden_size=text["hidden_size"],
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=112,
        ),
        image_token_id=cfg.image_token_id,
        video_token_id=cfg.video_token_id,
        vision_start_token_id=cfg.vision_start_token_id,
        vision_end_token_id=cfg.vision_end_token_id,
    )
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    cfg._attn_implementation = "sdpa"
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(cfg, dtype=dtype)
    return model.eval(), AutoProcessor.from_pretrained(small)


def bench_model(
    model: str | None,
    size: str,
    shape: str,
    device: str | None,
    dtype: str | None,
    max_pixels: int | None,
    log: Callable[[str], None],
    **opts: Any,
):
    """(RewardModel, description, max_pixels, temp dir) of a benchmark: a given checkpoint, a tiny judge
    or a real-shaped one with random weights."""
    import torch

    from ..io.media import MediaLimits
    from ..judge.model import RewardModel

    tmp = tempfile.TemporaryDirectory(prefix="unireward-bench-")
    # tiny judges: images capped at 224x224 (CPU); real shapes: 512x512 images at full resolution
    max_pixels = max_pixels or (224 * 224 if shape == "tiny" else 512 * 512)
    opts = dict(device=device, dtype=dtype, media=MediaLimits(max_pixels=max_pixels), **opts)
    if model is not None:
        return RewardModel(model, **opts), model, max_pixels, tmp
    if shape == "tiny":
        from ..models.tiny import build_tiny_judge

        log(f"building a tiny judge ({size}) ...")
        rm = RewardModel(build_tiny_judge(Path(tmp.name) / "judge", size=size, image_max_pixels=max_pixels), **opts)
        return rm, f"tiny Qwen2.5-VL judge ({size}), random weights", max_pixels, tmp
    dev_name = device or ("cuda" if torch.cuda.is_available() else "cpu")
    log(f"building a Qwen2.5-VL {shape}-shaped judge with random weights on {dev_name} ...")
    m, proc = shaped_judge(shape, dev_name, str(Path(tmp.name) / "proc"), image_max_pixels=max_pixels)
    rm = RewardModel.from_model(m, proc, name=f"qwen2.5-vl-{shape}-shaped (random weights)", **opts)
    return rm, rm.model_path, max_pixels, tmp


def device_sync(rm) -> Callable[[], None]:
    """Waits for the judge's device (CUDA kernels run asynchronously) before a clock is read."""
    import torch

    return torch.cuda.synchronize if rm.device.type == "cuda" else (lambda: None)


def model_setup(rm, described: str) -> dict[str, Any]:
    """The judge's part of a benchmark's recorded setup."""
    import torch

    dev = rm.device
    return dict(
        model=described,
        parameters=sum(p.numel() for p in rm.model.parameters()),
        device=str(dev),
        device_name=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        dtype=str(rm.dtype).replace("torch.", ""),
        torch_threads=torch.get_num_threads(),
        unireward=__version__,
    )
