"""Grounded pretraining of the tiny VLM (unireward.models.pretrain) and the tiny judge's pixel
normalisation that it depends on."""

import json

import numpy as np
import pytest
import torch

from unireward.io.media import load_media
from unireward.judge.model import RewardModel
from unireward.models import pretrain as P
from unireward.models.tiny import BACKGROUND_GREY
from unireward.synth import world as W
from unireward.train import sft


@pytest.mark.parametrize("kind", list(P.KINDS))
def test_every_kind_renders_and_encodes(kind, rm):
    rng = np.random.default_rng(0)
    ex = P.example(kind, rng)
    n_visuals = 2 if kind.endswith("describe_k") else 1
    assert ex.media_kind == ("video" if kind.startswith("video_") else "image")
    assert len(ex.media) == n_visuals == sum(1 for part in ex.messages[0]["content"] if part["type"] == ex.media_kind)
    for m in ex.media:  # read back by the judge's own loader
        load_media(m, ex.media_kind)
    enc = sft.encode(rm, ex)
    assert enc["target_ids"] and rm.tokenizer.decode(enc["target_ids"]).startswith(ex.target)


def test_match_examples_say_yes_exactly_when_the_caption_is_the_scene():
    rng = np.random.default_rng(1)
    answers = set()
    for _ in range(40):
        state = rng.bit_generator.state
        ex = P.example("match", rng)
        replay = np.random.default_rng()
        replay.bit_generator.state = state
        scene = W.random_scene(replay)  # the scene the example drew first
        caption = ex.messages[0]["content"][-1]["text"].split("Caption: ", 1)[1]
        assert ex.target == ("yes" if caption == W.caption(scene) else "no")
        answers.add(ex.target)
    assert answers == {"yes", "no"}


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown pretraining kind"):
        P.example("judge", np.random.default_rng(0))


def test_tiny_processor_centres_pixels_on_the_background(rm):
    blank = W.render_scene([])  # the bare canvas
    pixels = rm.processor.image_processor(images=[blank], return_tensors="pt")["pixel_values"]
    assert torch.allclose(pixels, torch.zeros_like(pixels), atol=1e-2)
    assert list(rm.processor.image_processor.image_mean) == [BACKGROUND_GREY] * 3
    assert list(rm.processor.video_processor.image_mean) == [BACKGROUND_GREY] * 3


def test_grounding_compares_matched_and_shuffled_visuals(rm):
    cfg = P.PretrainConfig(eval_examples=3, kinds={"caption": 1.0, "video_caption": 1.0})
    held = P.held_out(rm, cfg)
    assert set(held) == {
        "caption",
        "video_caption",
        "caption/matched",
        "caption/shuffled",
        "video_caption/matched",
        "video_caption/shuffled",
    }
    m, s = held["caption/matched"], held["caption/shuffled"]
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(m, s))  # same text...
    assert not torch.equal(m[0]["pixel_values"], s[0]["pixel_values"])  # ...other pictures
    assert torch.equal(m[1]["pixel_values"], s[0]["pixel_values"])
    out = P.evaluate(rm, held)
    assert out["grounding/caption"] == pytest.approx(
        out["loss/caption/shuffled"] - out["loss/caption/matched"], abs=1e-3
    )


@pytest.mark.slow
def test_pretraining_lowers_the_held_out_loss_and_saves_a_loadable_checkpoint(tiny_judge_dir, tmp_path):
    cfg = P.PretrainConfig(
        steps=12,
        batch_size=4,
        lr=3e-3,
        warmup_steps=2,
        eval_every=6,
        eval_examples=4,
        kinds={"caption": 1.0, "qa": 1.0, "video_qa": 1.0},
        workers=1,
    )
    logged = []
    summary = P.pretrain(tiny_judge_dir, tmp_path / "pre", cfg, device="cpu", log=logged.append)
    assert [r["step"] for r in logged] == [0, 6, 12]
    first, last = logged[0], logged[-1]
    for kind in ("caption", "qa", "video_qa"):
        assert last[f"loss/{kind}"] < first[f"loss/{kind}"]
    card = json.loads((tmp_path / "pre" / "unireward_tiny.json").read_text())
    assert card["pretrained"]["final"]["step"] == 12 and card["arch"] == "qwen2_5_vl"
    assert summary == card
    history = [json.loads(line) for line in (tmp_path / "pre" / "pretrain_history.jsonl").read_text().splitlines()]
    assert history == logged
    judge = RewardModel(tmp_path / "pre", device="cpu")  # the judge's loader reads it
    base = RewardModel(tiny_judge_dir, device="cpu")
    name, w = next((n, p) for n, p in judge.model.named_parameters() if "embed_tokens" in n)
    assert not torch.equal(w, dict(base.model.named_parameters())[name])


