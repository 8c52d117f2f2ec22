"""Session fixtures: one local Ray, tiny checkpoints and a small synthetic world, built once per test
session (registered from conftest.py through ``pytest_plugins``)."""

import os
import socket

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


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray (2 CPUs) for every test that needs one, its metrics exported on a free port
    (the endpoint's Prometheus series). Tests that use it run in one pytest-xdist group."""
    import ray

    os.environ["RAY_metrics_report_interval_ms"] = "1000"
    if ray.is_initialized():  # a test before this one (the demo, a run in this process) left its Ray up
        ray.shutdown()
    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _metrics_export_port=port)
    yield dict(metrics_port=port)
    ray.shutdown()
