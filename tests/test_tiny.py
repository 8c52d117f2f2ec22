"""unireward.models.tiny: tiny but real checkpoints that load through the standard from_pretrained path.

The judges (Qwen2.5-VL, Qwen2-VL, Qwen3-VL architectures) are checked with transformers' Auto
classes: deterministic weights, a forward pass and generation on image and video prompts, and the
tokenizer / chat template the judge code relies on. The diffusers pipelines are loaded and run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unireward.models import tiny
from unireward.models.tiny import (
    CHAT_TEMPLATE,
    SPECIAL_TOKENS,
    build_tiny,
    build_tiny_judge,
    build_tiny_t2i,
    build_tiny_t2v,
)

ARCHS = ("qwen2_5_vl", "qwen2_vl", "qwen3_vl")
MODEL_CLASS = {
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen3_vl": "Qwen3VLForConditionalGeneration",
}
PROCESSOR_CLASS = {"qwen2_5_vl": "Qwen2_5_VLProcessor", "qwen2_vl": "Qwen2VLProcessor", "qwen3_vl": "Qwen3VLProcessor"}
DEFAULT_SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
VIDEO_META = dict(total_num_frames=8, fps=8.0, frames_indices=list(range(8)))


# ------------------------------------------------------------------------------------- helpers
def tensors(folder: Path) -> dict[str, object]:
    """Every tensor of every safetensors file under ``folder``, keyed by relative file and name."""
    from safetensors.torch import load_file

    out = {}
    for f in sorted(Path(folder).rglob("*.safetensors")):
        for k, v in load_file(str(f)).items():
            out[f"{f.relative_to(folder).as_posix()}:{k}"] = v
    assert out, f"no safetensors under {folder}"
    return out


def assert_same_tensors(a: dict, b: dict) -> None:
    import torch

    assert sorted(a) == sorted(b)
    different = [k for k in a if a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different[:5]}"


def image(seed: int = 0, size: int = 64) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def frames(seed: int = 0, n: int = 8, size: int = 64) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def user(*parts: dict) -> list[dict]:
    return [{"role": "user", "content": list(parts)}]


def token_id(tok, text: str) -> int:
    ids = tok.encode(text, add_special_tokens=False)
    assert len(ids) == 1, f"{text!r} is not one token: {ids}"
    return ids[0]


def readme_info(folder: Path) -> dict:
    text = (folder / "README.md").read_text()
    m = re.search(r"```json\n(.*?)\n```", text, re.S)
    assert m, text
    return json.loads(m[1])


# ------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def judge_dirs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("tiny_judges")
    return {arch: build_tiny_judge(base / arch, arch=arch, size="nano", seed=0) for arch in ARCHS}


@pytest.fixture(scope="module")
def loaded(judge_dirs):
    """arch -> (processor, model, loading info), through the standard Auto classes."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = {}
    for arch, folder in judge_dirs.items():
        processor = AutoProcessor.from_pretrained(folder)
        model, info = AutoModelForImageTextToText.from_pretrained(folder, output_loading_info=True)
        out[arch] = (processor, model.eval(), info)
    return out


@pytest.fixture(scope="module")
def tok(loaded):
    return loaded["qwen2_5_vl"][0].tokenizer


# ------------------------------------------------------------------------------------- judges
@pytest.mark.parametrize("arch", ARCHS)
def test_judge_folder_loads_through_the_auto_classes(arch, judge_dirs, loaded):
    folder = judge_dirs[arch]
    for name in (
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "unireward_tiny.json",
        "README.md",
    ):
        assert (folder / name).is_file(), name
    assert json.loads((folder / "config.json").read_text())["model_type"] == arch
    processor, model, info = loaded[arch]
    assert type(model).__name__ == MODEL_CLASS[arch]
    assert type(processor).__name__ == PROCESSOR_CLASS[arch]
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert model.generation_config.do_sample is False
    assert model.generation_config.eos_token_id == processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert model.generation_config.pad_token_id == processor.tokenizer.convert_tokens_to_ids("<|endoftext|>")


