"""The protocol registry (packaged YAML, overrides, validation), Protocol.render and JudgeItem checks."""

from __future__ import annotations

import copy
import dataclasses
import re

import pytest

from unireward.judge.protocols import (
    Protocol,
    ProtocolError,
    ProtocolRegistry,
    ScoreScale,
    default_registry,
)
from unireward.judge.types import JudgeItem, Mode, Task

GEN_TASKS = [Task.IMAGE_GENERATION, Task.VIDEO_GENERATION]
UND_TASKS = [Task.IMAGE_UNDERSTANDING, Task.VIDEO_UNDERSTANDING]
FAMILIES = ["qwen", "llava"]


@pytest.fixture(scope="module")
def reg() -> ProtocolRegistry:
    return default_registry()


def minimal_spec() -> dict:
    """A small valid registry with one family: all tasks, all modes that apply."""
    return {
        "families": {
            "mini": {
                "image_generation": {
                    "pair_rank": {
                        "template": "Caption: [{prompt}]",
                        "verdicts": {
                            "first": "Image 1 is better",
                            "second": "Image 2 is better",
                            "tie": "Both images are equally good",
                        },
                    },
                    "point_score": {
                        "template": "Caption: [{prompt}]",
                        "score": {"marker": "Final Score:", "low": 1, "high": 5},
                    },
                    "point_multi": {
                        "template": "Caption: [{prompt}]",
                        "dimensions": [
                            {"name": "alignment", "marker": "Alignment Score (1-5):", "low": 1, "high": 5},
                            {"name": "style", "marker": "Style Score (1-5):", "low": 1, "high": 5},
                        ],
                    },
                },
                "image_understanding": {
                    "pair_rank": {
                        "template": "Q: [{prompt}] A: [{first}] B: [{second}]",
                        "verdicts": {"first": "Answer 1 is better", "second": "Answer 2 is better"},
                    },
                    "point_score": {
                        "template": "Q: [{prompt}] A: [{candidate}]",
                        "score": {"marker": "Final Score:", "low": 0, "high": 100},
                    },
                },
            }
        }
    }


def load(data) -> ProtocolRegistry:
    return ProtocolRegistry.from_mapping(data, "test.yaml")


def raises_with(data, *parts: str) -> str:
    with pytest.raises(ProtocolError) as e:
        load(data)
    msg = str(e.value)
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"
    return msg


def und_item(prompt="What colour is the car?", candidates=("Red.", "Blue."), **kw) -> JudgeItem:
    return JudgeItem(Task.IMAGE_UNDERSTANDING, prompt, list(candidates), context="img.png", **kw)


# ------------------------------------------------------------------------------- packaged registry
def test_packaged_registry_loads(reg):
    assert isinstance(reg, ProtocolRegistry)
    assert set(FAMILIES) <= set(reg.families())
    assert reg.families() == sorted(reg.families())
    assert len(reg) == len(list(reg)) >= 20
    assert ProtocolRegistry.default().families() == reg.families()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("task", list(Task))
def test_every_family_task_has_pair_and_point(reg, family, task):
    if task is Task.IMAGE_EDITING and family == "llava":
        pytest.skip("the released LLaVA-OneVision judges never judged edits: no image_editing protocols")
    for mode in (Mode.PAIR_RANK, Mode.POINT_SCORE):
        p = reg.get(family, task, mode)
        assert (p.family, p.task, p.mode) == (family, task, mode)
        assert p.id == f"{family}/{task.value}/{mode.value}"
    if task.is_generation:
        assert reg.get(family, task, Mode.POINT_MULTI).mode is Mode.POINT_MULTI
    else:
        with pytest.raises(KeyError, match="no protocol"):
            reg.get(family, task, Mode.POINT_MULTI)


def test_get_accepts_strings_and_names_unknowns(reg):
    assert reg.get("qwen", "image_generation", "pair_rank").id == "qwen/image_generation/pair_rank"
    with pytest.raises(KeyError, match="unknown protocol family 'nope'"):
        reg.get("nope", "image_generation", "pair_rank")