@pytest.mark.parametrize("bad", [dict(steps=0), dict(kinds={"judge": 1.0}), dict(kinds={"qa": 0.0}), dict(kinds={})])
def test_pretrain_config_names_what_is_wrong(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        P.PretrainConfig(**bad)


def test_pretrain_cli_names_an_unusable_base(tmp_path):
    from typer.testing import CliRunner

    from unireward.cli import app

    res = CliRunner().invoke(app, ["models", "pretrain-tiny", str(tmp_path), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "not a checkpoint folder" in res.output
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    res = CliRunner().invoke(
        app, ["models", "pretrain-tiny", str(tmp_path), "--out", str(tmp_path / "o"), "--steps", "1"]
    )
    assert res.exit_code == 2 and "cannot pretrain" in res.output


@pytest.mark.parametrize("kind", list(P.SLOT_KINDS) + [k for k in P.SEE_KINDS if k not in P.SLOT_KINDS])
def test_every_slot_kind_renders_and_encodes(kind, rm):
    rng = np.random.default_rng(0)
    ex = P.example(kind, rng)
    n_visuals = 2 if kind.endswith("_k") else 1
    assert ex.media_kind == ("video" if kind.startswith("video_") else "image")
    assert len(ex.media) == n_visuals == sum(1 for part in ex.messages[0]["content"] if part["type"] == ex.media_kind)
    for m in ex.media:
        load_media(m, ex.media_kind)
    enc = sft.encode(rm, ex)
    assert enc["target_ids"] and rm.tokenizer.decode(enc["target_ids"]).startswith(ex.target)


def test_checks_mark_exactly_the_slots_that_differ():
    rng = np.random.default_rng(3)
    seen_no = seen_yes = 0
    for kind in ("check", "check_k", "video_check", "video_check_k"):
        for _ in range(20):
            ex = P.example(kind, rng)
            caption = ex.messages[0]["content"][-1]["text"].split("Caption: ", 1)[1]
            words = ex.target.rstrip(".").replace(",", "").split()
            triples = [words[i : i + 3] for i in range(0, len(words), 3)]
            assert all(len(t) == 3 and t[2] == ("yes" if t[0] == t[1] else "no") for t in triples), ex.target
            claimed = [t[1] for t in triples]
            # the claimed side is the caption's slots, in its order
            for w in claimed:
                if w != "none":
                    assert w in caption, (w, caption)
            seen_no += sum(t[2] == "no" for t in triples)
            seen_yes += sum(t[2] == "yes" for t in triples)
    assert seen_no and seen_yes


def test_answer_checks_compare_the_answer_with_what_is_seen():
    rng = np.random.default_rng(4)
    marks = set()
    for kind in ("answer_check", "video_answer_check"):
        for _ in range(30):
            ex = P.example(kind, rng)
            seen, claimed, mark = ex.target.split(",")[0].rstrip(".").split()
            assert mark == ("yes" if seen == claimed else "no")
            answer = ex.messages[0]["content"][-1]["text"].split("Answer: ", 1)[1].split("\n")[0]
            assert W.answer_key(answer) == claimed
            assert ex.target.endswith(", extra.") == W.has_extra_claim(answer)
            marks.add(mark)
    assert marks == {"yes", "no"}
