"""``unireward bench vision``: the Qwen2.5-VL vision tower's forward with batched span attention
(judge.vision) against the tower's own per-window loop, on the same weights and inputs, at the 7B
model's vision configuration (width, heads, MLP, window and patch sizes) with random weights."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .common import SHAPES, timed


def bench_vision(
    depth: int = 4,
    images: int = 4,
    image_size: int = 448,
    video_frames: int = 0,
    device: str | None = None,
    repeats: int = 3,
    seed: int = 0,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Seconds per forward of the vision tower, loop against batched, for ``images`` square images
    of ``image_size`` pixels (plus a video of ``video_frames`` frames at 336x336 if asked). ``depth``:
    blocks of the tower (32 in the real model; every eighth is full attention, the rest windowed;
    fewer keep a CPU run short, the per-block ratio is what is measured)."""
    import torch
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

    from ..judge.vision import batch_vision_attention, plain_vision_attention

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    vision = dict(SHAPES["7b"]["vision"])
    vision.update(depth=depth, fullatt_block_indexes=[k for k in range(depth) if k % 8 == 7] or [depth - 1])
    cfg = Qwen2_5_VLVisionConfig(**vision, out_hidden_size=3584, patch_size=14, spatial_merge_size=2, window_size=112)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    with torch.device(dev):
        tower = Qwen2_5_VisionTransformerPretrainedModel._from_config(cfg, dtype=dtype).eval()
    side = image_size // 28 * 2  # patches per side, a multiple of the merge size
    grids = [[1, side, side]] * images
    if video_frames:
        grids.append([video_frames // 2, 24, 24])  # 336x336, two frames per temporal patch
    grid = torch.tensor(grids, device=dev)
    patch_dim = 3 * 2 * 14 * 14
    pixels = torch.randn(int(grid.prod(-1).sum()), patch_dim, device=dev, dtype=dtype)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def forward():
        with torch.inference_mode():
            return tower(pixels, grid_thw=grid).pooler_output

    log(f"vision tower: depth {depth}, {len(grids)} visuals, {pixels.shape[0]} patches, {dev} {dtype}")
    plain_vision_attention(tower)
    reference = forward()
    t_loop = timed(forward, repeats, sync)
    log(f"  per-window loop: {t_loop:.3f} s per forward")
    changed = batch_vision_attention(tower)
    batched = forward()
    t_batched = timed(forward, repeats, sync)
    log(f"  batched:         {t_batched:.3f} s per forward")
    diff = float((batched.float() - reference.float()).abs().max())
    from transformers.vision_utils import get_vision_window_index

    _, cu_windows = get_vision_window_index(grid, spatial_merge_size=2, window_size=112, patch_size=14)
    windows = len(cu_windows) - 1
    return dict(
        seconds_per_forward=dict(loop=t_loop, batched=t_batched),
        speedup_batched_vs_loop=t_loop / t_batched,
        max_abs_diff=diff,
        setup=dict(
            tower="Qwen2.5-VL-7B vision configuration (hidden 1280, 16 heads, MLP 3420, window 112, patch 14), random weights",
            depth=depth,
            attention_modules_batched=changed,
            visuals=len(grids),
            image_size=image_size,
            video_frames=video_frames,
            patches=int(pixels.shape[0]),
            windows_per_windowed_layer=windows,
            device=str(dev),
            dtype=str(dtype).replace("torch.", ""),
            torch_threads=torch.get_num_threads(),
            repeats=repeats,
        ),
    )