def test_ids_and_digests(reg):
    protos = list(reg)
    for p in protos:
        assert re.fullmatch(
            r"[a-z0-9_]+/(image|video)_(generation|understanding|editing)/(pair_rank|pair_score|point_score|point_multi)",
            p.id,
        )
        assert re.fullmatch(r"[0-9a-f]{12}", p.digest)
    assert len({p.id for p in protos}) == len(protos)
    assert len({p.digest for p in protos}) == len(protos)
    assert [p.id for p in protos] == sorted(p.id for p in protos)


def test_digest_depends_on_template_verdicts_scales_prefix(reg):
    p = reg.get("qwen", "video_understanding", "pair_rank")
    same = dataclasses.replace(p, verdicts=dict(p.verdicts))
    assert same.digest == p.digest
    assert dataclasses.replace(p, template=p.template + " ").digest != p.digest
    assert dataclasses.replace(p, answer_prefix="").digest != p.digest
    v = dict(p.verdicts, first="Answer 1 wins")
    assert Protocol(p.family, p.task, p.mode, p.template, v, p.scales, p.answer_prefix).digest != p.digest
    s = reg.get("qwen", "image_generation", "point_score")
    wider = (ScoreScale("score", "Final Score:", 1, 10),)
    assert Protocol(s.family, s.task, s.mode, s.template, None, wider).digest != s.digest


# ----------------------------------------------------------------------- phrases/scales vs reference
def test_qwen_image_generation_verdicts(reg):
    p = reg.get("qwen", "image_generation", "pair_rank")
    assert dict(p.verdicts) == {
        "first": "Image 1 is better",
        "second": "Image 2 is better",
        "tie": "Both images are equally good",
    }
    assert p.allows_tie


def test_llava_generation_verdicts(reg):
    assert dict(reg.get("llava", "image_generation", "pair_rank").verdicts) == {
        "first": "Image 1 is better than Image 2",
        "second": "Image 2 is better than Image 1",
        "tie": "Both images are equally good",
    }
    assert dict(reg.get("llava", "video_generation", "pair_rank").verdicts) == {
        "first": "Video 1 is better than Video 2",
        "second": "Video 2 is better than Video 1",
        "tie": "Both videos are equally good",
    }


def test_qwen_video_generation_verdicts(reg):
    assert dict(reg.get("qwen", "video_generation", "pair_rank").verdicts) == {
        "first": "Video 1 is better",
        "second": "Video 2 is better",
        "tie": "Both videos are equally good",
    }


def test_qwen_image_understanding_verdicts_no_tie(reg):
    p = reg.get("qwen", "image_understanding", "pair_rank")
    assert dict(p.verdicts) == {"first": "Answer 1 is better", "second": "Answer 2 is better"}
    assert not p.allows_tie
    assert "tie" not in p.verdict_options()


@pytest.mark.parametrize("family", FAMILIES)
def test_video_understanding_overall_judgment_no_tie(reg, family):
    p = reg.get(family, "video_understanding", "pair_rank")
    assert p.answer_prefix == "Overall Judgment: "
    assert not p.allows_tie
    assert dict(p.verdicts) == {
        "first": "Answer 1 is better than Answer 2",
        "second": "Answer 2 is better than Answer 1",
    }


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "task, low, high",
    [
        (Task.IMAGE_GENERATION, 1, 5),
        (Task.IMAGE_UNDERSTANDING, 0, 100),
        (Task.VIDEO_GENERATION, 1, 10),
        (Task.VIDEO_UNDERSTANDING, 1, 5),
    ],
)
def test_point_score_scales(reg, family, task, low, high):
    p = reg.get(family, task, Mode.POINT_SCORE)
    assert len(p.scales) == 1
    s = p.scales[0]
    assert (s.marker, s.low, s.high) == ("Final Score:", low, high)
    assert p.verdicts is None


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "task, names, second_marker",
    [
        (Task.IMAGE_GENERATION, ["alignment", "coherence", "style"], "Coherence Score (1-5):"),
        (Task.VIDEO_GENERATION, ["alignment", "physics", "style"], "Physics Score (1-5):"),
    ],
)
def test_multi_dimension_names(reg, family, task, names, second_marker):
    p = reg.get(family, task, Mode.POINT_MULTI)
    assert [s.name for s in p.scales] == names
    assert [s.marker for s in p.scales] == ["Alignment Score (1-5):", second_marker, "Style Score (1-5):"]
    assert all((s.low, s.high) == (1, 5) for s in p.scales)


