"""Judge training data: sampling and mixing rules, targets that the judge reads back, preference
records and the original's conversation format as SFT examples."""

from collections import Counter

import pytest

from unireward.judge.parsing import parse
from unireward.judge.protocols import chat_messages, default_registry
from unireward.judge.types import JudgeItem, Mode, Status
from unireward.train.data import DataError, from_conversation, from_preference, mix, sample, target_text

REG = default_registry()
ROWS = list(range(10))


@pytest.mark.parametrize(
    "rule, expected",
    [
        ("all", ROWS),
        ("first:3", [0, 1, 2]),
        ("end:3", [7, 8, 9]),
        ("end:0", []),
        ("first:50", ROWS),
    ],
)
def test_sampling_rules(rule, expected):
    assert sample(ROWS, rule) == expected


def test_random_and_percent_sampling_are_seeded_draws_without_replacement():
    a, b = sample(ROWS, "random:4", seed=1), sample(ROWS, "random:4", seed=1)
    assert a == b and len(set(a)) == 4 and set(a) <= set(ROWS)
    assert sample(ROWS, "random:4", seed=2) != a or sample(ROWS, "random:4", seed=3) != a
    assert len(sample(ROWS, "30%")) == 3 and len(set(sample(ROWS, "30%"))) == 3
    assert len(sample(ROWS, "random:99")) == 10


@pytest.mark.parametrize("rule", ["some", "first:", "random:-1", "150%", "first:3 " + "x"])
def test_bad_sampling_rules_say_what_is_allowed(rule):
    with pytest.raises(DataError, match="all, first:N|100%"):
        sample(ROWS, rule)


def test_mixing_follows_the_weights():
    sources = {"ig": ["ig"] * 50, "iu": ["iu"] * 50, "vg": ["vg"] * 5}
    out = mix(sources, {"ig": 2, "iu": 1, "vg": 1}, total=40, seed=0)
    assert Counter(out) == {"ig": 20, "iu": 10, "vg": 10}  # vg has 5 rows: drawn again with replacement
    assert len(mix(sources, {"ig": 1, "iu": 1, "vg": 1}, total=10)) == 10
    assert "vg" not in mix(sources, {"ig": 1, "iu": 1, "vg": 0}, total=12)
    with pytest.raises(DataError, match="unknown sources"):
        mix(sources, {"xx": 1}, total=3)
    with pytest.raises(DataError, match="at least one > 0"):
        mix(sources, {"ig": 0}, total=3)


@pytest.mark.parametrize("family", ["qwen", "llava"])
@pytest.mark.parametrize("task", ["image_generation", "video_understanding"])
def test_pair_targets_parse_back_to_their_label(family, task):
    p = REG.get(family, task, "pair_rank")
    for label in ("first", "second", "tie") if p.allows_tie else ("first", "second"):
        j = parse(target_text(p, label), p)
        assert j.status is Status.OK and j.verdict == label
    if not p.allows_tie:
        with pytest.raises(DataError, match="not one of its verdicts"):
            target_text(p, "tie")


def test_score_targets_parse_back_and_are_checked():
    p = REG.get("qwen", "image_generation", "point_score")
    j = parse(target_text(p, 4), p)
    assert j.status is Status.OK and j.score == 4
    for bad in (0, 6, 3.5, "4", True):
        with pytest.raises(DataError):
            target_text(p, bad)
    multi = REG.get("qwen", "image_generation", "point_multi")
    label = {s.name: 2 + k for k, s in enumerate(multi.scales)}
    j = parse(target_text(multi, label), multi)
    assert j.status is Status.OK and j.dims == {k: float(v) for k, v in label.items()}
    with pytest.raises(DataError, match="lacks the dimensions"):
        target_text(multi, {multi.scales[0].name: 3})
    with pytest.raises(DataError, match="not one of its verdicts"):
        target_text(REG.get("qwen", "image_generation", "pair_rank"), "better")


def test_a_preference_becomes_the_judges_own_chat_plus_its_target():
    item = JudgeItem("image_understanding", "How many circles?", ["Two.", "Three."], context="ctx.png", id="q1")
    p = REG.get("qwen", "image_understanding", "pair_rank")
    ex = from_preference(item, p, "second", source="synthetic")
    assert ex.messages == chat_messages(item, p)  # exactly what RewardModel judges
    assert ex.media == ["ctx.png"] and ex.media_kind == "image" and ex.task == "image_understanding"
    assert ex.conversation()[-1] == {"role": "assistant", "content": [{"type": "text", "text": ex.target}]}
    assert "Two." in ex.messages[0]["content"][-1]["text"]
    gen = JudgeItem("video_generation", "a ball moves left", ["a.mp4", "b.mp4"])
    ex = from_preference(gen, REG.get("qwen", "video_generation", "pair_rank"), "first")
    assert ex.media == ["a.mp4", "b.mp4"] and [c["type"] for c in ex.messages[0]["content"]] == [
        "video",
        "video",
        "text",
    ]
    with pytest.raises(DataError, match="empty prompt"):
        from_preference(
            JudgeItem("image_generation", " ", ["a", "b"]), REG.get("qwen", "image_generation", "pair_rank"), "first"
        )


