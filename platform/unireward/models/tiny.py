"""Builders of tiny but real checkpoints for tests and the demo, each built in seconds on CPU and
saved as a normal folder that the standard ``from_pretrained`` path loads (the same code path as a
real checkpoint):

- a Qwen2.5-VL-architecture judge (also Qwen2-VL and Qwen3-VL) with a locally trained byte-level
  BPE tokenizer, a chat template, and a processor for images and videos;
- a diffusers text-to-image pipeline (UNet2DConditionModel, AutoencoderKL, CLIP text encoder, DDPM);
- a diffusers text-to-video pipeline (UNet3DConditionModel based).

Weights are random (seeded): the judge is untrained until ``train_reward`` trains it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

JUDGE_ARCHS = ("qwen2_5_vl", "qwen2_vl", "qwen3_vl")
BACKGROUND_GREY = 235 / 255  # the synthetic world's canvas colour
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# The Qwen2 pre-tokenizer split: digits one by one, words with one leading non-letter, etc. Using
# it keeps the tiny tokenizer's handling of scores and verdicts like the real Qwen tokenizers'.
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CHAT_TEMPLATE = (
    "{%- if not messages or messages[0]['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' or 'image' in part or 'image_url' in part -%}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'video' or 'video' in part -%}"
    "{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{%- elif 'text' in part -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

# text: hidden, layers, heads, kv heads, intermediate; vision: depth, hidden, heads, intermediate
JUDGE_SIZES: dict[str, dict[str, int]] = {
    "nano": dict(hidden=64, layers=2, heads=4, kv=2, inter=128, v_depth=2, v_hidden=32, v_heads=2, v_inter=64),
    "small": dict(hidden=128, layers=4, heads=4, kv=2, inter=384, v_depth=2, v_hidden=64, v_heads=2, v_inter=128),
    "mini": dict(hidden=192, layers=4, heads=4, kv=2, inter=576, v_depth=2, v_hidden=96, v_heads=2, v_inter=192),
    "base": dict(hidden=256, layers=6, heads=8, kv=4, inter=768, v_depth=4, v_hidden=128, v_heads=4, v_inter=256),
}


def _corpus() -> list[str]:
    """Text the tiny tokenizer learns its merges from: every protocol template and phrase, the
    synthetic world's vocabulary, and digits."""
    from ..judge.protocols import default_registry
    from ..synth import world

    texts: list[str] = []
    for p in default_registry():
        texts.append(p.template)
        texts.extend((p.verdicts or {}).values())
        for s in p.scales:
            texts.extend(f"{s.marker} {v}" for v in s.values())
        texts.append(p.answer_prefix)
    texts.extend(["You are a helpful assistant.", "system", "user", "assistant"])
    words = (
        list(world.COLOURS)
        + list(world.SHAPES)
        + [s + "s" for s in world.SHAPES]
        + list(world.POSITION_PHRASE.values())
    )
    words += list(world.NUMBER_WORD.values()) + list(world.DIRECTIONS) + list(world.SPEEDS)
    texts.extend(words)
    import numpy as np

    rng = np.random.default_rng(0)
    for _ in range(300):
        scene = world.random_scene(rng)
        texts.append(world.caption(scene))
        q, answers, _ = world.image_question(scene, rng, 4)
        texts.append(q)
        texts.extend(a for a, _ in answers)
        m = world.random_motion(rng)
        texts.append(m.caption())
        q, answers, _ = world.video_question(m, rng, 4)
        texts.append(q)
        texts.extend(a for a, _ in answers)
    texts.extend(str(i) for i in range(101))
    # descriptions in slot order and slot-by-slot checks (pretraining and Think-style reasoning)
    marks = ["very", "clean", "yes", "no", "extra", "none", "four"] + list(world.DEFECT_WORDS.values())
    texts.extend(f"<think>Image 1: {w}; very {w}, {w}.</think>" for w in marks for _ in range(4))
    for _ in range(100):
        scene = world.random_scene(rng)
        texts.append(world.slot_check(world.scene_slots(world.perturb(scene, 1, rng)[0]), world.scene_slots(scene)))
        m = world.random_motion(rng)
        texts.append(world.slot_check(world.motion_slots(world.perturb_motion(m, 1, rng)[0]), world.motion_slots(m)))
    return texts