def test_score_scale_values_and_normalize():
    s = ScoreScale("score", "Final Score:", 1, 5)
    assert list(s.values()) == [1, 2, 3, 4, 5]
    assert s.normalize(1) == 0.0 and s.normalize(5) == 1.0 and s.normalize(3) == 0.5
    assert ScoreScale("score", "Final Score:", 0, 100).normalize(85) == pytest.approx(0.85)


# ------------------------------------------------------------------------------------------ render
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("task", GEN_TASKS)
def test_render_generation_substitutes_caption(reg, family, task):
    item = JudgeItem(task, "a red cat on a blue mat", ["a.png", "b.png"])
    text = reg.get(family, task, "pair_rank").render(item)
    assert "Text Caption: [a red cat on a blue mat]" in text
    assert "{prompt}" not in text
    assert "a.png" not in text  # visuals never go into the text


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("task", UND_TASKS)
def test_render_understanding_pair_has_both_answers_in_order(reg, family, task):
    item = JudgeItem(task, "How many dogs?", ["ANSWER-ALPHA three", "ANSWER-BETA two"], context="ctx")
    text = reg.get(family, task, "pair_rank").render(item)
    assert "How many dogs?" in text
    a, b = text.find("ANSWER-ALPHA three"), text.find("ANSWER-BETA two")
    assert 0 <= a < b
    assert not re.search(r"\{(prompt|first|second|candidate)\}", text)
    swapped = reg.get(family, task, "pair_rank").render(item.swapped())
    assert 0 <= swapped.find("ANSWER-BETA two") < swapped.find("ANSWER-ALPHA three")


@pytest.mark.parametrize("task", UND_TASKS)
def test_render_understanding_point(reg, task):
    item = JudgeItem(task, "What is shown?", ["A bicycle."], context="ctx")
    text = reg.get("qwen", task, "point_score").render(item)
    assert "What is shown?" in text and "A bicycle." in text
    assert "{candidate}" not in text and "{prompt}" not in text


def test_render_leaves_braces_in_user_text(reg):
    p = reg.get("qwen", "image_understanding", "pair_rank")
    item = und_item(prompt="Fill in {first} and {} please {prompt}", candidates=("x {second} {candidate}", "y {}{"))
    text = p.render(item)
    assert "Question: [Fill in {first} and {} please {prompt}]" in text
    assert "[x {second} {candidate}]" in text
    assert "[y {}{]" in text
    # substitution happened exactly once per placeholder: the first answer is not repeated into {first} of the prompt
    assert text.count("x {second} {candidate}") == 1


def test_render_leaves_regex_escapes_in_user_text(reg):
    p = reg.get("llava", "image_understanding", "pair_rank")
    weird = r"C:\new\1 \g<0> $1 \\"
    text = p.render(und_item(prompt=weird, candidates=(weird + "A", weird + "B")))
    assert f"Question: [{weird}]" in text
    assert f"[{weird}A]" in text and f"[{weird}B]" in text


def test_render_generation_braces_in_caption(reg):
    p = reg.get("qwen", "image_generation", "point_score")
    text = p.render(JudgeItem("image_generation", "a sign that reads {first} {}", ["a.png"]))
    assert "Text Caption: [a sign that reads {first} {}]" in text


