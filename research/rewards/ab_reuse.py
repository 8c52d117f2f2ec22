"""A/B probe: one G = 8 group's pairwise judgments (56 items, both orders) in process, with the
per-visual reuse of judge.reuse (each image preprocessed and encoded once per call) against without
it, on the same RewardModel, alternating three times. Prints seconds per judge call and the largest
difference in verdict probabilities (expected 0).

    PYTHONPATH=platform python research/rewards/ab_reuse.py /path/to/tiny/judge

Result on the dev machine (2 cores, shared, tiny judge "small", 2026-12-02): without 1.02-1.44 s,
with 0.71-0.83 s per call, probabilities identical."""

import sys
import time

import torch

from unireward.bench.rewards import _group_bodies
from unireward.io.media import MediaLimits
from unireward.judge.model import RewardModel
from unireward.serve.api import MediaPolicy, RewardsRequest, to_group

torch.set_num_threads(1)
rm = RewardModel(sys.argv[1])
prompt, cands = _group_bodies(1, 8, 8)[0]
plan, items = to_group(
    RewardsRequest(task="image_generation", prompt=prompt, candidates=cands), MediaPolicy(MediaLimits(), [], False, 32)
)
inner = rm.model.model
patched = {n: getattr(inner, n) for n in ("get_image_features", "get_video_features")}


def without():
    for n in patched:
        inner.__dict__.pop(n, None)
    rm._image_features.checked = False


def with_reuse():
    for n, f in patched.items():
        setattr(inner, n, f)
    rm._image_features.checked = True


ref = None
for name, switch in [("without", without), ("with", with_reuse)] * 3:
    switch()
    t = time.perf_counter()
    js = rm.judge(items)
    dt = time.perf_counter() - t
    probs = [j.probs for j in js]
    ref = ref or probs
    diff = max(abs(a[k] - b[k]) for a, b in zip(ref, probs) for k in a)
    print(f"{name:8s} {dt:.3f} s  max |dP| vs first run {diff:.2e}")
