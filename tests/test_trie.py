"""The logit method's arithmetic on hand-made token sequences and distributions."""

import math

import pytest

from unireward.judge.trie import build_trie


def test_verdict_phrases_share_one_path():
    # "Image 1 is better" = [10, 11, 1, 12, 13]; "Image 2 ..." = [10, 11, 2, 12, 13]; "Both images ..." = [20, 21]
    t = build_trie({"first": [10, 11, 1, 12, 13], "second": [10, 11, 2, 12, 13], "tie": [20, 21]})
    assert t.common == ()
    assert set(t.queries) == {(), (10, 11)}
    assert t.single_path and t.path == (10, 11)
    assert t.keep() == 3  # logits after the prompt's last token, after 10 and after 11
    dist = {(): {10: 0.6, 20: 0.3}, (10, 11): {1: 0.25, 2: 0.5}}
    probs, mass = t.combine(dist)
    raw = {"first": 0.6 * 0.25, "second": 0.6 * 0.5, "tie": 0.3}
    total = sum(raw.values())
    assert mass == pytest.approx(total)
    for k in raw:
        assert probs[k] == pytest.approx(raw[k] / total)


def test_shared_answer_prefix_is_given():
    # "Overall Judgment: Answer 1 ..." vs "... Answer 2 ...": the prefix tokens are not queried
    t = build_trie({"first": [5, 6, 7, 1, 9], "second": [5, 6, 7, 2, 9]})
    assert t.common == (5, 6, 7)
    assert t.queries == ((5, 6, 7),)
    assert t.keep() == 1
    probs, mass = t.combine({(5, 6, 7): {1: 0.2, 2: 0.6}})
    assert probs == pytest.approx({"first": 0.25, "second": 0.75})
    assert mass == pytest.approx(0.8)


def test_one_to_ten_scale_is_a_single_path():
    # marker tokens [50, 51], digits are single tokens 100 + d; "10" = "1" "0"
    opts = {str(v): [50, 51] + [100 + int(c) for c in str(v)] for v in range(1, 11)}
    t = build_trie(opts)
    assert t.common == (50, 51)
    assert set(t.queries) == {(50, 51), (50, 51, 101)}  # the root, and "1" (stop, or continue to "10")
    assert t.single_path and t.keep() == 2
    root = {100 + d: 0.1 for d in range(1, 10)}
    root[101] = 0.2  # "1..." twice as likely
    dist = {(50, 51): root, (50, 51, 101): {100: 0.75}}  # after "1": "0" with 0.75
    probs, mass = t.combine(dist)
    assert mass == pytest.approx(sum(root.values()))
    assert probs["10"] / probs["1"] == pytest.approx(3.0)
    assert probs["10"] == pytest.approx(0.2 * 0.75 / mass)
    assert probs["5"] == pytest.approx(0.1 / mass)


def test_zero_to_hundred_needs_several_paths():
    opts = {str(v): [50] + [100 + int(c) for c in str(v)] for v in range(0, 101)}
    t = build_trie(opts)
    assert not t.single_path
    # every first digit 1..9 may stop or continue; "10" may stop or continue to "100"
    assert (50, 101, 100) in t.queries and (50, 109) in t.queries and (50, 100) not in t.queries
    assert set(t.paths) == {(50, 101, 100)} | {(50, 100 + d) for d in range(2, 10)}
    # a distribution that puts all mass on "4" then "2" -> 42
    dist = {q: {} for q in t.queries}
    dist[(50,)] = {104: 1.0}
    dist[(50, 104)] = {102: 1.0}
    probs, mass = t.combine(dist)
    assert mass == pytest.approx(1.0)
    assert probs["42"] == pytest.approx(1.0)
    assert sum(probs.values()) == pytest.approx(1.0)
    # all mass on "4" then stop -> 4
    dist[(50, 104)] = {}
    probs, _ = t.combine(dist)
    assert probs["4"] == pytest.approx(1.0)


def test_no_mass_on_any_answer_is_reported_not_hidden():
    t = build_trie({"first": [1], "second": [2]})
    probs, mass = t.combine({(): {}})
    assert mass == 0.0
    assert probs == {"first": 0.5, "second": 0.5}


@pytest.mark.parametrize(
    "opts, message",
    [
        ({"first": [1, 2]}, "at least two"),
        ({"first": [1, 2], "second": [1, 2]}, "tokenize identically"),
        ({"first": [], "second": [1]}, "nothing"),
    ],
)
def test_invalid_answer_sets(opts, message):
    with pytest.raises(ValueError, match=message):
        build_trie(opts)


def test_probabilities_are_a_distribution():
    opts = {str(v): [7] + [100 + int(c) for c in str(v)] for v in range(1, 11)}
    t = build_trie(opts)
    dist = {(7,): {100 + d: 1 / 12 for d in range(10)}, (7, 101): {100: 0.5}}
    probs, mass = t.combine(dist)
    assert math.isclose(sum(probs.values()), 1.0)
    assert all(p >= 0 for p in probs.values())
