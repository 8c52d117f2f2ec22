"""Adversarial judge outputs for unireward.judge.parsing.

Every failure must be ``status=unparsed`` with a reason and no verdict/score: nothing may ever
default to "first" (the original code's position bias) or to the first integer in the text.
"""

from __future__ import annotations

import pytest

from unireward.judge.parsing import Parsed, answer_region, parse, parse_pair, parse_point, read_score
from unireward.judge.protocols import ScoreScale, default_registry
from unireward.judge.types import Mode, Status, Task


# --------------------------------------------------------------------------------------------- helpers
def proto(task: str, mode: str, family: str = "qwen"):
    return default_registry().get(family, task, mode)


def assert_ok_verdict(p: Parsed, verdict: str) -> None:
    assert p.status is Status.OK, p
    assert p.verdict == verdict, p
    assert p.score is None


def assert_unparsed(p: Parsed, reason_part: str | None = None) -> None:
    """Unparsed, with a reason, and no verdict or score smuggled in (a tie/failure never becomes 'first')."""
    assert p.status is Status.UNPARSED, p
    assert p.verdict is None, p
    assert p.score is None, p
    assert isinstance(p.reason, str) and p.reason.strip(), p
    if reason_part is not None:
        assert reason_part.lower() in p.reason.lower(), p.reason


# ------------------------------------------------------------------------------- plain pair verdicts
@pytest.mark.parametrize(
    "text, verdict",
    [
        ("Image 1 is better.", "first"),
        ("Image 2 is better.", "second"),
        ("Image 1 is better than Image 2.", "first"),
        ("Image 2 is better than Image 1.", "second"),
        ("Video 1 is better", "first"),
        ("Video 2 is better", "second"),
        ("Video 2 is better than Video 1.", "second"),
        ("Answer 1 is better", "first"),
        ("Answer 2 is better than Answer 1", "second"),
        ("Response 1 is better.", "first"),
        ("Response 2 is better", "second"),
        ("Both images are equally good.", "tie"),
        ("Both videos are equally good", "tie"),
        ("Both images are equally good", "tie"),
    ],
)
def test_plain_verdicts_every_family_phrasing(text, verdict):
    p = parse_pair(text)
    assert_ok_verdict(p, verdict)
    assert p.reason is None  # a single unambiguous phrase needs no explanation


@pytest.mark.parametrize(
    "text, verdict",
    [
        ("IMAGE 2 IS BETTER", "second"),
        ("image 1 is better than image 2.", "first"),
        ("BOTH VIDEOS ARE EQUALLY GOOD.", "tie"),
        ("aNsWeR 2 iS bEtTeR", "second"),
    ],
)
def test_case_insensitive(text, verdict):
    assert_ok_verdict(parse_pair(text), verdict)


def test_reasoning_then_verdict_in_a_separate_sentence():
    p = parse_pair("At first sight Image 1 is better. Looking closer, Image 2 is better.")
    assert_ok_verdict(p, "second")
    assert p.reason and "conflicting" in p.reason  # it says it had to choose


def test_reasoning_mentions_tie_then_concludes():
    text = "At first glance both images are equally good.\nLooking closer, Image 2 is better."
    assert_ok_verdict(parse_pair(text), "second")


def test_reasoning_mentions_both_in_one_sentence_concludes_second():
    assert_ok_verdict(parse_pair("Image 1 is better in colour, but overall Image 2 is better."), "second")


def test_reasoning_mentions_both_in_one_sentence_never_first():
    # Whatever happens to the case above, it must never be read as the first image.
    p = parse_pair("Image 1 is better in colour, but overall Image 2 is better.")
    assert p.verdict in (None, "second")
    if p.verdict is None:
        assert_unparsed(p)


@pytest.mark.parametrize(
    "text",
    [
        "Image 1 is better and Image 2 is better.",
        "Some reasoning. In conclusion, Image 2 is better than Image 1, and Image 1 is better than Image 2.",
        "Image 1 is better. Image 2 is better, Image 1 is better",
        "Video 1 is better, although both videos are equally good.",
        "Overall Judgment: Answer 1 is better than Answer 2 or Answer 2 is better than Answer 1.",
    ],
)
def test_conclusion_sentence_holding_conflicting_verdicts_is_unparsed(text):
    assert_unparsed(parse_pair(text), "conflicting")


def test_nonsense_self_comparison_not_counted():
    assert_unparsed(parse_pair("Image 1 is better than Image 1"), "no verdict")
    # ... and it does not conflict with a real verdict elsewhere
    p = parse_pair("Image 1 is better than Image 1. Image 2 is better.")
    assert_ok_verdict(p, "second")
    assert p.reason is None


