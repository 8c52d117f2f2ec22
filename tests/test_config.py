"""Typed configuration: defaults, parsing from dicts and YAML, error messages naming the bad field,
MediaConfig -> MediaLimits, and JudgeConfig.build() on the tiny judge."""

from __future__ import annotations

import dataclasses

import pydantic
import pytest

from unireward.config import ConfigError, JudgeConfig, MediaConfig, load_yaml, parse_config
from unireward.io.media import MediaLimits
from unireward.judge.records import read_items
from unireward.judge.types import Status


def test_judge_config_defaults():
    c = JudgeConfig(model="some/folder")
    assert c.model == "some/folder"
    assert c.family is None  # the checkpoint profile's family (qwen for the built-in one)
    assert c.protocols is None
    assert c.method == "logits"
    assert c.swap is False
    assert c.device is None
    assert c.dtype == "auto"
    assert c.attn_implementation == "sdpa"
    assert c.token_budget == 16384
    assert c.max_batch_size == 32
    assert c.max_new_tokens == 256
    assert c.media == MediaConfig()
    assert c.media.num_frames == 8 and c.media.fps is None and c.media.max_frames == 32


def test_model_is_required():
    with pytest.raises(ConfigError, match=r"model: Field required"):
        parse_config({}, JudgeConfig)


def test_configs_are_frozen():
    c = JudgeConfig(model="m")
    with pytest.raises(pydantic.ValidationError):
        c.method = "generate"


def test_parse_config_from_dict():
    c = parse_config(
        {
            "model": "/ckpt",
            "family": "llava",
            "method": "generate",
            "swap": True,
            "dtype": "bfloat16",
            "token_budget": 4096,
            "max_batch_size": 4,
            "media": {"fps": 2.5, "num_frames": 4, "max_pixels": 50176},
        },
        JudgeConfig,
    )
    assert isinstance(c, JudgeConfig)
    assert (c.model, c.family, c.method, c.swap, c.dtype) == ("/ckpt", "llava", "generate", True, "bfloat16")
    assert (c.token_budget, c.max_batch_size) == (4096, 4)
    assert isinstance(c.media, MediaConfig)
    assert (c.media.fps, c.media.num_frames, c.media.max_pixels) == (2.5, 4, 50176)
    assert c.media.max_frames == 32  # untouched default


@pytest.mark.parametrize(
    "data, where",
    [
        ({"model": "m", "modle_typo": 1}, "modle_typo"),
        ({"model": "m", "media": {"framez": 3}}, "media.framez"),
    ],
)
def test_unknown_field_is_named(data, where):
    with pytest.raises(ConfigError) as e:
        parse_config(data, JudgeConfig, "my.yaml")
    msg = str(e.value)
    assert "my.yaml" in msg
    assert f"{where}: unknown field" in msg


@pytest.mark.parametrize(
    "data, where",
    [
        ({"model": "m", "token_budget": -1}, "token_budget"),
        ({"model": "m", "token_budget": 0}, "token_budget"),
        ({"model": "m", "method": "vibes"}, "method"),
        ({"model": "m", "dtype": "int4"}, "dtype"),
        ({"model": "m", "swap": "perhaps"}, "swap"),
        ({"model": "m", "media": {"fps": 0}}, "media.fps"),
        ({"model": "m", "media": {"num_frames": -2}}, "media.num_frames"),
    ],
)
def test_wrong_types_name_the_dotted_location(data, where):
    with pytest.raises(ConfigError) as e:
        parse_config(data, JudgeConfig)
    msg = str(e.value)
    assert f"  - {where}: " in msg
    assert "1 problem(s)" in msg


def test_several_problems_are_all_reported():
    with pytest.raises(ConfigError) as e:
        parse_config({"model": "m", "token_budget": -1, "method": "vibes", "media": {"fps": 0}, "x": 1}, JudgeConfig)
    msg = str(e.value)
    assert "4 problem(s)" in msg
    for where in ("token_budget", "method", "media.fps", "x"):
        assert f"  - {where}: " in msg
    assert "'vibes'" in msg  # the offending value is shown