@pytest.mark.parametrize("arch", ARCHS)
def test_judge_build_is_deterministic_and_reload_is_exact(arch, judge_dirs, loaded, tmp_path):
    import torch

    folder = judge_dirs[arch]
    built = tensors(folder)
    # the same seed gives the same weights and tokenizer, byte for byte
    again = build_tiny_judge(tmp_path / "again", arch=arch, size="nano", seed=0)
    assert_same_tensors(built, tensors(again))
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (folder / name).read_bytes() == (again / name).read_bytes(), name
    # another seed: same tokenizer, other weights
    other = build_tiny_judge(tmp_path / "other", arch=arch, size="nano", seed=1)
    assert (folder / "tokenizer.json").read_bytes() == (other / "tokenizer.json").read_bytes()
    other_t = tensors(other)
    assert sorted(other_t) == sorted(built)
    assert any(not torch.equal(built[k], other_t[k]) for k in built)
    # the reloaded model holds exactly the built weights: saving it again gives the same tensors
    _, model, _ = loaded[arch]
    model.save_pretrained(tmp_path / "resaved")
    assert_same_tensors(built, tensors(tmp_path / "resaved"))
    assert sum(p.numel() for p in model.parameters()) == sum(t.numel() for t in built.values())


@pytest.mark.parametrize("arch", ARCHS)
def test_judge_forward_on_an_image_prompt(arch, loaded):
    import torch

    processor, model, _ = loaded[arch]
    tok = processor.tokenizer
    messages = user({"type": "image"}, {"type": "text", "text": "Rate this image. Final Score:"})
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert text == (
        DEFAULT_SYSTEM + "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
        "Rate this image. Final Score:<|im_end|>\n<|im_start|>assistant\n"
    )
    enc = processor(text=[text], images=[image(0)], return_tensors="pt")
    ids = enc["input_ids"][0]
    n_pad = int((ids == tok.convert_tokens_to_ids("<|image_pad|>")).sum())
    merge = processor.image_processor.merge_size
    assert n_pad == int(enc["image_grid_thw"].prod()) // merge**2 > 0
    with torch.no_grad():
        logits = model(**enc).logits
    vocab = len(tok)
    assert model.config.text_config.vocab_size == vocab
    assert logits.shape == (1, ids.shape[0], vocab)
    assert torch.isfinite(logits).all()
    # the image reaches the language model: another image changes the last-token logits
    enc2 = processor(text=[text], images=[image(1)], return_tensors="pt")
    assert torch.equal(enc2["input_ids"], enc["input_ids"])
    with torch.no_grad():
        logits2 = model(**enc2).logits
    assert not torch.allclose(logits[0, -1], logits2[0, -1])


