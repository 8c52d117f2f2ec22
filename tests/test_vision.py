"""Batched vision attention (judge.vision) equals the towers' own per-window loop, on the tiny judges
of Qwen2-VL, Qwen2.5-VL and Qwen3-VL, for images of mixed sizes and a video in one batch."""

import pytest
import torch
from PIL import Image

from unireward.judge.vision import batch_vision_attention, plain_vision_attention, span_attention
from unireward.models.tiny import build_tiny_judge


def test_span_attention_equals_one_call_per_span():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(23, 2, 8, generator=g) for _ in range(3))
    cu = torch.tensor([0, 5, 10, 13, 18, 18, 23])  # lengths 5 5 3 5 0 5: one empty span
    out = span_attention(q, k, v, cu, scale=8**-0.5)
    for a, b in zip(cu[:-1].tolist(), cu[1:].tolist()):
        if b == a:
            continue
        ref = torch.nn.functional.scaled_dot_product_attention(
            *(t[a:b].transpose(0, 1) for t in (q, k, v)), scale=8**-0.5
        ).transpose(0, 1)
        torch.testing.assert_close(out[a:b], ref, atol=1e-6, rtol=1e-6)


def _inputs(processor):
    """Three images of different sizes (several windows each, with ragged edge windows) and a
    four-frame video, as one vision-tower batch."""
    images = [
        Image.new("RGB", size, colour)
        for size, colour in [((252, 196), "red"), ((84, 140), "blue"), ((336, 224), "green")]
    ]
    for k, im in enumerate(images):  # texture, so windows differ
        im.putdata(
            [((x * 7 + k) % 256, (y * 3) % 256, (x * y) % 256) for y in range(im.height) for x in range(im.width)]
        )
    video = [im.resize((112, 168)) for im in images[:1] * 4]
    ip = processor.image_processor(images=images, return_tensors="pt")
    vp = processor.video_processor(videos=[video], return_tensors="pt", do_sample_frames=False)
    pixels = torch.cat([ip["pixel_values"], vp["pixel_values_videos"]])
    grid = torch.cat([ip["image_grid_thw"], vp["video_grid_thw"]])
    return pixels, grid


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_batched_vision_attention_equals_the_per_window_loop(arch, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = build_tiny_judge(tmp_path / arch, arch=arch, size="nano")
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()
    model.model.visual.config._attn_implementation = "sdpa"
    pixels, grid = _inputs(AutoProcessor.from_pretrained(path))
    visual = model.model.visual
    with torch.inference_mode():
        plain = visual(pixels, grid_thw=grid)
        assert batch_vision_attention(model) == len(visual.blocks)
        batched = visual(pixels, grid_thw=grid)
        plain_vision_attention(model)
        again = visual(pixels, grid_thw=grid)
    torch.testing.assert_close(batched.pooler_output, plain.pooler_output, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again.pooler_output, plain.pooler_output, atol=0, rtol=0)
    if arch == "qwen3_vl":
        for b, p in zip(batched.deepstack_features, plain.deepstack_features):
            torch.testing.assert_close(b, p, atol=1e-5, rtol=1e-5)


def test_flash_configured_towers_keep_their_own_path(tmp_path):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(build_tiny_judge(tmp_path / "j", size="nano"))
    for block in model.model.visual.blocks:
        block.attn.config._attn_implementation = "flash_attention_2"
    assert batch_vision_attention(model) == 0
