"""Fidelity to the released UnifiedReward checkpoints: a profile imported from a checkout of the
official repository (here a stand-in with the same layout and code shapes, ``upstream_fixture``)
makes the judge build exactly the input the official inference builds (``upstream_reference``, a
transcription of its rules): the same input_ids, pixels, grids and second_per_grid_ts, for every
(generation, task, mode) the official Qwen and LLaVA code covers, images of several sizes and
videos of several lengths and frame rates. Also: the importer's report and errors, and the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from unireward.io.media import encode_video
from unireward.judge.model import RewardModel
from unireward.judge.protocols import ProtocolRegistry
from unireward.judge.types import JudgeItem, Mode
from unireward.judge.upstream import UpstreamError, dump_profile, import_upstream, upstream_map
from unireward.models.tiny import build_tiny_judge
from upstream_fixture import BROKEN, TEXTS, official_text, write_tree
from upstream_reference import official_inputs

MAP = upstream_map()
CASES = [(g, s) for g, gen in MAP["generations"].items() for s in gen["scripts"] if s["path"] != BROKEN]
QWEN3 = ("2.0", "think-qwen3")  # served by vLLM on Qwen3-VL checkpoints: checked on a Qwen3-VL judge
IMAGE_SIZES = [(50, 40), (1000, 1000), (2400, 1800)]  # below 3136 px, about 1 MP, above 4 MP (w, h)
VIDEOS = {  # frames, fps, (w, h): fewer frames than the sampling's minimum, an odd count, a high rate, big frames
    "short": (3, 30, (64, 48)),
    "odd": (13, 8, (96, 64)),
    "fast": (60, 60, (64, 64)),
    "large": (48, 24, (1280, 720)),
}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> Path:
    return write_tree(tmp_path_factory.mktemp("upstream"))


@pytest.fixture(scope="module")
def profile(upstream, tmp_path_factory) -> Path:
    report = import_upstream(upstream)
    path = tmp_path_factory.mktemp("profile") / "unifiedreward.yaml"
    path.write_text(dump_profile(report.profile), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def judges(tmp_path_factory, profile):
    q25 = build_tiny_judge(tmp_path_factory.mktemp("q25") / "judge", arch="qwen2_5_vl", size="nano")
    q3 = build_tiny_judge(tmp_path_factory.mktemp("q3") / "judge", arch="qwen3_vl", size="nano")
    return {
        "qwen2_5_vl": RewardModel(q25, protocols=profile, device="cpu"),
        "qwen3_vl": RewardModel(q3, protocols=profile, device="cpu"),
    }


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    out = {}
    for w, h in IMAGE_SIZES:
        arr = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
        arr[: h // 2] = (200, 40, 40)  # some structure, so resampling differences would show
        out[f"image_{w}x{h}"] = str(root / f"{w}x{h}.png")
        Image.fromarray(arr).save(out[f"image_{w}x{h}"])
    for name, (n, fps, (w, h)) in VIDEOS.items():
        frames = [np.full((h, w, 3), (20 * k) % 255, dtype=np.uint8) for k in range(n)]
        for k, f in enumerate(frames):
            f[:, : (k * 7) % w] = (30, 160, 60)
        out[f"video_{name}"] = str(root / f"{name}.mp4")
        Path(out[f"video_{name}"]).write_bytes(encode_video(frames, fps=fps))
    return out


def _item(task: str, mode: str, visuals: list[str]) -> tuple[JudgeItem, dict[str, str]]:
    """The item and the values of the official script's variables for it."""
    pair = Mode(mode).is_pair
    if task.endswith("generation"):
        cands = visuals[:2] if pair else visuals[:1]
        return JudgeItem(task, "a red fox in snow", cands, mode=mode), dict(prompt="a red fox in snow")
    answers = ["It is red.", "It is blue."] if pair else ["It is red."]
    values = dict(Query="What colour is the fox?", R1=answers[0], R2=answers[-1], Response=answers[0])
    return JudgeItem(task, values["Query"], answers, context=visuals[0], mode=mode), values


def _official(rm, gen_key: str, script: dict, item: JudgeItem, values: dict[str, str]):
    gen = MAP["generations"][gen_key]
    text = official_text(script["path"], **values)
    for token in gen.get("strip_visual_tokens", []):
        text = re.sub(rf"^(?:\s*{re.escape(token)}\s*)+", "", text)
    media = {**gen["media"], **script.get("media", {})}
    kind = "video" if "video" in script["task"] else "image"
    visuals = ([item.context] if item.context else []) + (
        list(item.candidates) if script["task"].endswith("generation") else []
    )
    if media["video_mode"] == "qwen":
        return official_inputs(rm.processor, kind, text, visuals, "qwen")
    frames = dict(
        n=media["num_frames"],
        rule=media["frame_index"] if media["frame_index"] != "linspace_trunc" else "trunc",
        size=tuple(media["frame_size"]) if media.get("frame_size") else None,
        quality=media.get("jpeg_quality"),
    )
    return official_inputs(rm.processor, kind, text, visuals, "client", frames, media.get("jpeg_quality"))