# ------------------------------------------------------------------------ score/verdict options
def test_score_options_text(reg):
    p = reg.get("qwen", "image_generation", "point_score")
    assert p.score_options(p.scales[0]) == {str(v): f"Final Score: {v}" for v in range(1, 6)}
    u = reg.get("qwen", "image_understanding", "point_score")
    opts = u.score_options(u.scales[0])
    assert len(opts) == 101 and opts["0"] == "Final Score: 0" and opts["100"] == "Final Score: 100"
    m = reg.get("qwen", "video_generation", "point_multi")
    assert m.score_options(m.scales[1]) == {str(v): f"Physics Score (1-5): {v}" for v in range(1, 6)}


def test_verdict_options_text(reg):
    assert reg.get("qwen", "image_generation", "pair_rank").verdict_options() == {
        "first": "Image 1 is better",
        "second": "Image 2 is better",
        "tie": "Both images are equally good",
    }
    assert reg.get("qwen", "video_understanding", "pair_rank").verdict_options() == {
        "first": "Overall Judgment: Answer 1 is better than Answer 2",
        "second": "Overall Judgment: Answer 2 is better than Answer 1",
    }
    assert reg.get("llava", "image_understanding", "pair_rank").verdict_options() == {
        "first": "Overall Judgment: Answer 1 is better",
        "second": "Overall Judgment: Answer 2 is better",
    }


# --------------------------------------------------------------------------------------- overrides
OVERRIDE_TEMPLATE = "My own wording. Caption: <<{prompt}>>"


def _override_mapping():
    return {
        "families": {
            "qwen": {
                "image_generation": {
                    "pair_rank": {
                        "template": OVERRIDE_TEMPLATE,
                        "verdicts": {
                            "first": "Image 1 is better",
                            "second": "Image 2 is better",
                            "tie": "Both images are equally good",
                        },
                    }
                }
            }
        }
    }


def _check_override(base: ProtocolRegistry, new: ProtocolRegistry):
    old_p = base.get("qwen", "image_generation", "pair_rank")
    new_p = new.get("qwen", "image_generation", "pair_rank")
    assert new_p.template == OVERRIDE_TEMPLATE
    assert new_p.digest != old_p.digest
    assert "<<a cat>>" in new_p.render(JudgeItem("image_generation", "a cat", ["a", "b"]))
    # the base is untouched, and every other protocol is identical
    assert base.get("qwen", "image_generation", "pair_rank").template == old_p.template
    assert len(new) == len(base)
    for p in base:
        if p.id != old_p.id:
            q = new.get(p.family, p.task, p.mode)
            assert q.digest == p.digest and q.template == p.template


def test_with_overrides_mapping(reg):
    _check_override(reg, reg.with_overrides(_override_mapping()))


def test_with_overrides_yaml_file(reg, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "families:\n"
        "  qwen:\n"
        "    image_generation:\n"
        "      pair_rank:\n"
        f'        template: "{OVERRIDE_TEMPLATE}"\n'
        "        verdicts: {first: Image 1 is better, second: Image 2 is better, tie: Both images are equally good}\n",
        encoding="utf-8",
    )
    _check_override(reg, reg.with_overrides(path))
    _check_override(reg, reg.with_overrides(str(path)))


def test_with_overrides_none_is_identity(reg):
    assert reg.with_overrides(None) is reg


def test_with_overrides_adds_family(reg):
    new = reg.with_overrides(minimal_spec())
    assert "mini" in new.families() and "mini" not in reg.families()
    assert set(FAMILIES) <= set(new.families())
    assert len(new) == len(reg) + 5
    p = new.get("mini", "image_understanding", "point_score")
    assert p.scales[0].high == 100
    with pytest.raises(KeyError):
        new.get("mini", "video_generation", "pair_rank")


def test_invalid_override_raises_and_base_intact(reg):
    bad = _override_mapping()
    bad["families"]["qwen"]["image_generation"]["pair_rank"]["template"] = "no placeholder"
    with pytest.raises(ProtocolError, match=r"<overrides>: families\.qwen\.image_generation\.pair_rank\.template"):
        reg.with_overrides(bad)
    assert "{prompt}" in reg.get("qwen", "image_generation", "pair_rank").template