def test_nonsense_self_comparison_second():
    assert_unparsed(parse_pair("Image 2 is better than Image 2."))


# ------------------------------------------------------------------------------- candidate numbers
@pytest.mark.parametrize(
    "text",
    [
        "Image 10 is better",
        "Image 12 is better.",
        "Image 12 is better than Image 1",
        "Image 21 is better",
        "Video 11 is better than Video 2",
        "Answer 10 is better.",
        "Image 1.5 is better",
    ],
)
def test_multi_digit_numbers_are_not_candidates_1_or_2(text):
    assert_unparsed(parse_pair(text), "no verdict")


def test_image_10_does_not_conflict_with_real_verdict():
    p = parse_pair("Image 10 is better. Image 2 is better.")
    assert_ok_verdict(p, "second")
    assert p.reason is None


@pytest.mark.parametrize(
    "text, verdict",
    [("Image #2 is better", "second"), ("Image #1 is better than Image #2.", "first"), ("Image2 is better", "second")],
)
def test_hash_and_no_space_numbering(text, verdict):
    assert_ok_verdict(parse_pair(text), verdict)


# ------------------------------------------------------------------------------------------ negation
@pytest.mark.parametrize(
    "text",
    ["Image 1 is not better", "Image 2 is not better than Image 1.", "Image 1 isn't better."],
)
def test_negated_verdict_is_no_verdict(text):
    assert_unparsed(parse_pair(text), "no verdict")


def test_negated_tie_is_not_a_tie():
    p = parse_pair("Image 1 is better. The two images are not equally good.")
    assert p.verdict != "tie"
    assert_ok_verdict(p, "first")


# --------------------------------------------------------------------------------- Overall Judgment
def test_overall_judgment_only_last_occurrence_counts():
    text = (
        "Answer 1 is better in detail, Answer 1 is better in tone.\n"
        "Overall Judgment: Answer 1 is better than Answer 2.\n"
        "Wait, re-reading the video.\n"
        "Overall Judgment: Answer 2 is better than Answer 1."
    )
    p = parse_pair(text)
    assert_ok_verdict(p, "second")
    assert p.reason is None  # everything before the last marker was ignored, so no conflict


def test_overall_judgment_ignores_verdict_in_reasoning():
    p = parse_pair("Image 1 is better. Image 1 is better.\nOverall Judgment: Image 2 is better")
    assert_ok_verdict(p, "second")
    assert p.reason is None


def test_overall_judgment_with_nothing_after_it_is_unparsed():
    # The reasoning holds a verdict, but the final judgment is empty: no falling back to the reasoning.
    assert_unparsed(parse_pair("Answer 1 is better than Answer 2.\nOverall Judgment:"), "no verdict")


def test_overall_judgement_spelling_variant():
    assert_ok_verdict(parse_pair("Image 2 is better.\noverall judgement: Image 1 is better"), "first")


@pytest.mark.parametrize(
    "text", ["Answer 2 is better.", "Overall Judgment: Answer 2 is better.", "Overall Judgment: Answer 2 is better"]
)
def test_answer_2_without_than_is_second_not_first(text):
    # The original video-understanding sifting required "... than Answer 1" and read this as R1 (its bug).
    assert_ok_verdict(parse_pair(text), "second")
    vu = proto("video_understanding", "pair_rank")
    assert_ok_verdict(parse(text, vu), "second")


# ---------------------------------------------------------------------------------- <answer>/<think>
def test_answer_block_last_wins():
    text = "<answer>Image 1 is better</answer> reconsidering... <answer>Image 2 is better</answer>"
    assert_ok_verdict(parse_pair(text), "second")


def test_answer_block_beats_reasoning_outside_it():
    text = (
        "<think>Image 1 (8/10) Image 2 (5/10). Total score: Image 1 is better.</think>"
        "<answer>Image 2 is better</answer> Image 1 is better."
    )
    p = parse_pair(text)
    assert_ok_verdict(p, "second")
    assert p.reason is None


def test_unclosed_answer_block():
    assert_ok_verdict(parse_pair("<think>Image 1 is better</think><answer>Image 2 is better"), "second")


def test_think_then_verdict():
    p = parse_pair("<think>Image 1 is better in colour. Image 1 is better in detail.</think>\nImage 2 is better.")
    assert_ok_verdict(p, "second")
    assert p.reason is None  # the reasoning is out of the region entirely