def _assert_same(ours: dict, official: dict) -> None:
    assert ours["input_ids"].tolist() == official["input_ids"].tolist()
    for key in ("pixel_values", "pixel_values_videos", "image_grid_thw", "video_grid_thw"):
        assert (key in ours) == (key in official), key
        if key in ours:
            assert ours[key].shape == official[key].shape, key
            assert torch.equal(ours[key], official[key]), key
    if "second_per_grid_ts" in official:
        assert _floats(ours["second_per_grid_ts"]) == pytest.approx(_floats(official["second_per_grid_ts"]))


def _floats(x) -> list[float]:
    return [float(v) for v in (x.tolist() if hasattr(x, "tolist") else x)]


def _judge(judges, gen_key):
    return judges["qwen3_vl" if gen_key in QWEN3 else "qwen2_5_vl"]


@pytest.mark.parametrize("gen_key,script", CASES, ids=[f"{g}:{Path(s['path']).name}" for g, s in CASES])
def test_every_official_case_gets_the_official_input(judges, media, gen_key, script):
    rm = _judge(judges, gen_key)
    kind = "video" if "video" in script["task"] else "image"
    visuals = (
        [media["video_odd"], media["video_fast"]]
        if kind == "video"
        else [media["image_1000x1000"], media["image_50x40"]]
    )
    item, values = _item(script["task"], script["mode"], visuals)
    protocol = rm.protocols.get(MAP["generations"][gen_key]["family"], script["task"], script["mode"])
    _assert_same(rm.encode_item(item, protocol), _official(rm, gen_key, script, item, values))


SIZED = [
    (g, s)
    for g, s in CASES
    if (g, Path(s["path"]).name)
    in {
        ("1.x-qwen", "qwen_pair_rank_image_generation.py"),
        ("2.0", "pair_score_image_generation.py"),
        ("1.x-qwen", "qwen_pair_rank_video_generation.py"),
        ("1.x-qwen", "qwen_point_score_video_understanding.py"),
        ("2.0", "point_score_APS_video_generation.py"),
        ("think-qwen3", "qwen3_infer_cot_video_understanding.py"),
        ("1.x-llava", "point_score_video_generation.py"),
    }
]


@pytest.mark.parametrize("gen_key,script", SIZED, ids=[f"{g}:{Path(s['path']).name}" for g, s in SIZED])
def test_images_of_every_size_and_videos_of_every_length_and_rate(judges, media, gen_key, script):
    rm = _judge(judges, gen_key)
    family = MAP["generations"][gen_key]["family"]
    protocol = rm.protocols.get(family, script["task"], script["mode"])
    kind = "video" if "video" in script["task"] else "image"
    names = [f"video_{k}" for k in VIDEOS] if kind == "video" else [f"image_{w}x{h}" for w, h in IMAGE_SIZES]
    for a in names:
        item, values = _item(script["task"], script["mode"], [media[a], media[names[0]]])
        _assert_same(rm.encode_item(item, protocol), _official(rm, gen_key, script, item, values))


def test_the_official_video_sampling_sends_the_sampled_fps(judges, media):
    """120 frames at 24 fps: 10 frames, sampled at 2 fps, so each 2-frame grid step is 1 s; the
    short clip (3 frames at 30 fps): 2 frames, at 20 fps."""
    rm = judges["qwen2_5_vl"]
    protocol = rm.protocols.get("unifiedreward-qwen", "video_generation", "point_score")
    item, _ = _item("video_generation", "point_score", [media["video_short"]])
    enc = rm.encode_item(item, protocol)
    assert enc["video_grid_thw"][0][0].item() == 1  # 2 frames -> one temporal grid step
    assert _floats(enc["second_per_grid_ts"]) == pytest.approx([2 / 20.0])


