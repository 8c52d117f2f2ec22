"""Session fixtures: tiny checkpoints and a small synthetic world, built once per test session
(registered from conftest.py through ``pytest_plugins``)."""

import pytest

from unireward.judge.model import RewardModel
from unireward.models.tiny import build_tiny_judge
from unireward.synth.world import generate_world


@pytest.fixture(scope="session")
def tiny_judge_dir(tmp_path_factory):
    return build_tiny_judge(tmp_path_factory.mktemp("judge") / "qwen2_5_vl", arch="qwen2_5_vl", size="nano")


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    return generate_world(str(tmp_path_factory.mktemp("world")), n=2, seed=3, n_candidates=4)


@pytest.fixture(scope="session")
def rm(tiny_judge_dir):
    return RewardModel(tiny_judge_dir, max_new_tokens=6)
