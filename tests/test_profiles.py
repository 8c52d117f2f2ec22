"""What checkpoint profiles add to the judge: decimal scores read by both methods (the logit
method's trie covering the decimal continuation), the 2.0 pair-score form, reasoning (Think)
answers with their per-dimension scores, per-protocol decoding budgets with ``truncated``
generations, the ``think`` option, a profile's default family and digest in provenance."""

from __future__ import annotations

import dataclasses

import pytest

from test_model import _items, reference
from unireward.judge.model import RewardModel
from unireward.judge.parsing import parse
from unireward.judge.protocols import ProtocolError, ProtocolRegistry, default_registry
from unireward.judge.types import JudgeItem, Mode, Status

ACS = {
    "template": "Rate the picture for: {prompt}",
    "dimensions": [
        {"name": "alignment", "marker": "Alignment Score (1-5):", "low": 1, "high": 5, "decimals": 1},
        {"name": "coherence", "marker": "Coherence Score (1-5):", "low": 1, "high": 5, "decimals": 1},
    ],
}
PAIR_SCORE = {
    "template": "Share each score between the two pictures for: {prompt}",
    "labels": ["Image 1", "Image 2"],
    "max_new_tokens": 5,
    "dimensions": [
        {"name": "alignment", "marker": "Alignment Score:", "low": 0, "high": 1},
        {"name": "style", "marker": "Style Score:", "low": 0, "high": 1},
    ],
}
THINK = {
    "template": "Reason in <think>, then answer in <answer> for: {prompt}",
    "reasons": True,
    "max_new_tokens": 7,
    "verdicts": {"first": "Image 1 is better", "second": "Image 2 is better"},
}
PROFILE = {
    "profile": {"name": "test profile", "family": "prof"},
    "families": {"prof": {"image_generation": {"point_multi": ACS, "pair_score": PAIR_SCORE, "pair_rank": THINK}}},
}


@pytest.fixture(scope="module")
def prof_rm(tiny_judge_dir):
    return RewardModel(tiny_judge_dir, protocols=default_registry().with_overrides(PROFILE), max_new_tokens=6)


def _reg(**spec):
    return ProtocolRegistry.from_mapping({"families": {"x": {"image_generation": spec}}})


# ------------------------------------------------------------------------------------ parsing
def test_decimal_scores_are_read_as_written_within_the_scale():
    p = _reg(point_multi=ACS).get("x", "image_generation", "point_multi")
    out = parse("Alignment Score (1-5): 2.6947000026\nCoherence Score (1-5): 4", p)
    assert out.status is Status.OK and out.dims == {"alignment": 2.6947000026, "coherence": 4.0}
    bad = parse("Alignment Score (1-5): 5.5\nCoherence Score (1-5): 4", p)
    assert bad.status is Status.UNPARSED and "outside the scale 1-5" in bad.reason


def test_pair_scores_give_a_verdict_a_margin_and_each_dimension():
    p = _reg(pair_score=PAIR_SCORE).get("x", "image_generation", "pair_score")
    out = parse("Alignment Score:\n Image 1: 0.25\n Image 2: 0.75\n\nStyle Score:\n Image 1: 0.5\n Image 2: 0.5", p)
    assert out.status is Status.OK and out.verdict == "second"
    assert out.scores == pytest.approx([0.375, 0.625]) and out.margin == pytest.approx(-0.25)
    assert out.dims == {"alignment/1": 0.25, "alignment/2": 0.75, "style/1": 0.5, "style/2": 0.5}
    tie = parse("Alignment Score: Image 1: 0.5 Image 2: 0.5\nStyle Score: Image 1: 0.4 Image 2: 0.4", p)
    assert tie.verdict == "tie" and tie.margin == 0
    missing = parse("Alignment Score:\n Image 1: 0.25\n", p)
    assert missing.status is Status.UNPARSED and "no score for Image 2" in missing.reason
    assert "no 'Style Score:' marker" in missing.reason
    over = parse("Alignment Score: Image 1: 1.5 Image 2: 0.5\nStyle Score: Image 1: 0.4 Image 2: 0.6", p)
    assert over.status is Status.UNPARSED and "outside the scale 0-1" in over.reason


def test_a_reasoning_answer_gives_its_verdict_and_its_dimension_scores():
    p = _reg(pair_rank=THINK).get("x", "image_generation", "pair_rank")
    text = (
        "<think>\n1. Fidelity:\n  Image 1 (9/10) - close;\n  Image 2 (6/10) - off\n2. Style:\n  Image 1 (7/10);\n"
        "  Image 2 (8/10)\nTotal score:\nImage 1: 9+7=16\nImage 2: 6+8=14\n</think>\n<answer>Image 1 is better</answer>"
    )
    out = parse(text, p)
    assert out.status is Status.OK and out.verdict == "first" and out.scores == [16.0, 14.0]
    assert out.dims == {"fidelity/1": 9.0, "fidelity/2": 6.0, "style/1": 7.0, "style/2": 8.0}
    cut = parse("<think>\n1. Fidelity:\n  Image 1 (9/10) - close, while Image 2 is better in", p)
    assert cut.status is Status.UNPARSED and "cut off" in cut.reason