def test_the_profile_names_its_source_and_every_script(upstream, profile):
    report = import_upstream(upstream)
    assert len(report.found) == len(TEXTS) == len(CASES)
    assert [m["path"] for m in report.missing] == [BROKEN] and "not valid Python" in report.missing[0]["reason"]
    reg = ProtocolRegistry.from_yaml(profile)
    assert reg.profile["source"]["repository"] == "CodeGoat24/UnifiedReward"
    assert len(reg.profile["digest"]) == 12
    assert {f for f in reg.families() if f.startswith("unifiedreward-")} == {
        g["family"] for g in MAP["generations"].values()
    }
    # the undedented triple-quoted prompt keeps its newlines, indentation and trailing spaces
    p = reg.get("unifiedreward-qwen", "image_understanding", "point_score")
    assert p.template.startswith("\n            Grade") and "100.  \n" in p.template
    assert p.max_new_tokens == 4096 and p.media["video_mode"] == "qwen" and p.media["exif_transpose"] is False
    think = reg.get("unifiedreward-think-qwen3", "video_generation", "pair_rank")
    assert think.reasons and not think.reads_logits and think.media["frame_index"] == "linspace_trunc"
    assert reg.get("unifiedreward-2.0", "image_generation", "pair_score").labels == ("Image 1", "Image 2")


def test_one_generation_is_a_profile_for_one_family(upstream):
    report = import_upstream(upstream, ["2.0"])
    assert report.profile["profile"]["family"] == "unifiedreward-2.0"
    assert set(report.profile["families"]) == {"unifiedreward-2.0"}
    reg = ProtocolRegistry.from_mapping(report.profile)
    assert reg.default_family == "unifiedreward-2.0"


def test_a_partial_checkout_reports_what_is_missing(tmp_path):
    root = write_tree(tmp_path / "repo")
    gone = "inference_qwen/video_generation/qwen_point_score_video_generation.py"
    (root / gone).unlink()
    (root / "inference_qwen/image_generation/qwen_point_score_image_generation.py").write_text(
        "messages = [{'content': [{'type': 'text', 'text': 'no caption here'}]}]\n"
    )
    report = import_upstream(root, ["1.x-qwen"])
    missing = {m["path"]: m["reason"] for m in report.missing}
    assert missing[gone] == "not in this checkout"
    assert "interpolates no caption" in missing["inference_qwen/image_generation/qwen_point_score_image_generation.py"]
    assert len(report.found) == 7


def test_an_unknown_layout_stops_with_a_clear_message(tmp_path):
    (tmp_path / "something").mkdir()
    (tmp_path / "something" / "script.py").write_text("print('hello')\n")
    with pytest.raises(UpstreamError, match="does not look like a checkout of CodeGoat24/UnifiedReward"):
        import_upstream(tmp_path)
    with pytest.raises(UpstreamError, match="no such folder"):
        import_upstream(tmp_path / "absent")
    with pytest.raises(UpstreamError, match="unknown generation"):
        import_upstream(tmp_path, ["3.0"])


def test_a_script_whose_prompt_is_built_another_way_is_reported_not_guessed(tmp_path):
    root = write_tree(tmp_path / "repo")
    path = root / "inference_qwen/image_generation/qwen_pair_rank_image_generation.py"
    path.write_text("messages = [{'content': [{'type': 'text', 'text': template.format(prompt=prompt)}]}]\n")
    report = import_upstream(root, ["1.x-qwen"])
    assert any("does not recognise" in m["reason"] for m in report.missing)


def test_cli_imports_and_checks_a_profile(upstream, tmp_path, media, judges):
    from unireward.cli import app

    runner = CliRunner()
    out = tmp_path / "p.yaml"
    res = runner.invoke(
        app, ["protocols", "import-upstream", str(upstream), "--out", str(out), "--generation", "1.x-qwen"]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["families"] == ["unifiedreward-qwen"] and summary["imported"] == 9
    res = runner.invoke(
        app,
        [
            "protocols",
            "check",
            str(out),
            "--model",
            judges["qwen2_5_vl"].model_path,
            "--image",
            media["image_1000x1000"],
            "--video",
            media["video_odd"],
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = {r["protocol"]: r for r in json.loads(res.stdout)}
    assert len(rows) == 9
    vid = rows["unifiedreward-qwen/video_generation/pair_rank"]
    assert vid["visuals"]["frames"]["indices"] == [0, 4, 8, 12] and vid["visuals"]["frames"]["sent_as"] == "video"
    assert "<|video_pad|>x" in vid["text"] and "Text Caption: [two red circles on the left]" in vid["text"]
    assert rows["unifiedreward-qwen/image_generation/pair_rank"]["max_new_tokens"] == 512
    res = runner.invoke(app, ["protocols", "import-upstream", str(tmp_path / "nothing"), "--out", str(out)])
    assert res.exit_code == 2 and "error: " in res.output and "no such folder" in res.output