def test_non_mapping_top_level_is_a_config_error():
    with pytest.raises(ConfigError, match=r"\(top level\)"):
        parse_config(["model", "m"], JudgeConfig)


def test_load_yaml(tmp_path):
    p = tmp_path / "judge.yaml"
    p.write_text("model: /ckpt/judge\nmethod: generate\nmax_new_tokens: 12\nmedia:\n  fps: 1.5\n  max_frames: 6\n")
    c = load_yaml(p, JudgeConfig)
    assert c == JudgeConfig(
        model="/ckpt/judge", method="generate", max_new_tokens=12, media=MediaConfig(fps=1.5, max_frames=6)
    )
    assert load_yaml(str(p), JudgeConfig) == c  # a str path works too


def test_load_yaml_errors_name_the_file(tmp_path):
    p = tmp_path / "bad_field.yaml"
    p.write_text("model: m\nmedia:\n  fps: 0\n")
    with pytest.raises(ConfigError) as e:
        load_yaml(p, JudgeConfig)
    assert str(p) in str(e.value) and "media.fps" in str(e.value)


def test_load_yaml_missing_file(tmp_path):
    p = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as e:
        load_yaml(p, JudgeConfig)
    assert "not found" in str(e.value)
    assert str(p) in str(e.value)


def test_load_yaml_invalid_yaml(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("model: [unclosed\n  media: {\n")
    with pytest.raises(ConfigError) as e:
        load_yaml(p, JudgeConfig)
    assert "not valid YAML" in str(e.value)
    assert str(p) in str(e.value)


def test_load_yaml_empty_file(tmp_path):
    p = tmp_path / "empty.yaml"
    p.write_text("")
    with pytest.raises(ConfigError) as e:
        load_yaml(p, JudgeConfig)
    assert str(p) in str(e.value)


def test_media_config_limits():
    m = MediaConfig(max_pixels=1000, max_decode_pixels=2000, max_bytes=3000, num_frames=5, fps=2.0, max_frames=7)
    lim = m.limits()
    assert isinstance(lim, MediaLimits)
    assert dataclasses.asdict(lim) == m.model_dump()
    assert lim == MediaLimits(
        max_pixels=1000, max_decode_pixels=2000, max_bytes=3000, num_frames=5, fps=2.0, max_frames=7
    )
    # the defaults agree with MediaLimits' own
    assert MediaConfig().limits() == MediaLimits()


def test_a_judge_config_builds_a_judge_that_judges_an_item(tiny_judge_dir, world):
    cfg = JudgeConfig(
        model=str(tiny_judge_dir),
        max_new_tokens=4,
        token_budget=8192,
        max_batch_size=2,
        media=MediaConfig(max_pixels=64 * 64),
    )
    from unireward.judge.backends import make_judge
    from unireward.judge.model import RewardModel

    rm = make_judge(cfg)

    assert isinstance(rm, RewardModel)
    assert rm.family == "qwen"
    assert (rm.token_budget, rm.max_batch_size, rm.max_new_tokens) == (8192, 2, 4)
    assert rm.media == MediaLimits(max_pixels=64 * 64)
    assert str(rm.dtype) == ("torch.bfloat16" if rm.device.type == "cuda" else "torch.float32")

    items, _ = read_items(world.items["image_generation"])
    pair = next(it for it in items if it.resolved_mode().value == "pair_rank")
    (j,) = rm.judge([pair])
    assert j.status is Status.OK, j.reason
    assert j.verdict in ("first", "second", "tie")
    assert sum(j.probs.values()) == pytest.approx(1.0)


def test_a_judge_config_builds_with_its_dtype(tiny_judge_dir):
    from unireward.judge.backends import make_judge

    rm = make_judge(JudgeConfig(model=str(tiny_judge_dir), dtype="float32", device="cpu"))
    assert str(rm.dtype) == "torch.float32" and rm.device.type == "cpu"


def test_judge_config_accepts_a_path(tiny_judge_dir):
    assert JudgeConfig(model=tiny_judge_dir).model == str(tiny_judge_dir)