# -------------------------------------------------------------------------------------- validation
def test_minimal_spec_is_valid():
    r = load(minimal_spec())
    assert r.families() == ["mini"] and len(r) == 5


def _mini(data):
    return data["families"]["mini"]


def test_error_unknown_task():
    d = minimal_spec()
    _mini(d)["audio_generation"] = {"pair_rank": {"template": "{prompt}"}}
    raises_with(d, "test.yaml", "families.mini.audio_generation", "unknown task", "image_generation")


def test_error_unknown_mode():
    d = minimal_spec()
    _mini(d)["image_generation"]["pair_elo"] = {"template": "{prompt}"}
    raises_with(d, "families.mini.image_generation.pair_elo", "unknown mode", "pair_rank")


def test_error_point_multi_for_understanding():
    d = minimal_spec()
    _mini(d)["image_understanding"]["point_multi"] = copy.deepcopy(_mini(d)["image_generation"]["point_multi"])
    _mini(d)["image_understanding"]["point_multi"]["template"] = "Q: {prompt} A: {candidate}"
    raises_with(d, "families.mini.image_understanding.point_multi", "point_multi", "generation")


def test_error_understanding_pair_missing_second():
    d = minimal_spec()
    _mini(d)["image_understanding"]["pair_rank"]["template"] = "Q: [{prompt}] A: [{first}]"
    raises_with(d, "families.mini.image_understanding.pair_rank.template", "missing placeholder", "{second}")


def test_error_understanding_point_missing_candidate():
    d = minimal_spec()
    _mini(d)["image_understanding"]["point_score"]["template"] = "Q: [{prompt}]"
    raises_with(d, "families.mini.image_understanding.point_score.template", "{candidate}")


def test_error_placeholder_not_applicable_in_generation():
    d = minimal_spec()
    _mini(d)["image_generation"]["pair_rank"]["template"] = "Caption: [{prompt}] first: {first}"
    raises_with(d, "families.mini.image_generation.pair_rank.template", "{first}", "do not apply")


def test_error_empty_template():
    d = minimal_spec()
    _mini(d)["image_generation"]["point_score"]["template"] = "   "
    raises_with(d, "families.mini.image_generation.point_score.template", "non-empty")


def test_error_missing_verdicts():
    d = minimal_spec()
    del _mini(d)["image_generation"]["pair_rank"]["verdicts"]
    raises_with(d, "families.mini.image_generation.pair_rank.verdicts", "'first' and 'second'")


def test_error_missing_second_verdict():
    d = minimal_spec()
    _mini(d)["image_understanding"]["pair_rank"]["verdicts"] = {"first": "Answer 1 is better"}
    raises_with(d, "families.mini.image_understanding.pair_rank.verdicts", "required")


def test_error_duplicate_verdict_phrases():
    d = minimal_spec()
    _mini(d)["image_generation"]["pair_rank"]["verdicts"] = {
        "first": "Image 1 is better",
        "second": "Image 1 is better",
    }
    raises_with(d, "families.mini.image_generation.pair_rank.verdicts", "distinct")


def test_error_unknown_verdict_key():
    d = minimal_spec()
    _mini(d)["image_generation"]["pair_rank"]["verdicts"]["neither"] = "Neither is good"
    raises_with(d, "families.mini.image_generation.pair_rank.verdicts", "unknown verdict", "neither")


def test_error_scores_on_pair_protocol():
    d = minimal_spec()
    _mini(d)["image_generation"]["pair_rank"]["score"] = {"marker": "Final Score:", "low": 1, "high": 5}
    raises_with(d, "families.mini.image_generation.pair_rank.score")


def test_error_verdicts_on_point_protocol():
    d = minimal_spec()
    _mini(d)["image_generation"]["point_score"]["verdicts"] = {"first": "a", "second": "b"}
    raises_with(d, "families.mini.image_generation.point_score.verdicts")


