"""Candidate generators: N candidates per prompt, each reproducible from its recorded seed.

- ``VLMSampler``: answers for understanding tasks, sampled from any HF VLM folder with a chat
  template (``generate`` with temperature / top-p), one prompt per call so that a prompt's samples
  never depend on which other prompts shared its batch.
- ``DiffusionSampler``: images (text-to-image pipelines: SD1.5, SDXL, SDXL-Turbo layouts) or videos
  (text-to-video pipelines) from a diffusers folder, one ``torch.Generator`` seed per candidate.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..io.media import MediaLimits, Video, encode_video, load_media


def candidate_seed(base: int, prompt_id: str, j: int | None = None) -> int:
    """A seed derived from the spec's seed, the prompt and the candidate index (fits in 31 bits)."""
    key = f"{base}:{prompt_id}" + (f":{j}" if j is not None else "")
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little") & 0x7FFFFFFF


def _dtype(torch, dtype: str | None, device: str):
    if dtype in (None, "auto"):
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


class VLMSampler:
    def __init__(
        self, model_path: str, device: str | None = None, dtype: str | None = None, media: MediaLimits = MediaLimits()
    ):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.processor = AutoProcessor.from_pretrained(model_path)
        self.model = (
            AutoModelForImageTextToText.from_pretrained(model_path, dtype=_dtype(torch, dtype, self.device))
            .to(self.device)
            .eval()
        )
        self.media = media
        self.model_path = model_path

    def sample(
        self,
        task: str,
        prompt: str,
        context: Any,
        n: int,
        seed: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
    ) -> list[str]:
        """``n`` answers to ``prompt`` about ``context`` (an image or video source)."""
        import torch

        kind = "video" if task.startswith("video") else "image"
        visual = load_media(context, kind, self.media)
        messages = [{"role": "user", "content": [{"type": kind}, {"type": "text", "text": prompt}]}]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if isinstance(visual, Video):
            enc = self.processor(
                text=[text],
                videos=[visual.frames],
                video_metadata=[visual.metadata()],
                do_sample_frames=False,
                return_tensors="pt",
            )
        else:
            enc = self.processor(text=[text], images=[visual], return_tensors="pt")
        enc = {k: (v.to(self.device) if hasattr(v, "to") else v) for k, v in enc.items()}
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                do_sample=True,
                temperature=temperature,
                top_p=top_p,
                top_k=None,
                max_new_tokens=max_new_tokens,
                num_return_sequences=n,
                pad_token_id=self.processor.tokenizer.pad_token_id,
            )
        texts = self.processor.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        return [t.strip() for t in texts]


class DiffusionSampler:
    def __init__(self, model_path: str, device: str | None = None, dtype: str | None = None):
        import torch
        from diffusers import DiffusionPipeline

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.pipe = DiffusionPipeline.from_pretrained(model_path, dtype=_dtype(torch, dtype, self.device))
        self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.video = "video" in type(self.pipe).__name__.lower()
        self.model_path = model_path

    def sample(
        self,
        prompt: str,
        seeds: list[int],
        steps: int,
        guidance_scale: float,
        height: int,
        width: int,
        num_frames: int = 8,
        fps: int = 8,
    ) -> list[bytes]:
        """One encoded candidate per seed: PNG bytes (images) or mp4 bytes (videos)."""
        import numpy as np
        import torch
        from PIL import Image

        gens = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
        kwargs: dict[str, Any] = dict(
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            height=height,
            width=width,
            generator=gens,
            output_type="np",
        )
        if self.video:
            out = []
            for g in gens:  # text-to-video pipelines take one generator per call
                frames = self.pipe(prompt, num_frames=num_frames, **dict(kwargs, generator=g)).frames[0]
                out.append(encode_video([_to_uint8(f) for f in frames], fps=fps))
            return out
        images = self.pipe([prompt] * len(seeds), **kwargs).images
        from ..io.media import encode_image

        return [encode_image(Image.fromarray(_to_uint8(np.asarray(im))), "PNG") for im in images]


def _to_uint8(arr):
    import numpy as np

    arr = np.asarray(arr, dtype=np.float32)
    arr = np.nan_to_num(arr, nan=0.0)
    return (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
