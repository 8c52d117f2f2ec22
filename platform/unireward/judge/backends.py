"""The judge backends a spec can name: a checkpoint loaded in this process (``RewardModel``) or a
served judge behind the reward endpoint (``RemoteJudge``). Both answer ``judge(items, method, swap)``."""

from __future__ import annotations

from typing import Any


def make_judge(cfg: Any):
    """The judge a ``judge:`` section (``unireward.config.JudgeConfig``) describes: the served judge
    at ``endpoint``, or the checkpoint at ``model``."""
    if cfg.endpoint:
        from ..serve.client import RemoteJudge  # the HTTP client lives beside the endpoint it speaks to

        return RemoteJudge.from_config(cfg)
    from .model import RewardModel

    return RewardModel.from_config(cfg)