def test_unclosed_think_is_cut_off():
    p = parse_pair("<think>Comparing both. Image 1 is better in colour, so Image 1 is better")
    assert_unparsed(p, "cut off")


def test_unclosed_think_with_tie_inside():
    assert_unparsed(parse_pair("<think>Both images are equally good so far"), "cut off")


def test_closed_think_with_nothing_after_is_unparsed():
    p = parse_pair("<think>Image 2 is better.</think>   \n")
    assert_unparsed(p)
    assert "think" in p.reason.lower()


def test_empty_answer_block_is_unparsed():
    assert_unparsed(parse_pair("Image 1 is better. <answer></answer>"))


def test_answer_region_directly():
    assert answer_region("<answer> Image 2 is better </answer>") == (" Image 2 is better ", None)
    region, why = answer_region("<think>still thinking")
    assert region is None and "cut off" in why
    assert answer_region("") == (None, "empty output")
    region, why = answer_region("reasoning\nOverall Judgment: Answer 1 is better")
    assert why is None and "reasoning" not in region and "Answer 1 is better" in region


# ------------------------------------------------------------------------------------ non-ASCII text
def test_chinese_reasoning_then_english_verdict():
    text = "图1的颜色更鲜艳，但图2更符合描述，细节也更清晰。\nImage 2 is better."
    assert_ok_verdict(parse_pair(text), "second")


def test_chinese_only_is_unparsed():
    assert_unparsed(parse_pair("第二张图更好。"), "no verdict")


@pytest.mark.parametrize(
    "text, verdict",
    [
        ("Image ２ is better", "second"),  # full-width digit
        ("Image １ is better than Image ２.", "first"),
        ("Ｉｍａｇｅ　２ ｉｓ ｂｅｔｔｅｒ", "second"),  # full-width letters, ideographic space
        ("Image\u00a02\u00a0is\u00a0better", "second"),  # non-breaking spaces
        ("Image\u202f1\u202fis better", "first"),  # narrow no-break space
        ("Both\u00a0images\u00a0are\u00a0equally\u00a0good", "tie"),
    ],
)
def test_unicode_normalisation(text, verdict):
    assert_ok_verdict(parse_pair(text), verdict)


def test_full_width_multi_digit_still_not_candidate():
    assert_unparsed(parse_pair("Image １０ is better"))


# ----------------------------------------------------------------------------------- empty/garbage
@pytest.mark.parametrize("text", ["", "   ", "\n\t \n", "\u3000", None])
def test_empty_and_whitespace(text):
    assert_unparsed(parse_pair(text), "empty output")


@pytest.mark.parametrize(
    "text",
    [
        "asdf qwerty",
        "!!!???...",
        "1 2 1 2 2",
        "Image is better.",
        "The first one is better.",
        "Image 3 is better",
        "better better better Image 1 Image 2",
        "<|im_end|>",
    ],
)
def test_garbage_is_unparsed(text):
    assert_unparsed(parse_pair(text))


# -------------------------------------------------------------------------------------- point scores
def test_parse_dispatches_by_mode():
    assert_ok_verdict(parse("Image 2 is better.", proto("image_generation", "pair_rank")), "second")
    p = parse("Final Score: 4", proto("image_generation", "point_score"))
    assert p.status is Status.OK and p.score == 4.0 and p.verdict is None


@pytest.mark.parametrize("family", ["qwen", "llava"])
def test_final_score_simple(family):
    p = parse("Final Score: 4", proto("image_generation", "point_score", family))
    assert p.status is Status.OK
    assert p.score == 4.0 and isinstance(p.score, float)
    assert p.verdict is None and p.reason is None


def test_digits_before_marker_ignored():
    p = parse("1. Object: yes\n2. Colour: no\nFinal Score: 3", proto("image_generation", "point_score"))
    assert p.status is Status.OK and p.score == 3.0


def test_element_checklist_before_marker():
    text = "cat (object): 1\nred (attribute): 0\ntwo (count): 1\nFinal Score: 2"
    p = parse(text, proto("image_generation", "point_score"))
    assert p.status is Status.OK and p.score == 2.0


@pytest.mark.parametrize(
    "text",
    [
        "1. Object: yes\n2. Colour: no\nScore: 4",
        "I'd give it a 4 out of 5.",
        "Rating 3",
        "Final 4",
        "Final Score 4",  # no colon: not the marker
        "Overall score: 5",
    ],
)
def test_no_marker_is_unparsed_never_first_integer(text):
    p = parse(text, proto("image_generation", "point_score"))
    assert_unparsed(p, "Final Score")


