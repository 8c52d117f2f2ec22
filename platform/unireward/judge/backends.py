"""The judge backends a spec can name: a checkpoint loaded in this process (``RewardModel``) or a
served judge behind the reward endpoint (``RemoteJudge``). Both answer ``judge(items, method, swap)``."""

from __future__ import annotations

import functools
from typing import Any


def make_judge(cfg: Any):
    """The judge a ``judge:`` section (``unireward.config.JudgeConfig``) describes: the served judge
    at ``endpoint``, or the checkpoint at ``model``."""
    if cfg.endpoint:
        from ..serve.client import RemoteJudge  # the HTTP client lives beside the endpoint it speaks to

        return RemoteJudge.from_config(cfg)
    from .model import RewardModel

    return RewardModel.from_config(cfg)


def media_limits_for(cfg: Any, task: str, mode: str) -> Any:
    """How the judge a ``judge:`` section describes reads the media of a (task, mode): the spec's
    media limits with its protocol's own (a checkpoint profile's) on top, in the patch x merge size
    of its processor. What the decode stage of a batch job uses, before the judge sees the media."""
    import dataclasses

    base = cfg.media.limits()
    try:
        registry = _registry(cfg.protocols)
        protocol = registry.get(cfg.family or registry.default_family, task, mode)
    except (KeyError, ValueError):
        return base  # the judge says what is wrong with the item itself
    limits = protocol.media_limits(base)
    factor = None if "factor" in protocol.media else _factor(cfg.model)
    return dataclasses.replace(limits, factor=factor) if factor else limits


@functools.lru_cache(maxsize=8)
def _registry(protocols: str | None):
    from .protocols import default_registry

    return default_registry().with_overrides(protocols)


@functools.lru_cache(maxsize=8)
def _factor(model: str) -> int | None:
    """patch size x merge size from a local checkpoint's preprocessor config (None when unknown)."""
    import json
    import os

    path = os.path.join(model, "preprocessor_config.json")
    try:
        with open(path) as f:
            cfg = json.load(f)
        return int(cfg["patch_size"]) * int(cfg["merge_size"])
    except (OSError, KeyError, TypeError, ValueError):
        return None