@pytest.mark.parametrize("arch", ARCHS)
def test_judge_generate(arch, loaded):
    import torch

    processor, model, _ = loaded[arch]
    text = processor.apply_chat_template(
        user({"type": "image"}, {"type": "text", "text": "Which is better?"}),
        add_generation_prompt=True,
        tokenize=False,
    )
    enc = processor(text=[text], images=[image(2)], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=4)
        out2 = model.generate(**enc, max_new_tokens=4)
    n = enc["input_ids"].shape[1]
    assert out.shape[0] == 1 and n < out.shape[1] <= n + 4
    assert torch.equal(out[:, :n], enc["input_ids"])
    assert torch.equal(out, out2), "greedy decoding must be deterministic"
    assert ((out[:, n:] >= 0) & (out[:, n:] < len(processor.tokenizer))).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_judge_forward_on_a_video_prompt(arch, loaded):
    import torch

    processor, model, _ = loaded[arch]
    tok = processor.tokenizer
    messages = user({"type": "video"}, {"type": "text", "text": "Does the circle move left?"})
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert "<|vision_start|><|video_pad|><|vision_end|>Does the circle move left?<|im_end|>" in text
    enc = processor(
        text=[text], videos=[frames(0)], video_metadata=[dict(VIDEO_META)], do_sample_frames=False, return_tensors="pt"
    )
    ids = enc["input_ids"][0]
    grid = enc["video_grid_thw"]
    assert grid.shape == (1, 3) and int(grid[0, 0]) == 8 // 2  # temporal patches of 2 frames
    merge = processor.video_processor.merge_size
    n_pad = int((ids == tok.convert_tokens_to_ids("<|video_pad|>")).sum())
    assert n_pad == int(grid.prod()) // merge**2 > 0
    with torch.no_grad():
        logits = model(**enc).logits
        out = model.generate(**enc, max_new_tokens=3)
    assert logits.shape == (1, ids.shape[0], len(tok))
    assert torch.isfinite(logits).all()
    assert out.shape[1] > ids.shape[0]
    # the frames reach the model
    enc2 = processor(
        text=[text], videos=[frames(1)], video_metadata=[dict(VIDEO_META)], do_sample_frames=False, return_tensors="pt"
    )
    with torch.no_grad():
        logits2 = model(**enc2).logits
    assert not torch.allclose(logits[0, -1], logits2[0, -1])


# ------------------------------------------------------------------------------------- tokenizer
@pytest.mark.parametrize("arch", ARCHS)
def test_special_tokens_are_single_ids(arch, loaded):
    processor, model, _ = loaded[arch]
    tok = processor.tokenizer
    vocab = tok.get_vocab()
    ids = {}
    for t in SPECIAL_TOKENS:
        assert t in vocab, t
        ids[t] = token_id(tok, t)
        assert tok.convert_tokens_to_ids(t) == ids[t] == vocab[t]
        assert tok.decode([ids[t]]) == t
    assert len(set(ids.values())) == len(SPECIAL_TOKENS)
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert model.config.image_token_id == ids["<|image_pad|>"]
    assert model.config.video_token_id == ids["<|video_pad|>"]
    assert model.config.vision_start_token_id == ids["<|vision_start|>"]
    # special tokens stay whole inside text
    enc = tok.encode("<|im_start|>user\nhi<|im_end|>", add_special_tokens=False)
    assert enc[0] == ids["<|im_start|>"] and enc[-1] == ids["<|im_end|>"]
    assert tok.encode("hi", add_special_tokens=False) == tok.encode("hi")  # no BOS is added


def test_chat_template_renders_exactly(loaded, tok):
    processor = loaded["qwen2_5_vl"][0]
    assert processor.chat_template == CHAT_TEMPLATE
    messages = user({"type": "image"}, {"type": "text", "text": "Is it red?"})
    expected = DEFAULT_SYSTEM + "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Is it red?<|im_end|>\n"
    for render in (processor.apply_chat_template, tok.apply_chat_template):
        assert render(messages, add_generation_prompt=True, tokenize=False) == expected + "<|im_start|>assistant\n"
        assert render(messages, add_generation_prompt=False, tokenize=False) == expected
    # images in other spellings, two visuals in order, and a video
    two = user(
        {"type": "image", "image": "a.png"},
        {"type": "image_url", "image_url": "b.png"},
        {"type": "text", "text": "Which?"},
    )
    assert processor.apply_chat_template(two, tokenize=False) == (
        DEFAULT_SYSTEM + "<|im_start|>user\n" + "<|vision_start|><|image_pad|><|vision_end|>" * 2 + "Which?<|im_end|>\n"
    )
    vid = user({"type": "video"}, {"type": "text", "text": "Moving?"})
    assert processor.apply_chat_template(vid, tokenize=False) == (
        DEFAULT_SYSTEM + "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Moving?<|im_end|>\n"
    )