@pytest.mark.parametrize("low, high", [(5, 5), (5, 1)])
def test_error_low_not_below_high(low, high):
    d = minimal_spec()
    _mini(d)["image_generation"]["point_score"]["score"].update(low=low, high=high)
    raises_with(d, "families.mini.image_generation.point_score.score", "low", "below high")


@pytest.mark.parametrize("low, high", [(1.5, 5), (1, "5"), (True, 5), (1, None)])
def test_error_non_integer_bound(low, high):
    d = minimal_spec()
    _mini(d)["image_generation"]["point_score"]["score"].update(low=low, high=high)
    raises_with(d, "families.mini.image_generation.point_score.score", "must be integers")


def test_error_non_integer_bound_in_dimension():
    d = minimal_spec()
    _mini(d)["image_generation"]["point_multi"]["dimensions"][1]["high"] = 5.0
    raises_with(d, "families.mini.image_generation.point_multi.dimensions[1]", "integers")


def test_error_missing_score():
    d = minimal_spec()
    del _mini(d)["image_generation"]["point_score"]["score"]
    raises_with(d, "families.mini.image_generation.point_score.score", "required")


def test_error_missing_marker():
    d = minimal_spec()
    del _mini(d)["image_generation"]["point_score"]["score"]["marker"]
    raises_with(d, "families.mini.image_generation.point_score.score.marker")


def test_error_duplicate_dimension_names():
    d = minimal_spec()
    _mini(d)["image_generation"]["point_multi"]["dimensions"][1]["name"] = "alignment"
    raises_with(d, "families.mini.image_generation.point_multi.dimensions", "distinct")


def test_error_empty_dimensions():
    d = minimal_spec()
    _mini(d)["image_generation"]["point_multi"]["dimensions"] = []
    raises_with(d, "families.mini.image_generation.point_multi.dimensions", "non-empty")


def test_error_unknown_keys_in_protocol():
    d = minimal_spec()
    _mini(d)["image_generation"]["point_score"]["temperature"] = 0
    msg = raises_with(d, "families.mini.image_generation.point_score", "unknown key", "temperature")
    assert "template" in msg  # lists what is allowed


def test_error_protocol_not_a_mapping():
    d = minimal_spec()
    _mini(d)["image_generation"]["point_score"] = "Final Score: {prompt}"
    raises_with(d, "families.mini.image_generation.point_score", "mapping")


def test_error_family_not_a_mapping():
    raises_with({"families": {"mini": ["image_generation"]}}, "families.mini")


def test_error_no_families_key():
    raises_with({"version": 1, "qwen": {}}, "test.yaml", "families")
    raises_with({"families": ["qwen"]}, "families")
    raises_with(None, "families")
    raises_with("families", "families")


def test_error_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ProtocolError, match="not found") as e:
        ProtocolRegistry.from_yaml(missing)
    assert str(missing) in str(e.value)
    with pytest.raises(ProtocolError, match="not found"):
        default_registry().with_overrides(missing)


def test_error_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("families:\n  qwen: [unclosed\n    - x: : y\n", encoding="utf-8")
    with pytest.raises(ProtocolError, match="not valid YAML") as e:
        ProtocolRegistry.from_yaml(path)
    assert str(path) in str(e.value)


def test_error_empty_yaml_file(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ProtocolError, match="families") as e:
        ProtocolRegistry.from_yaml(path)
    assert str(path) in str(e.value)


def test_protocol_error_is_value_error():
    assert issubclass(ProtocolError, ValueError)


