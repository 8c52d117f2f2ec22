"""Diffusion-DPO for diffusers text-to-image (UNet2DConditionModel: SD1.5 layout) and text-to-video
(UNet3DConditionModel) pipelines: the step, the pairs, and the loop every Diffusion-DPO worker runs.

The chosen and rejected latents of a pair get the same timestep and the same noise; the frozen
reference sees exactly what the policy sees. Pixels are encoded with the pipeline's VAE (videos
frame by frame) and prompts with its text encoder, both frozen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .losses import BETA_DIFFUSION, PreferenceLoss, diffusion_dpo

UNET_LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # the UNet's attention projections


@dataclass
class DiffusionBatch:
    latents_w: torch.Tensor  # [B, C, H, W] or [B, C, T, H, W]
    latents_l: torch.Tensor
    text: torch.Tensor  # [B, L, D] encoder hidden states


@torch.no_grad()
def encode_prompts(pipe: Any, prompts: list[str]) -> torch.Tensor:
    tok = pipe.tokenizer(
        prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
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


def dpo_loss(
    unet: Any,
    ref_unet: Any,
    scheduler: Any,
    batch: DiffusionBatch,
    beta: float = BETA_DIFFUSION,
    generator: torch.Generator | None = None,
    timesteps: torch.Tensor | None = None,
) -> PreferenceLoss:
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


# ------------------------------------------------------------------------------------ kind: dpo
def read_pairs(uris: list[str], policy: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Preference pairs from the exporters' files: ``diffusion_dpo`` rows (caption, jpg_0, jpg_1,
    label_0: 1 = jpg_0 preferred, 0 = jpg_1, 0.5 = a tie, which teaches nothing and is recorded as
    an error) or ``videodpo`` rows (caption, chosen, rejected: paths relative to the file)."""
    from ..io import schema

    pairs, errors = [], []
    for uri in uris:
        for i, r in enumerate(schema.read_parquet(uri)):
            where = dict(source=uri, row=i)
            caption = r.get("caption")
            if not isinstance(caption, str) or not caption.strip():
                errors.append(dict(where, reason="empty caption"))
                continue
            if policy == "diffusion_image":
                if not {"jpg_0", "jpg_1", "label_0"} <= set(r):
                    errors.append(dict(where, reason="not a diffusion_dpo row (caption, jpg_0, jpg_1, label_0)"))
                    continue
                label = r["label_0"]
                if label not in (0.0, 1.0):
                    errors.append(dict(where, reason=f"label_0 {label!r}: a tie (or unknown) teaches no preference"))
                    continue
                chosen, rejected = (r["jpg_0"], r["jpg_1"]) if label == 1.0 else (r["jpg_1"], r["jpg_0"])
            else:
                if not {"chosen", "rejected"} <= set(r):
                    errors.append(dict(where, reason="not a videodpo row (caption, chosen, rejected)"))
                    continue
                chosen, rejected = (
                    schema.resolve_media(r["chosen"], schema.parent(uri)),
                    schema.resolve_media(r["rejected"], schema.parent(uri)),
                )
            pairs.append(dict(caption=caption, chosen=chosen, rejected=rejected, source=uri, row=i))
    return pairs, errors


def split_pairs(pairs: list[dict[str, Any]], fraction: float, seed: int) -> tuple[list, list]:
    """(train, held-out) by caption: a held-out caption is never trained on."""
    from .data import split

    return split(pairs, lambda p: p["caption"], fraction, seed)


def pixels(src: Any, kind: str, size: int, limits) -> torch.Tensor:
    """An image [3, H, W] or a video [3, T, H, W] in [-1, 1], resized (shorter side) and centre-cropped."""
    import numpy as np
    from PIL import Image

    from ..io import media as media_io

    def one(img: Image.Image) -> torch.Tensor:
        img = img.convert("RGB")
        w, h = img.size
        scale = size / min(w, h)
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
        left, top = (img.size[0] - size) // 2, (img.size[1] - size) // 2
        arr = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.float32) / 127.5 - 1.0
        return torch.from_numpy(arr).permute(2, 0, 1)

    if kind == "image":
        return one(media_io.load_image(src, limits))
    video = media_io.load_video(src, limits)
    return torch.stack([one(f) for f in video.frames], dim=1)