@pytest.mark.parametrize(
    "task, text, scale",
    [
        ("image_generation", "Final Score: 7", "1-5"),
        ("image_generation", "Final Score: 0", "1-5"),
        ("image_generation", "Final Score: -1", "1-5"),
        ("image_generation", "Final Score: 5.5", "1-5"),
        ("video_generation", "Final Score: 0", "1-10"),
        ("video_generation", "Final Score: 11", "1-10"),
        ("image_understanding", "Final Score: 101", "0-100"),
        ("video_understanding", "Final Score: 6", "1-5"),
    ],
)
def test_out_of_scale_is_unparsed_naming_scale(task, text, scale):
    p = parse(text, proto(task, "point_score"))
    assert_unparsed(p, scale)
    assert "outside" in p.reason


@pytest.mark.parametrize(
    "text, score",
    [
        ("**Final Score:** 4", 4.0),
        ("**Final Score**: 4", 4.0),
        ("Final Score: [4]", 4.0),
        ("Final Score: (3)", 3.0),
        ("final score: 4/5", 4.0),
        ("FINAL SCORE: 2", 2.0),
        ("Final Score:4.5", 4.5),
        ("Final  Score :  1", 1.0),
        ("Final Score：3", 3.0),  # full-width colon
        ("Final Score: ５", 5.0),  # full-width digit
        ("Final Score: 3.\n", 3.0),
    ],
)
def test_final_score_forms(text, score):
    p = parse(text, proto("image_generation", "point_score"))
    assert p.status is Status.OK, p
    assert p.score == pytest.approx(score)


def test_last_marker_wins():
    p = parse("Final Score: 2\nOn reflection...\nFinal Score: 5", proto("image_generation", "point_score"))
    assert p.status is Status.OK and p.score == 5.0


def test_last_marker_without_number_does_not_fall_back():
    p = parse("Final Score: 4\nActually, let me redo this.\nFinal Score: N/A", proto("image_generation", "point_score"))
    assert_unparsed(p, "no number")


def test_last_marker_out_of_scale_does_not_fall_back():
    p = parse("Final Score: 4\nFinal Score: 9", proto("image_generation", "point_score"))
    assert_unparsed(p, "1-5")


@pytest.mark.parametrize(
    "text, score", [("Final Score: 85", 85.0), ("Final Score: 0", 0.0), ("Final Score: 100", 100.0)]
)
def test_image_understanding_0_to_100(text, score):
    p = parse(text, proto("image_understanding", "point_score"))
    assert p.status is Status.OK and p.score == score


def test_video_generation_1_to_10():
    text = "visual quality: 3\ntemporal consistency: 4\ndynamic degree: 2\ntext-to-video alignment: 3\nfactual consistency: 4\nFinal Score: 8"
    p = parse(text, proto("video_generation", "point_score"))
    assert p.status is Status.OK and p.score == 8.0


def test_point_score_inside_answer_block_and_after_think():
    p = parse("<think>Final Score: 1</think>\nFinal Score: 4", proto("image_generation", "point_score"))
    assert p.status is Status.OK and p.score == 4.0
    assert_unparsed(parse("<think>Final Score: 4", proto("image_generation", "point_score")), "cut off")


@pytest.mark.parametrize("text", ["", "   \n"])
def test_point_empty(text):
    assert_unparsed(parse(text, proto("image_generation", "point_score")), "empty output")


def test_read_score_directly():
    scale = ScoreScale("score", "Final Score:", 1, 5)
    assert read_score("blah Final Score: 3 blah", scale) == (3.0, None)
    value, why = read_score("3 out of 5", scale)
    assert value is None and "marker" in why
    value, why = read_score("Final Score: 9", scale)
    assert value is None and "1-5" in why


# -------------------------------------------------------------------------------- multi-dimension
IMG_MULTI = ("alignment", "coherence", "style")
VID_MULTI = ("alignment", "physics", "style")


@pytest.mark.parametrize("family", ["qwen", "llava"])
def test_image_multi_all_three(family):
    text = "Alignment Score (1-5): 4\nCoherence Score (1-5): 3\nStyle Score (1-5): 5"
    p = parse(text, proto("image_generation", "point_multi", family))
    assert p.status is Status.OK, p
    assert p.dims == {"alignment": 4.0, "coherence": 3.0, "style": 5.0}
    assert p.score == pytest.approx(4.0)
    assert p.verdict is None