# ------------------------------------------------------------------------------- JudgeItem.problem
@pytest.mark.parametrize(
    "item",
    [
        JudgeItem("image_generation", "a cat", ["a.png", "b.png"]),
        JudgeItem(Task.VIDEO_GENERATION, "a dog runs", ["v.mp4"]),
        JudgeItem("image_generation", "a cat", ["a.png"], mode="point_multi"),
        JudgeItem("video_generation", "a cat", ("a.mp4",), mode=Mode.POINT_MULTI),
        JudgeItem("image_understanding", "Q?", ["A", "B"], context="img.png"),
        JudgeItem("video_understanding", "Q?", ["A"], context="v.mp4"),
        JudgeItem("image_generation", "a cat", [b"\x89PNG", b"\x89PNG"]),
    ],
)
def test_problem_good_items(item):
    assert item.problem() is None


@pytest.mark.parametrize(
    "item, part",
    [
        (JudgeItem("image_generation", "a cat", ["a", "b", "c"], mode="pair_rank"), "2 candidate"),
        (JudgeItem("image_generation", "a cat", ["a"], mode="pair_rank"), "got 1"),
        (JudgeItem("image_generation", "a cat", ["a", "b"], mode="point_score"), "got 2"),
        (JudgeItem("image_generation", "a cat", []), "got 0"),
        (JudgeItem("image_generation", "a cat", ["a", "b", "c"]), "got 3"),
        (JudgeItem("audio_generation", "a cat", ["a", "b"]), "unknown task"),
        (JudgeItem(None, "a cat", ["a", "b"]), "unknown task"),
        (JudgeItem("image_generation", "a cat", ["a", "b"], mode="pair_elo"), "unknown mode"),
        (JudgeItem("image_generation", "", ["a", "b"]), "empty prompt"),
        (JudgeItem("image_generation", "  \n", ["a", "b"]), "empty prompt"),
        (JudgeItem("image_generation", None, ["a", "b"]), "empty prompt"),
        (JudgeItem("image_understanding", "Q?", ["A", "B"]), "context"),
        (JudgeItem("video_understanding", "Q?", ["A"]), "video"),
        (JudgeItem("image_understanding", "Q?", ["A", b"B"], context="img.png"), "candidate 1"),
        (JudgeItem("video_understanding", "Q?", [3], context="v.mp4"), "answer text"),
        (JudgeItem("image_generation", "a cat", ["a", "b"], context="ctx.png"), "context"),
        (JudgeItem("image_generation", "a cat", ["a", None]), "None"),
        (JudgeItem("image_understanding", "Q?", [None, "B"], context="img"), "None"),
        (JudgeItem("image_understanding", "Q?", ["A"], context="img", mode="point_multi"), "point_multi"),
        (JudgeItem("image_generation", "a cat", "ab"), "list"),
        (JudgeItem("image_generation", "a cat", None, mode="pair_rank"), "list"),
    ],
)
def test_problem_bad_items(item, part):
    msg = item.problem()
    assert isinstance(msg, str) and msg
    assert part in msg, msg


@pytest.mark.parametrize("candidates", [None, (c for c in ["a.png", "b.png"]), 7])
def test_problem_never_raises_on_non_list_candidates(candidates):
    msg = JudgeItem("image_generation", "a cat", candidates).problem()
    assert isinstance(msg, str) and "list" in msg


def test_swapped_reverses_candidates_and_keeps_the_rest():
    item = JudgeItem(
        "image_understanding", "Q?", ("first answer", "second answer"), context="img", id="x1", mode="pair_rank"
    )
    s = item.swapped()
    assert list(s.candidates) == ["second answer", "first answer"]
    assert (s.task, s.prompt, s.context, s.mode, s.id) == (item.task, item.prompt, item.context, item.mode, item.id)
    assert list(item.candidates) == ["first answer", "second answer"]  # original untouched
    assert list(s.swapped().candidates) == ["first answer", "second answer"]


def test_resolved_mode_defaults():
    assert JudgeItem("image_generation", "c", ["a", "b"]).resolved_mode() is Mode.PAIR_RANK
    assert JudgeItem("image_generation", "c", ["a"]).resolved_mode() is Mode.POINT_SCORE
    assert JudgeItem("image_generation", "c", ["a"], mode="point_multi").resolved_mode() is Mode.POINT_MULTI