def test_chat_template_string_content_and_system_message(tok):
    plain = [{"role": "user", "content": "hello"}]
    assert tok.apply_chat_template(plain, add_generation_prompt=True, tokenize=False) == (
        DEFAULT_SYSTEM + "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    )
    with_system = [{"role": "system", "content": "Be strict."}, {"role": "user", "content": "hello"}]
    text = tok.apply_chat_template(with_system, add_generation_prompt=True, tokenize=False)
    assert (
        text == "<|im_start|>system\nBe strict.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    )
    assert "helpful assistant" not in text
    turns = plain + [{"role": "assistant", "content": "Final Score: 7"}]
    assert tok.apply_chat_template(turns, tokenize=False) == (
        DEFAULT_SYSTEM + "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\nFinal Score: 7<|im_end|>\n"
    )
    ids = tok.apply_chat_template(plain, add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert tok.decode(ids) == DEFAULT_SYSTEM + "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"


def test_digits_tokenize_one_by_one(tok):
    digit = {str(d): token_id(tok, str(d)) for d in range(10)}
    assert len(set(digit.values())) == 10
    ids = tok.encode("Final Score: 10", add_special_tokens=False)
    assert ids[-2:] == [digit["1"], digit["0"]]
    assert tok.decode(ids) == "Final Score: 10"
    ids = tok.encode("Score: 100 and 7", add_special_tokens=False)
    assert [digit["1"], digit["0"], digit["0"]] == ids[ids.index(digit["1"]) : ids.index(digit["1"]) + 3]
    assert ids[-1] == digit["7"]
    for number in ("42", "2024", "99"):
        pieces = tok.encode(f"Final Score: {number}", add_special_tokens=False)
        assert pieces[-len(number) :] == [digit[c] for c in number]


def test_verdict_phrases_differ_in_one_token(tok):
    one = tok.encode("Image 1 is better", add_special_tokens=False)
    two = tok.encode("Image 2 is better", add_special_tokens=False)
    assert len(one) == len(two)
    diff = [k for k in range(len(one)) if one[k] != two[k]]
    assert len(diff) == 1
    k = diff[0]
    assert tok.decode([one[k]]) == "1" and tok.decode([two[k]]) == "2"
    for a, b in (("Video 1 is better", "Video 2 is better"), ("Answer 1 is better", "Answer 2 is better")):
        x, y = tok.encode(a, add_special_tokens=False), tok.encode(b, add_special_tokens=False)
        assert len(x) == len(y) and sum(p != q for p, q in zip(x, y)) == 1


# ------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs", [dict(arch="llama"), dict(arch="qwen2.5_vl"), dict(size="huge"), dict(size="")])
def test_build_tiny_judge_rejects_unknown_arch_or_size(tmp_path, kwargs):
    out = tmp_path / "judge"
    with pytest.raises(ValueError):
        build_tiny_judge(out, **{"size": "nano", **kwargs})
    assert not out.exists()


def test_build_tiny_rejects_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="nope"):
        build_tiny("nope", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_build_tiny_dispatches_to_the_judge(tmp_path):
    out = build_tiny("judge", tmp_path / "j", arch="qwen2_vl", size="nano", seed=3)
    card = json.loads((out / "unireward_tiny.json").read_text())
    assert card["kind"] == "judge" and card["arch"] == "qwen2_vl" and card["size"] == "nano" and card["seed"] == 3


# ------------------------------------------------------------------------------------- cards
@pytest.mark.parametrize("arch", ARCHS)
def test_judge_card_matches_the_model(arch, judge_dirs, loaded):
    folder = judge_dirs[arch]
    processor, model, _ = loaded[arch]
    card = json.loads((folder / "unireward_tiny.json").read_text())
    assert card["kind"] == "judge" and card["arch"] == arch and card["size"] == "nano" and card["seed"] == 0
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    assert card["vocab"] == len(processor.tokenizer)
    readme = (folder / "README.md").read_text()
    assert readme.startswith("# Tiny judge checkpoint")
    info = readme_info(folder)
    assert info == {k: v for k, v in card.items() if k != "kind"}


def test_judge_sizes_grow(tmp_path):
    """``size`` is honoured: each named size has more parameters than the one before."""
    counts = []
    for size in ("nano", "small"):
        out = build_tiny_judge(tmp_path / size, arch="qwen2_5_vl", size=size)
        counts.append(json.loads((out / "unireward_tiny.json").read_text())["parameters"])
    assert counts[0] < counts[1]
    cfg = json.loads((tmp_path / "small" / "config.json").read_text())
    assert cfg["text_config"]["hidden_size"] == tiny.JUDGE_SIZES["small"]["hidden"]
    assert cfg["text_config"]["num_hidden_layers"] == tiny.JUDGE_SIZES["small"]["layers"]


# ------------------------------------------------------------------------------------- diffusers
@pytest.fixture(scope="module")
def t2i_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("t2i")
    return build_tiny_t2i(base / "a", seed=0), build_tiny_t2i(base / "b", seed=0), build_tiny_t2i(base / "c", seed=1)


@pytest.mark.slow
def test_t2i_pipeline_loads_and_generates(t2i_dirs):
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    folder = t2i_dirs[0]
    pipe = StableDiffusionPipeline.from_pretrained(folder)
    assert isinstance(pipe.unet, UNet2DConditionModel)
    assert isinstance(pipe.vae, AutoencoderKL)
    assert isinstance(pipe.text_encoder, CLIPTextModel)
    out = pipe(
        "two red circles on the left",
        num_inference_steps=2,
        height=32,
        width=32,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    )
    images = out.images
    assert isinstance(images, np.ndarray) and images.shape == (1, 32, 32, 3)
    assert np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0
    card = json.loads((folder / "unireward_tiny.json").read_text())
    assert card["kind"] == "t2i" and card["seed"] == 0
    assert card["unet_parameters"] == sum(p.numel() for p in pipe.unet.parameters())
    assert readme_info(folder) == {k: v for k, v in card.items() if k != "kind"}
    assert (folder / "README.md").read_text().startswith("# Tiny t2i checkpoint")


@pytest.mark.slow
def test_t2i_same_seed_gives_identical_weights(t2i_dirs):
    import torch

    a, b, c = (tensors(d) for d in t2i_dirs)
    assert any(k.startswith("unet/") for k in a) and any(k.startswith("vae/") for k in a)
    assert any(k.startswith("text_encoder/") for k in a)
    assert_same_tensors(a, b)
    assert sorted(a) == sorted(c)
    assert any(not torch.equal(a[k], c[k]) for k in a if k.startswith("unet/"))
    assert any(not torch.equal(a[k], c[k]) for k in a if k.startswith("text_encoder/"))


@pytest.mark.slow
def test_t2v_pipeline_loads_and_generates(tmp_path):
    import torch
    from diffusers import TextToVideoSDPipeline, UNet3DConditionModel

    folder = build_tiny_t2v(tmp_path / "t2v", seed=0)
    assert (folder / "README.md").is_file() and (folder / "unireward_tiny.json").is_file()
    pipe = TextToVideoSDPipeline.from_pretrained(folder)
    assert isinstance(pipe.unet, UNet3DConditionModel)
    out = pipe(
        "a red circle moving left slowly",
        num_frames=4,
        height=32,
        width=32,
        num_inference_steps=2,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    )
    video = np.asarray(out.frames)
    assert video.shape == (1, 4, 32, 32, 3)
    assert np.isfinite(video).all()
    card = json.loads((folder / "unireward_tiny.json").read_text())
    assert card["kind"] == "t2v" and card["seed"] == 0
    assert card["unet_parameters"] == sum(p.numel() for p in pipe.unet.parameters())
    assert readme_info(folder) == {k: v for k, v in card.items() if k != "kind"}
    again = build_tiny_t2v(tmp_path / "again", seed=0)
    assert_same_tensors(tensors(folder), tensors(again))
