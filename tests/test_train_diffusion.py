"""Diffusion-DPO steps on the tiny diffusers checkpoints (SD1.5-layout text-to-image, UNet3D
text-to-video): the policy starts equal to the reference (margin 0), and a few steps on fixed
pairs lower the loss and make the implicit reward prefer the chosen samples."""

import copy

import pytest
import torch

from unireward.models.tiny import build_tiny_t2i, build_tiny_t2v
from unireward.train.diffusion import DiffusionBatch, dpo_loss, encode_pixels, encode_prompts

pytestmark = pytest.mark.slow


def _pipe(kind, path):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(path))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("kind", ["t2i", "t2v"])
def test_a_few_diffusion_dpo_steps_prefer_the_chosen_samples(kind, tmp_path):
    torch.manual_seed(0)
    path = (build_tiny_t2i if kind == "t2i" else build_tiny_t2v)(tmp_path / kind)
    pipe = _pipe(kind, path)
    g = torch.Generator().manual_seed(0)
    size = pipe.vae.config.sample_size if isinstance(pipe.vae.config.sample_size, int) else 32
    shape = (2, 3, size, size) if kind == "t2i" else (2, 3, 4, size, size)
    chosen = torch.rand(shape, generator=g) * 2 - 1
    rejected = torch.rand(shape, generator=g) * 2 - 1
    batch = DiffusionBatch(
        encode_pixels(pipe, chosen),
        encode_pixels(pipe, rejected),
        encode_prompts(pipe, ["a red circle", "two blue squares"]),
    )
    assert batch.latents_w.ndim == (4 if kind == "t2i" else 5)
    unet, ref = pipe.unet, copy.deepcopy(pipe.unet).requires_grad_(False).eval()
    fixed_t = torch.tensor([300, 700])

    def evaluate():
        with torch.no_grad():
            return dpo_loss(
                unet,
                ref,
                pipe.scheduler,
                batch,
                beta=500.0,
                generator=torch.Generator().manual_seed(1),
                timesteps=fixed_t,
            )

    before = evaluate()
    assert before.margin.abs().max().item() == 0.0 and before.implicit_accuracy == 0.0  # policy == reference
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-3)
    unet.train()
    for _ in range(12):
        opt.zero_grad()
        out = dpo_loss(
            unet, ref, pipe.scheduler, batch, beta=500.0, generator=torch.Generator().manual_seed(1), timesteps=fixed_t
        )
        out.loss.backward()
        opt.step()
    unet.eval()
    after = evaluate()
    assert after.loss.item() < before.loss.item()
    assert after.implicit_accuracy == 1.0 and (after.margin > 0).all()
    assert all(p.grad is None for p in ref.parameters())