def build_tokenizer(vocab_size: int = 2048):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(), trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        model_max_length=32768,
        extra_special_tokens={},
    )
    hf.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[3:]})
    hf.chat_template = CHAT_TEMPLATE
    return hf


def build_tiny_judge(
    out: str | os.PathLike,
    arch: str = "qwen2_5_vl",
    size: str = "small",
    seed: int = 0,
    image_max_pixels: int = 224 * 224,
    vocab_size: int = 2048,
) -> Path:
    """Builds and saves a tiny VLM judge folder; returns its path."""
    import torch
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    if arch not in JUDGE_ARCHS:
        raise ValueError(f"unknown judge architecture {arch!r}; expected one of {JUDGE_ARCHS}")
    if size not in JUDGE_SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {list(JUDGE_SIZES)}")
    s = JUDGE_SIZES[size]
    out = Path(out)
    tok = build_tokenizer(vocab_size)
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    patch = 16 if arch == "qwen3_vl" else 14
    factor = patch * 2
    # Pixels are centred on the synthetic world's background grey, its dataset mean (as CLIP's
    # constants are the mean of its data): with CLIP's constants a freshly built tiny vision tower
    # maps every flat-grey scene to nearly the same features and never learns to see them.
    norm = dict(image_mean=[BACKGROUND_GREY] * 3, image_std=[0.5] * 3)
    image_proc = Qwen2VLImageProcessor(
        min_pixels=4 * factor * factor,
        max_pixels=image_max_pixels,
        patch_size=patch,
        merge_size=2,
        temporal_patch_size=2,
        **norm,
    )
    video_kwargs = dict(
        min_pixels=4 * factor * factor,
        max_pixels=max(4 * factor * factor, image_max_pixels // 4),
        patch_size=patch,
        merge_size=2,
        temporal_patch_size=2,
        **norm,
    )
    head_dim = s["hidden"] // s["heads"]
    text = dict(
        vocab_size=len(tok),
        hidden_size=s["hidden"],
        intermediate_size=s["inter"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        num_key_value_heads=s["kv"],
        max_position_embeddings=32768,
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    vision = dict(
        depth=s["v_depth"],
        hidden_size=s["v_hidden"],
        num_heads=s["v_heads"],
        patch_size=patch,
        spatial_merge_size=2,
        temporal_patch_size=2,
        out_hidden_size=s["hidden"],
    )
    tokens = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    third = head_dim // 2 // 3
    mrope = [head_dim // 2 - 2 * third, third, third]
    if arch == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig as Config
        from transformers import Qwen2_5_VLForConditionalGeneration as Model
        from transformers import Qwen2_5_VLProcessor as Processor

        text["rope_parameters"] = {"rope_type": "default", "mrope_section": mrope, "rope_theta": 1e6}
        vision.update(
            intermediate_size=s["v_inter"], window_size=4 * patch * 2, fullatt_block_indexes=[s["v_depth"] - 1]
        )
        video_proc = Qwen2VLVideoProcessor(**video_kwargs)
    elif arch == "qwen2_vl":
        from transformers import Qwen2VLConfig as Config
        from transformers import Qwen2VLForConditionalGeneration as Model
        from transformers import Qwen2VLProcessor as Processor

        text["rope_parameters"] = {"rope_type": "default", "mrope_section": mrope, "rope_theta": 1e6}
        vision = dict(
            depth=s["v_depth"],
            embed_dim=s["v_hidden"],
            hidden_size=s["hidden"],
            num_heads=s["v_heads"],
            mlp_ratio=s["v_inter"] // s["v_hidden"],
            patch_size=patch,
            spatial_merge_size=2,
            temporal_patch_size=2,
        )
        video_proc = Qwen2VLVideoProcessor(**video_kwargs)
    else:
        from transformers import Qwen3VLConfig as Config
        from transformers import Qwen3VLForConditionalGeneration as Model
        from transformers import Qwen3VLProcessor as Processor
        from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

        text.update(
            head_dim=head_dim,
            rope_parameters={
                "rope_type": "default",
                "mrope_section": mrope,
                "mrope_interleaved": True,
                "rope_theta": 5e6,
            },
        )
        vision.update(intermediate_size=s["v_inter"], num_position_embeddings=256, deepstack_visual_indexes=[0])
        video_proc = Qwen3VLVideoProcessor(
            size={"shortest_edge": video_kwargs["min_pixels"], "longest_edge": video_kwargs["max_pixels"] * 8},
            patch_size=patch,
            merge_size=2,
            temporal_patch_size=2,
            **norm,
        )
    config = Config(text_config=text, vision_config=vision, **tokens, tie_word_embeddings=False)
    config.eos_token_id = ids["<|im_end|>"]
    config.bos_token_id = None
    config.text_config.bos_token_id = None
    config.pad_token_id = ids["<|endoftext|>"]
    config.text_config.eos_token_id = ids["<|im_end|>"]
    config.text_config.pad_token_id = ids["<|endoftext|>"]
    torch.manual_seed(seed)
    model = Model(config).eval()
    model.generation_config.do_sample = False
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    for k in ("temperature", "top_p", "top_k"):
        setattr(model.generation_config, k, None)
    processor = Processor(
        image_processor=image_proc, tokenizer=tok, video_processor=video_proc, chat_template=CHAT_TEMPLATE
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    _write_card(out, "judge", dict(arch=arch, size=size, seed=seed, parameters=n_params, vocab=len(tok)))
    return out


def _write_card(out: Path, kind: str, info: dict[str, Any]) -> None:
    (out / "unireward_tiny.json").write_text(json.dumps(dict(kind=kind, **info), indent=2))
    (out / "README.md").write_text(
        f"# Tiny {kind} checkpoint (unireward)\n\nBuilt locally by `unireward models build-tiny --kind {kind}` "
        f"with random weights (seeded) for tests and the demo. Not a trained model.\n\n```json\n"
        f"{json.dumps(info, indent=2)}\n```\n"
    )


# ------------------------------------------------------------------------------------ diffusers
def _clip_text(seed: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = build_tokenizer(1024)
    tok.model_max_length = 32
    tok.padding_side = "right"
    import torch

    torch.manual_seed(seed)
    enc = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=32,
            projection_dim=32,
            bos_token_id=tok.convert_tokens_to_ids("<|im_start|>"),
            eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
            pad_token_id=tok.pad_token_id,
        )
    )
    return tok, enc


def _tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        sample_size=32,
    )


def _build_tiny_diffusion(out: str | os.PathLike, seed: int, video: bool) -> Path:
    import diffusers
    import torch

    out = Path(out)
    tok, enc = _clip_text(seed)
    dim = "3D" if video else "2D"
    torch.manual_seed(seed)
    unet_cls = diffusers.UNet3DConditionModel if video else diffusers.UNet2DConditionModel
    unet = unet_cls(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=32,
        attention_head_dim=8,
        down_block_types=(f"CrossAttnDownBlock{dim}", f"DownBlock{dim}"),
        up_block_types=(f"UpBlock{dim}", f"CrossAttnUpBlock{dim}"),
    )
    parts = dict(
        vae=_tiny_vae(),
        text_encoder=enc,
        tokenizer=tok,
        unet=unet,
        scheduler=diffusers.DDPMScheduler(
            num_train_timesteps=1000, beta_schedule="scaled_linear", clip_sample=False, steps_offset=1
        ),
    )
    if video:
        pipe = diffusers.TextToVideoSDPipeline(**parts)
    else:
        pipe = diffusers.StableDiffusionPipeline(
            **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
    pipe.save_pretrained(out)
    kind = "t2v" if video else "t2i"
    _write_card(out, kind, dict(seed=seed, unet_parameters=sum(p.numel() for p in unet.parameters())))
    return out


def build_tiny_t2i(out: str | os.PathLike, seed: int = 0) -> Path:
    """A tiny StableDiffusionPipeline (SD1.5 layout: UNet2DConditionModel, AutoencoderKL, CLIP) folder."""
    return _build_tiny_diffusion(out, seed, video=False)


def build_tiny_t2v(out: str | os.PathLike, seed: int = 0) -> Path:
    """A tiny TextToVideoSDPipeline (UNet3DConditionModel) folder."""
    return _build_tiny_diffusion(out, seed, video=True)


def build_tiny(kind: str, out: str | os.PathLike, **kwargs: Any) -> Path:
    builders = {"judge": build_tiny_judge, "t2i": build_tiny_t2i, "t2v": build_tiny_t2v}
    if kind not in builders:
        raise ValueError(f"unknown tiny checkpoint kind {kind!r}; expected one of {sorted(builders)}")
    return builders[kind](out, **kwargs)