def test_video_multi_all_three():
    text = "Alignment Score (1-5): 2\nPhysics Score (1-5): 5\nStyle Score (1-5): 5"
    p = parse(text, proto("video_generation", "point_multi"))
    assert p.status is Status.OK
    assert set(p.dims) == set(VID_MULTI)
    assert p.dims == {"alignment": 2.0, "physics": 5.0, "style": 5.0}
    assert p.score == pytest.approx(4.0)


def test_multi_with_word_wise_scores_before():
    text = (
        'Word-wise Scores: [["a", 1], ["red", 2], ["cat", 3], ["[No_mistakes]", 1]]\n'
        "Alignment Score (1-5): 3\nCoherence Score (1-5): 4\nStyle Score (1-5): 2"
    )
    p = parse(text, proto("image_generation", "point_multi"))
    assert p.status is Status.OK and p.dims == {"alignment": 3.0, "coherence": 4.0, "style": 2.0}
    assert p.score == pytest.approx(3.0)


def test_multi_one_missing_keeps_found_dims():
    text = "Alignment Score (1-5): 4\nCoherence Score (1-5): 3\n"
    p = parse(text, proto("image_generation", "point_multi"))
    assert_unparsed(p, "Style Score")
    assert p.dims == {"alignment": 4.0, "coherence": 3.0}
    assert "Alignment" not in p.reason and "Coherence" not in p.reason


def test_video_multi_with_coherence_instead_of_physics():
    text = "Alignment Score (1-5): 4\nCoherence Score (1-5): 3\nStyle Score (1-5): 5"
    p = parse(text, proto("video_generation", "point_multi"))
    assert_unparsed(p, "Physics Score")
    assert p.dims == {"alignment": 4.0, "style": 5.0}


def test_multi_none_found():
    p = parse("The image looks great.", proto("image_generation", "point_multi"))
    assert_unparsed(p)
    assert p.dims is None
    for marker in ("Alignment Score", "Coherence Score", "Style Score"):
        assert marker in p.reason


def test_multi_markers_without_range():
    p = parse("Alignment Score: 4\nCoherence Score: 2\nStyle Score: 3", proto("image_generation", "point_multi"))
    assert p.status is Status.OK and p.dims == {"alignment": 4.0, "coherence": 2.0, "style": 3.0}
    assert p.score == pytest.approx(3.0)


def test_multi_float_values():
    text = "Alignment Score (1-5): 2.69\nPhysics Score (1-5): 3.1\nStyle Score (1-5): 4.2047"
    p = parse(text, proto("video_generation", "point_multi"))
    assert p.status is Status.OK
    assert p.dims == pytest.approx({"alignment": 2.69, "physics": 3.1, "style": 4.2047})
    assert p.score == pytest.approx((2.69 + 3.1 + 4.2047) / 3)


def test_multi_out_of_scale_dimension():
    text = "Alignment Score (1-5): 4\nCoherence Score (1-5): 6\nStyle Score (1-5): 5"
    p = parse(text, proto("image_generation", "point_multi"))
    assert_unparsed(p, "coherence")
    assert "1-5" in p.reason
    assert p.dims == {"alignment": 4.0, "style": 5.0}


def test_multi_order_and_markdown_do_not_matter():
    text = "**Style Score (1-5):** 1\n**Alignment Score (1-5):** 5\n**Coherence Score (1-5):** 3"
    p = parse(text, proto("image_generation", "point_multi"))
    assert p.status is Status.OK and p.dims == {"alignment": 5.0, "coherence": 3.0, "style": 1.0}


def test_multi_last_marker_wins_per_dimension():
    text = "Alignment Score: 1\nCoherence Score: 1\nStyle Score: 1\nRevised:\nAlignment Score: 5\nCoherence Score: 4\nStyle Score: 3"
    p = parse(text, proto("image_generation", "point_multi"))
    assert p.dims == {"alignment": 5.0, "coherence": 4.0, "style": 3.0}


def test_pair_text_given_to_point_protocol_is_unparsed():
    # A pair verdict handed to a point protocol is not a score.
    assert_unparsed(parse_point("Image 1 is better.", proto("image_generation", "point_score")), "Final Score")


def test_registry_protocols_used_here_have_expected_modes():
    # Guards the helpers above: they really hand the parser point protocols.
    assert proto("image_generation", "point_multi").mode is Mode.POINT_MULTI
    assert proto("image_understanding", "point_score").task is Task.IMAGE_UNDERSTANDING
