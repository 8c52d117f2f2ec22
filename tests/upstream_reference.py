"""A transcription of what the official UnifiedReward inference does to build a model's input, written
from the rules (qwen-vl-utils 0.0.9+ as the official Qwen scripts call it; the vLLM clients of
UnifiedReward-2.0 and -Think; the LLaVA scripts' frame sampling), independently of unireward's own
code, so that the parity tests compare two implementations of the same facts.

- Qwen HF scripts: images through ``fetch_image`` (RGB, then resized to the ``smart_resize`` size
  with bicubic), videos through ``fetch_video`` (``smart_nframes`` frames at 2 fps, indices
  ``linspace(0, T-1, n).round()``, one size for all frames from the per-frame budget, torchvision
  bicubic with antialias), and the sampled fps passed on (``second_per_grid_ts = 2 / fps``).
- vLLM clients: every image, and every sampled frame, sent as a JPEG of quality 95; videos as
  frames: 2.0 takes frame ``int(i*T/N)`` (each frame once), Think-qwen3 ``int(linspace(0, T-1, N))``.
- LLaVA scripts: 8 frames at ``int(linspace(0, T-1, 8))``, each resized to 512x512.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import torch
from PIL import Image

FACTOR, MIN_PIXELS, MAX_PIXELS = 28, 4 * 28 * 28, 16384 * 28 * 28
VIDEO_MIN, VIDEO_MAX, VIDEO_TOTAL = 128 * 28 * 28, 768 * 28 * 28, int(128000 * 28 * 28 * 0.9)


def round_by_factor(n, f):
    return round(n / f) * f


def ceil_by_factor(n, f):
    return math.ceil(n / f) * f


def floor_by_factor(n, f):
    return math.floor(n / f) * f


def smart_resize(h, w, factor=FACTOR, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS):
    h_bar = max(factor, round_by_factor(h, factor))
    w_bar = max(factor, round_by_factor(w, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        h_bar, w_bar = floor_by_factor(h / beta, factor), floor_by_factor(w / beta, factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        h_bar, w_bar = ceil_by_factor(h * beta, factor), ceil_by_factor(w * beta, factor)
    return h_bar, w_bar


def smart_nframes(total, video_fps, fps=2.0, min_frames=4, max_frames=768):
    min_frames = ceil_by_factor(min_frames, 2)
    max_frames = floor_by_factor(min(max_frames, total), 2)
    n = total / video_fps * fps
    n = min(min(max(n, min_frames), max_frames), total)
    return floor_by_factor(n, 2)


def _rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGBA":
        bg = Image.new("RGB", img.size, (255, 255, 255))
        bg.paste(img, mask=img.split()[3])
        return bg
    return img.convert("RGB")


def fetch_image(path: str) -> Image.Image:
    img = _rgb(Image.open(path))
    h, w = smart_resize(img.height, img.width)
    return img.resize((w, h))


def fetch_video(path: str) -> tuple[torch.Tensor, float, dict[str, Any]]:
    """(frames TCHW float in 0-255, sampled fps, metadata the processor needs for that fps)."""
    import decord
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.functional import resize

    vr = decord.VideoReader(path)
    total, video_fps = len(vr), vr.get_avg_fps()
    n = smart_nframes(total, video_fps)
    idx = torch.linspace(0, total - 1, n).round().long().tolist()
    video = torch.tensor(vr.get_batch(idx).asnumpy()).permute(0, 3, 1, 2)
    sample_fps = n / max(total, 1e-6) * video_fps
    _, _, height, width = video.shape
    max_pixels = max(min(VIDEO_MAX, VIDEO_TOTAL / n * 2), int(VIDEO_MIN * 1.05))
    h, w = smart_resize(height, width, FACTOR, VIDEO_MIN, max_pixels)
    video = resize(video, [h, w], interpolation=InterpolationMode.BICUBIC, antialias=True).float()
    meta = dict(total_num_frames=total, fps=video_fps, frames_indices=idx, width=w, height=h)
    return video, sample_fps, meta


def jpeg(img: Image.Image, quality: int = 95) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def client_frames(path: str, n: int, rule: str, size: tuple[int, int] | None = None, quality: int | None = 95):
    """A vLLM client's (or the LLaVA scripts') frames of a video, as the images it sends."""
    import decord

    vr = decord.VideoReader(path)
    total = len(vr)
    if rule == "floor":  # 2.0: read sequentially, keep each frame whose index is selected
        selected = [int(i * total / n) for i in range(n)]
        idx = [k for k in range(total) if k in selected]
    else:  # Think-qwen3 and LLaVA: int(np.linspace(0, T-1, n))
        idx = list(np.linspace(0, total - 1, n).astype(int))
    frames = [Image.fromarray(f) for f in vr.get_batch(idx).asnumpy()]
    if size:
        frames = [f.resize(size) for f in frames]
    return [jpeg(f, quality) for f in frames] if quality else frames


def official_inputs(
    processor,
    kind: str,
    text: str,
    visuals: list[str],
    media: str,
    frames: dict | None = None,
    jpeg_quality: int | None = 95,
):
    """The processor inputs the official inference builds: ``kind`` image|video, ``visuals`` files,
    ``media`` qwen (the Qwen HF scripts) | client (the vLLM clients and the LLaVA scripts: images,
    videos as frames ``frames`` = {n, rule, size, quality}); ``jpeg_quality`` for the clients' images."""
    content: list[dict[str, Any]] = []
    images, videos, metas = [], [], []
    for v in visuals:
        if media == "qwen" and kind == "video":
            video, _fps, meta = fetch_video(v)
            videos.append(video)
            metas.append(meta)
            content.append({"type": "video", "video": v})
        elif media == "qwen":
            images.append(fetch_image(v))
            content.append({"type": "image", "image": v})
        elif kind == "video":
            fr = client_frames(v, **(frames or {}))
            images += fr
            content += [{"type": "image_url", "image_url": "frame"} for _ in fr]
        else:
            img = _rgb(Image.open(v))
            images.append(jpeg(img, jpeg_quality) if jpeg_quality else img)
            content.append({"type": "image_url", "image_url": v})
    content.append({"type": "text", "text": text})
    chat = processor.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )
    kwargs: dict[str, Any] = {}
    if images:
        kwargs["images"] = images
    if videos:
        kwargs.update(videos=videos, video_metadata=metas, do_sample_frames=False)
    return dict(processor(text=[chat], return_tensors="pt", **kwargs))
