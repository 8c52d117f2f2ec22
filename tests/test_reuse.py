"""A visual shown by many items of a batch is preprocessed and encoded once (judge.reuse): the
duplicate finder, and judgments equal to the plain path on Qwen2-VL, Qwen2.5-VL and Qwen3-VL."""

import pytest
import torch

from unireward.bench.rewards import _group_bodies
from unireward.io.media import MediaLimits
from unireward.judge.model import RewardModel
from unireward.judge.reuse import duplicates
from unireward.models.tiny import build_tiny_judge
from unireward.serve.api import MediaPolicy, RewardsRequest, to_group


def test_duplicates_found_at_any_offset_and_only_when_equal():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, 12, generator=g), torch.randn(16, 12, generator=g)
    c = torch.randn(4, 12, generator=g)
    a2 = a.clone()
    a2[5, 3] += 1e-3  # one value apart: a different image
    rows = [a, c, b, a, a2, c, b.flip(0)]
    grids = [[1, 4, 4], [1, 2, 2], [1, 4, 4], [1, 4, 4], [1, 4, 4], [1, 2, 2], [1, 4, 4]]
    rep = duplicates(torch.cat(rows), torch.tensor(grids))
    assert rep == [0, 1, 2, 0, 4, 1, 6]
    # the same patches under another grid are another visual
    assert duplicates(torch.cat([a, a]), torch.tensor([[1, 4, 4], [1, 2, 8]])) == [0, 1]


def _group_items(n: int):
    prompt, cands = _group_bodies(1, n, seed=n)[0]
    plan, items = to_group(
        RewardsRequest(task="image_generation", prompt=prompt, candidates=cands),
        MediaPolicy(MediaLimits(), [], False, 8),
    )
    return items


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"])
def test_a_groups_judgments_equal_the_plain_path(arch, tmp_path):
    rm = RewardModel(build_tiny_judge(tmp_path / arch, arch=arch, size="nano"), max_batch_size=64)
    assert rm.vision_dedup
    items = _group_items(4)  # four images, each in six of the twelve pair items
    fast = rm.judge(items)
    assert rm._image_features.checked is True  # compared once with a plain processor call
    inner = rm.model.model
    for name in ("get_image_features", "get_video_features"):
        inner.__dict__.pop(name, None)  # the model's own vision path
    rm._image_features.checked = False  # the processor's own image path
    plain = rm.judge(items)
    for f, p in zip(fast, plain):
        assert f.verdict == p.verdict
        assert f.probs == pytest.approx(p.probs, abs=1e-6)


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl"])
def test_vision_features_of_duplicates_are_the_distinct_ones(arch, tmp_path):
    rm = RewardModel(build_tiny_judge(tmp_path / arch, arch=arch, size="nano"))
    proto = rm.protocols.get(rm.family, "image_generation", _group_items(3)[0].resolved_mode())
    encs = [rm.encode_item(it, proto) for it in _group_items(3)]
    pv = torch.cat([e["pixel_values"] for e in encs])
    grid = torch.cat([e["image_grid_thw"] for e in encs])
    inner = rm.model.model
    with torch.inference_mode():
        fast = inner.get_image_features(pv, grid, return_dict=True)
        plain = inner.__class__.get_image_features(inner, pv, grid, return_dict=True)
    assert len(fast.pooler_output) == len(plain.pooler_output) == len(grid)
    for f, p in zip(fast.pooler_output, plain.pooler_output):
        torch.testing.assert_close(f, p, atol=1e-5, rtol=1e-5)
    if arch == "qwen3_vl":
        for fl, pl in zip(fast.deepstack_features, plain.deepstack_features):
            for f, p in zip(fl, pl):
                torch.testing.assert_close(f, p, atol=1e-5, rtol=1e-5)


def test_each_image_is_preprocessed_once_per_call(tiny_judge_dir):
    rm = RewardModel(tiny_judge_dir)
    items = _group_items(4)
    proto = rm.protocols.get(rm.family, "image_generation", items[0].resolved_mode())
    cache: dict = {}
    for it in items:
        rm.encode_item(it, proto, cache)
    assert sum(1 for k in cache if k[0] == "image-features") == 4
    assert sum(1 for k in cache if k[0] == "media") == 4


def test_a_preprocessing_pool_gives_the_same_judgments(tiny_judge_dir, world):
    from unireward.judge.records import read_items

    items = (
        _group_items(4)
        + read_items(world.items["image_understanding"])[0]
        + read_items(world.items["video_generation"])[0]
    )
    one = RewardModel(tiny_judge_dir, preprocess_workers=1).judge(items, swap=True)
    pool = RewardModel(tiny_judge_dir, preprocess_workers=3).judge(items, swap=True)
    assert [j.status for j in one] == [j.status for j in pool]
    for a, b in zip(one, pool):
        assert a.verdict == b.verdict and a.score_norm == b.score_norm
        assert (a.probs or {}) == pytest.approx(b.probs or {}, abs=1e-6)