def test_the_original_conversation_format_imports():
    rec = {
        "images": ["a.png", "b.png"],
        "conversations": [
            {"from": "human", "value": "<image>\n<image>\nWhich image matches the caption [a red fox]?"},
            {"from": "gpt", "value": "Image 1 is better."},
        ],
    }
    ex = from_conversation(rec, "image_generation", source="EvalMuse")
    assert ex.media == ["a.png", "b.png"] and ex.target == "Image 1 is better."
    assert ex.messages[0]["content"] == [
        {"type": "image"},
        {"type": "image"},
        {"type": "text", "text": "Which image matches the caption [a red fox]?"},
    ]
    video = from_conversation(
        {
            "video": "v.mp4",
            "conversations": [
                {"from": "human", "value": "<video>\nRate it."},
                {"from": "gpt", "value": "Final Score: 3"},
            ],
        },
        "video_generation",
    )
    assert video.media_kind == "video" and video.media == ["v.mp4"]
    single = from_conversation(
        {
            "image": "x.png",
            "conversations": [{"from": "human", "value": "<image> What is it?"}, {"from": "gpt", "value": "A fox."}],
        },
        "image_understanding",
    )
    assert single.media == ["x.png"] and single.messages[0]["content"][-1]["text"] == "What is it?"


@pytest.mark.parametrize(
    "rec, message",
    [
        ({"image": "a.png"}, "needs 'conversations'"),
        (
            {"image": "a.png", "conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}]},
            "human then a gpt",
        ),
        (
            {
                "image": "a.png",
                "conversations": [{"from": "human", "value": "<image><image> q"}, {"from": "gpt", "value": "a"}],
            },
            "2 media placeholders but the record gives 1",
        ),
        (
            {
                "image": "a.png",
                "conversations": [{"from": "human", "value": "<image> q"}, {"from": "gpt", "value": " "}],
            },
            "nothing to train on",
        ),
    ],
)
def test_bad_conversation_records_say_why(rec, message):
    with pytest.raises(DataError, match=message):
        from_conversation(rec, "image_generation")
    with pytest.raises(DataError, match="unknown task"):
        from_conversation(rec, "image_captioning")


def test_mode_defaults_follow_the_candidates():
    assert JudgeItem("image_generation", "x", ["a"]).resolved_mode() is Mode.POINT_SCORE


def test_think_targets_reason_about_each_candidate_then_give_the_verdict():
    from unireward.judge.parsing import parse
    from unireward.synth import world as W
    from unireward.train.data import example_from_item_row

    protocol_for = lambda task, mode: REG.get("qwen", task, mode)  # noqa: E731
    for make in W.MAKERS.values():
        row = make(2, 0, 4).row
        for it in W.items_from_pool(row, "all"):
            if it["mode"] != "pair_rank" or it["label"] == "tie" and not it["task"].endswith("_generation"):
                continue
            plain = example_from_item_row(it, protocol_for)
            ex = example_from_item_row(it, protocol_for, think=True)
            back = example_from_item_row(it, protocol_for, swap=True, think=True)
            noun = {"image_generation": "Image", "video_generation": "Video"}.get(it["task"], "Answer")
            assert ex.target.startswith(
                f"<think>{noun} 1: {it['rationales'][0]}. {noun} 2: {it['rationales'][1]}.</think>"
            )
            assert ex.target.endswith(plain.target)
            assert back.target.startswith(f"<think>{noun} 1: {it['rationales'][1]}. {noun} 2: {it['rationales'][0]}.")
            # the judge's parser reads the verdict after the reasoning
            p = protocol_for(it["task"], "pair_rank")
            assert parse(ex.target, p).verdict == it["label"]
            swapped = {"first": "second", "second": "first"}.get(it["label"], it["label"])
            assert parse(back.target, p).verdict == swapped
    pair = next(it for it in W.items_from_pool(W.make_image_generation(2, 0, 4).row) if it["mode"] == "pair_rank")
    with pytest.raises(DataError, match="rationales"):
        example_from_item_row(dict(pair, rationales=None), protocol_for, think=True)
