"""One Diffusion-DPO step for diffusers text-to-image (UNet2DConditionModel: SD1.5 layout) and
text-to-video (UNet3DConditionModel) pipelines: what every Diffusion-DPO worker runs (issue 5).

The chosen and rejected latents of a pair get the same timestep and the same noise; the frozen
reference sees exactly what the policy sees. Pixels are encoded with the pipeline's VAE (videos
frame by frame) and prompts with its text encoder, both frozen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .losses import BETA_DIFFUSION, PreferenceLoss, diffusion_dpo


@dataclass
class DiffusionBatch:
    latents_w: torch.Tensor  # [B, C, H, W] or [B, C, T, H, W]
    latents_l: torch.Tensor
    text: torch.Tensor  # [B, L, D] encoder hidden states


@torch.no_grad()
def encode_prompts(pipe: Any, prompts: list[str]) -> torch.Tensor:
    tok = pipe.tokenizer(prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt")
    return pipe.text_encoder(tok.input_ids.to(pipe.text_encoder.device))[0]


@torch.no_grad()
def encode_pixels(pipe: Any, pixels: torch.Tensor) -> torch.Tensor:
    """Latents of images [B, 3, H, W] or videos [B, 3, T, H, W] with values in [-1, 1]."""
    vae = pipe.vae
    if pixels.ndim == 5:  # videos: encode frames, back to [B, C, T, h, w]
        b, c, t, h, w = pixels.shape
        frames = pixels.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        lat = vae.encode(frames.to(vae.device, vae.dtype)).latent_dist.mean * vae.config.scaling_factor
        return lat.reshape(b, t, *lat.shape[1:]).permute(0, 2, 1, 3, 4)
    return vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist.mean * vae.config.scaling_factor


def dpo_loss(unet: Any, ref_unet: Any, scheduler: Any, batch: DiffusionBatch, beta: float = BETA_DIFFUSION,
             generator: torch.Generator | None = None, timesteps: torch.Tensor | None = None) -> PreferenceLoss:
    """The Diffusion-DPO loss of a batch of pairs: one timestep and one noise per pair, shared by
    its chosen and rejected latents; the target is the noise (epsilon prediction) or the velocity
    (v prediction), as the scheduler says."""
    lw, ll = batch.latents_w, batch.latents_l
    b = lw.shape[0]
    noise = torch.randn(lw.shape, generator=generator, dtype=lw.dtype).to(lw.device)
    if timesteps is None:
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=generator)
    t = timesteps.to(lw.device)
    noisy = torch.cat([scheduler.add_noise(lw, noise, t), scheduler.add_noise(ll, noise, t)])
    t2, text2 = torch.cat([t, t]), torch.cat([batch.text, batch.text])
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        target_w = target_l = noise
    elif kind == "v_prediction":
        target_w, target_l = scheduler.get_velocity(lw, noise, t), scheduler.get_velocity(ll, noise, t)
    else:
        raise ValueError(f"prediction_type {kind!r} is not supported (epsilon or v_prediction)")
    pred = unet(noisy, t2, encoder_hidden_states=text2).sample
    with torch.no_grad():
        ref = ref_unet(noisy, t2, encoder_hidden_states=text2).sample
    return diffusion_dpo(target_w, pred[:b], pred[b:], ref[:b], ref[b:], beta=beta, target_l=target_l)