def test_profile_keys_are_validated():
    with pytest.raises(ProtocolError, match="labels"):
        _reg(pair_score=dict(PAIR_SCORE, labels=["Image 1"]))
    with pytest.raises(ProtocolError, match="decimals"):
        _reg(point_multi=dict(ACS, dimensions=[dict(ACS["dimensions"][0], decimals=3)]))
    with pytest.raises(ProtocolError, match="(?s)media.*video_mode"):
        _reg(pair_rank=dict(THINK, media={"video_mode": "sometimes"}))
    with pytest.raises(ProtocolError, match="unknown key.*frame_rate"):
        _reg(pair_rank=dict(THINK, media={"frame_rate": 2}))
    with pytest.raises(ProtocolError, match="max_new_tokens"):
        _reg(pair_rank=dict(THINK, max_new_tokens=0))
    with pytest.raises(ProtocolError, match="profile.family 'nope'"):
        ProtocolRegistry.from_mapping(dict(PROFILE, profile={"family": "nope"}))


# ------------------------------------------------------------------------------------ the judge
def test_a_profile_names_the_family_and_goes_into_provenance(prof_rm, tiny_judge_dir):
    assert prof_rm.family == "prof"
    assert RewardModel(tiny_judge_dir, protocols=prof_rm.protocols, family="qwen").family == "qwen"
    [j] = prof_rm.judge([JudgeItem("image_generation", "a fox", [_img()], mode="point_multi")])
    assert j.provenance["profile"]["name"] == "test profile" and len(j.provenance["profile"]["digest"]) == 12


def _img():
    from PIL import Image

    return Image.new("RGB", (64, 48), (200, 30, 30))


def test_decimal_scores_through_the_logit_method_equal_the_brute_force_reference(tiny_judge_dir, world):
    """The trie covers "N" and "N.d": the expected value is exact over every score the checkpoint can
    write to one decimal place."""
    reg = default_registry().with_overrides({"families": {"qwen": {"image_generation": {"point_multi": ACS}}}})
    rm = RewardModel(tiny_judge_dir, protocols=reg)
    items = [
        dataclasses.replace(it, mode=Mode.POINT_MULTI)
        for it in _items(world, "image_generation", "point_score", limit=1)
    ]
    for item, j in zip(items, rm.judge(items, method="logits")):
        assert j.status is Status.OK, j.reason
        ref = reference(rm, item)
        expected = [sum(float(k) * p for k, p in probs.items()) for probs, _ in ref]
        assert list(j.dims.values()) == pytest.approx(expected, abs=1e-4)
        assert len(ref[0][0]) == 5 + 41  # 1..5 and 1.0..5.0


def test_protocols_read_from_generated_text_refuse_the_logit_method(prof_rm):
    items = [
        JudgeItem("image_generation", "a fox", [_img(), _img()], mode="pair_score"),
        JudgeItem("image_generation", "a fox", [_img(), _img()], mode="pair_rank"),
    ]
    for j in prof_rm.judge(items, method="logits"):
        assert j.status is Status.INVALID_INPUT and "use method=generate" in j.reason


def test_a_generation_that_uses_its_budget_without_a_verdict_is_truncated(prof_rm):
    """The profile's budgets (5 and 7 new tokens) apply per protocol; the untrained model writes no
    verdict within them."""
    items = [
        JudgeItem("image_generation", "a fox", [_img(), _img()], mode="pair_score"),
        JudgeItem("image_generation", "a fox", [_img(), _img()], mode="pair_rank"),
    ]
    js = prof_rm.judge(items, method="generate")
    for j, budget in zip(js, (5, 7)):
        assert j.status is Status.UNPARSED and j.reason.startswith(
            f"truncated: no verdict within the budget of {budget} new tokens"
        )
        assert j.provenance["decoding"]["max_new_tokens"] == budget
    swapped = prof_rm.judge(items[:1], method="generate", swap=True)[0]
    assert swapped.status is Status.UNPARSED and "truncated" in swapped.reason and len(swapped.orders) == 2


def test_the_think_option_uses_the_think_template_and_budget(tiny_judge_dir):
    packaged = default_registry().get("qwen", "image_generation", "pair_rank")
    assert packaged.think_template and "<think>" in packaged.think_template and packaged.think_max_new_tokens == 512
    think = {"template": packaged.think_template, "max_new_tokens": 9}  # a short budget keeps the test quick
    spec = {k: v for k, v in dataclasses.asdict(packaged).items() if k in ("template", "verdicts")}
    reg = default_registry().with_overrides(
        {"families": {"qwen": {"image_generation": {"pair_rank": dict(spec, think=think)}}}}
    )
    rm = RewardModel(tiny_judge_dir, protocols=reg, max_new_tokens=6)
    item = JudgeItem("image_generation", "a red circle", [_img(), _img()])
    p = rm.protocols.get("qwen", "image_generation", "pair_rank")
    text = rm.processor.apply_chat_template(rm.messages(item, p, think=True), tokenize=False)
    assert p.render(item, think=True) in text and p.render(item) not in text
    [j] = rm.judge([item], method="generate", think=True)
    assert j.provenance["decoding"]["think"] is True
    assert j.provenance["decoding"]["max_new_tokens"] == 9
    with pytest.raises(ValueError, match="think=True"):
        rm.judge([item], method="logits", think=True)
    und = JudgeItem("image_understanding", "What colour?", ["red"], context=_img())  # no think variant for points
    [j] = rm.judge([und], method="generate", think=True)
    assert j.status is Status.INVALID_INPUT and "no think variant" in j.reason
