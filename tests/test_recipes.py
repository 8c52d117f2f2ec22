"""The recipes in pipelines/ are valid specs, and run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from unireward.config import CurateSpec, ScoreSpec, load_spec

RECIPES = sorted((Path(__file__).resolve().parents[1] / "pipelines").glob("*.yaml"))


def test_there_is_a_recipe_per_task_and_kind():
    specs = [load_spec(p) for p in RECIPES]
    assert {s.kind for s in specs} == {"curate", "score", "eval", "train_reward", "dpo"}
    assert {s.policy for s in specs if s.kind == "dpo"} == {"vlm", "diffusion_image", "diffusion_video"}
    curated = {
        Path(s.input if isinstance(s.input, str) else s.input[0]).name.split(".")[0]
        for s in specs
        if isinstance(s, CurateSpec)
    }
    specs = [s for s in specs if s.kind in ("curate", "score")]
    assert curated == {"image_generation", "image_understanding", "video_generation", "video_understanding"}
    assert any(isinstance(s, ScoreSpec) for s in specs)
    assert any(isinstance(s, CurateSpec) and s.generate is not None for s in specs)
    assert {s.select.strategy for s in specs if isinstance(s, CurateSpec)} == {"pair_point", "bradley_terry"}


@pytest.mark.slow
def test_the_scoring_recipe_runs(tiny_judge_dir, world, tmp_path):
    recipe = next(p for p in RECIPES if p.name == "score-items.yaml")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "unireward.cli",
            "run",
            str(recipe),
            "--set",
            f"judge.model={tiny_judge_dir}",
            "--set",
            f"input={world.items['video_understanding']}",
            "--set",
            f"output={tmp_path / 'out'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert out["run"]["processed"] == out["run"]["total"] > 0
    summary = json.loads((tmp_path / "out" / "report" / "summary.json").read_text())
    assert summary["tasks"]["video_understanding"]["status"]["ok"] == out["run"]["total"]