def dpo_loop(config: dict[str, Any]) -> None:
    """What every Ray Train worker of ``kind: dpo`` runs for a diffusers UNet (Diffusion-DPO), over
    the shared runtime of ``train/runtime.py``."""
    import copy
    import os
    import random

    from diffusers import DiffusionPipeline

    from ..config import DpoSpec
    from .runtime import MetricLog, MicroStep, run, worker_setup

    worker = worker_setup(config, DpoSpec)
    spec, rank, world, device = worker.spec, worker.rank, worker.world, worker.device
    t = spec.training
    kind = "image" if spec.policy == "diffusion_image" else "video"
    limits = spec.media.limits()
    if kind == "video":
        from dataclasses import replace

        limits = replace(limits, num_frames=spec.num_frames, fps=None)

    pipe = DiffusionPipeline.from_pretrained(spec.model)
    pipe.set_progress_bar_config(disable=True)
    frozen_dtype = torch.bfloat16 if worker.bf16 else torch.float32
    for part in ("vae", "text_encoder"):
        getattr(pipe, part).requires_grad_(False).to(device, frozen_dtype).eval()
    unet = pipe.unet
    ref = copy.deepcopy(unet).requires_grad_(False).eval().to(device, frozen_dtype)
    log = MetricLog(config["run_dir"], rank, tag=spec.kind)
    if t.gradient_checkpointing:
        try:
            unet.enable_gradient_checkpointing()
        except ValueError as e:  # diffusers' UNet3D does not support it
            log.event(dict(event="no_gradient_checkpointing", reason=str(e)))
    if t.lora is not None:
        from peft import LoraConfig, get_peft_model

        unet = get_peft_model(
            unet,
            LoraConfig(
                r=t.lora.r, lora_alpha=t.lora.alpha, lora_dropout=t.lora.dropout, target_modules=list(UNET_LORA_TARGETS)
            ),
        )
    unet.train()
    pairs, _ = read_pairs(spec.data.train, spec.policy)
    if spec.data.eval:
        train, held = pairs, read_pairs(spec.data.eval, spec.policy)[0]
    else:
        train, held = split_pairs(pairs, spec.data.eval_fraction, t.seed)
    held = held[: spec.data.max_eval_pairs]
    shard = train[rank::world]
    if not shard:
        raise RuntimeError(f"rank {rank}: no training pair (have {len(train)} for {world} workers)")
    micro_per_epoch = max(1, len(train) // world // t.batch_size)
    total_steps = t.max_steps or max(1, t.epochs * micro_per_epoch // t.grad_accum)
    vae_scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    size = spec.resolution or int(ref.config.sample_size) * vae_scale

    cache: dict[int, tuple[torch.Tensor, torch.Tensor] | None] = {}

    def decoded(p: dict[str, Any], key: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        if key not in cache:
            try:
                cache[key] = (pixels(p["chosen"], kind, size, limits), pixels(p["rejected"], kind, size, limits))
            except Exception as e:
                cache[key] = None
                log.event(
                    dict(
                        event="bad_example",
                        rank=rank,
                        source=p["source"],
                        row=p["row"],
                        reason=f"{type(e).__name__}: {e}",
                    )
                )
        return cache[key]

    def batch_of(ps: list[dict[str, Any]], pix: list[tuple[torch.Tensor, torch.Tensor]]) -> DiffusionBatch:
        w = torch.stack([x[0] for x in pix]).to(device, frozen_dtype)
        lo = torch.stack([x[1] for x in pix]).to(device, frozen_dtype)
        return DiffusionBatch(
            encode_pixels(pipe, w),
            encode_pixels(pipe, lo),
            encode_prompts(pipe, [p["caption"] for p in ps]).to(frozen_dtype),
        )

    def micro_step(engine, g: int) -> MicroStep:
        epoch, m = divmod(g, micro_per_epoch)
        order = list(range(len(shard)))
        random.Random(f"{t.seed}:{epoch}:{rank}").shuffle(order)
        ps, pix, k = [], [], m * t.batch_size
        for _ in range(len(order)):
            if len(ps) == t.batch_size:
                break
            i = order[k % len(order)]
            x = decoded(shard[i], i)
            if x is not None:
                ps.append(shard[i])
                pix.append(x)
            k += 1
        if not ps:
            raise RuntimeError(f"rank {rank}: no usable pair in its shard (see the bad_example events)")
        batch = batch_of(ps, pix)
        out = dpo_loss(engine, ref, pipe.scheduler, batch, beta=spec.beta)
        return MicroStep(
            out.loss,
            int(batch.latents_w.shape[0]),
            dict(implicit_acc=out.implicit_accuracy, margin=float(out.margin.float().mean())),
        )

    def evaluate(engine) -> dict[str, float]:
        """Loss, implicit accuracy and margin on the held-out pairs at fixed timesteps and noise (every
        rank runs the same batches: ZeRO-3 needs the ranks in step)."""
        engine.module.eval()
        margins, losses = [], []
        gen = torch.Generator().manual_seed(spec.eval_seed)
        for s in range(0, len(held), t.batch_size):
            ps = held[s : s + t.batch_size]
            pix = [decoded(p, -1 - s - j) for j, p in enumerate(ps)]
            keep = [(p, x) for p, x in zip(ps, pix) if x is not None]
            if not keep:
                continue
            b = batch_of([p for p, _ in keep], [x for _, x in keep])
            ts = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (len(keep),), generator=gen)
            with torch.no_grad():
                out = dpo_loss(engine, ref, pipe.scheduler, b, beta=spec.beta, generator=gen, timesteps=ts)
            margins += out.margin.float().cpu().tolist()
            losses.append(float(out.loss) * len(keep))
        engine.module.train()
        n = max(1, len(margins))
        return {
            "eval/loss": sum(losses) / n,
            "eval/implicit_acc": sum(m > 0 for m in margins) / n,
            "eval/margin": sum(margins) / n,
            "eval/pairs": float(len(margins)),
        }

    run(
        worker,
        unet,
        log,
        total_steps=total_steps,
        eval_every=t.eval_every or max(1, micro_per_epoch // t.grad_accum),
        micro_step=micro_step,
        evaluate=evaluate if held else None,
        export=lambda sd, folder: export_pipeline(spec.model, t, sd, os.path.join(folder, "diffusers")),
        start_event=dict(pairs=len(train), held_out=len(held), shard=len(shard), size=size),
    )


def export_pipeline(base: str, training, state_dict: dict[str, Any], out: str) -> None:
    """The base pipeline with the trained UNet (LoRA merged in), saved as a diffusers folder."""
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(base)
    unet = pipe.unet
    if training.lora is not None:
        from peft import LoraConfig, get_peft_model

        unet = get_peft_model(
            unet,
            LoraConfig(
                r=training.lora.r,
                lora_alpha=training.lora.alpha,
                lora_dropout=0.0,
                target_modules=list(UNET_LORA_TARGETS),
            ),
        )
    missing, unexpected = unet.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=False)
    if missing or unexpected:
        raise RuntimeError(
            f"the trained state does not fit the UNet: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    if training.lora is not None:
        unet = unet.merge_and_unload()
    pipe.unet = unet
    pipe.save_pretrained(out)
