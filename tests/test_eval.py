"""Evaluation on the public reward benchmarks: the official metrics against hand-computed values,
the loaders on small copies in each benchmark's exact layout (written by unireward.synth.benchmarks,
with the faults real copies have), every upstream prediction format written and read back, and an
end-to-end `kind: eval` on a local Ray with the tiny judge for each benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unireward import eval as benchmarks
from unireward.eval import genai_bench, imagereward, mmrb2, videogen_rewardbench, vl_rewardbench
from unireward.eval.core import LoadError, Prediction, bootstrap, calibration
from unireward.synth import benchmarks as fixtures


def P(key="k", group="g", status="ok", verdict=None, label=None, **kw) -> Prediction:
    return Prediction(
        key=key,
        group=group,
        task=kw.pop("task", "image_generation"),
        mode=kw.pop("mode", "pair_rank"),
        status=status,
        verdict=verdict,
        label=label,
        **kw,
    )


# ------------------------------------------------------------------------------------ GenAI-Bench
def test_genai_bench_official_vote_rules():
    ok = genai_bench.official_correct
    assert ok("[[A>B]]", "leftvote") and ok("[[A>>B]]", "leftvote") and not ok("[[B>A]]", "leftvote")
    assert ok("[[A=B]]", "tievote") and ok("[[A=B]]", "bothbad_vote")  # a tie is right for both tie classes
    assert ok("[[A=B=Good]]", "tievote") and not ok("[[A=B=Good]]", "bothbad_vote")
    assert not ok("[[A>B]] or [[B>A]]", "leftvote")  # greedy to the last ]]: not an exact vote
    assert not ok(None, "leftvote") and not ok("[[ A>B ]]", "leftvote")


def test_genai_bench_metrics_by_hand():
    g1, g2 = "image_generation/test_v1", "video_generation/test_v1"
    preds = [
        P(group=g1, verdict="first", label="leftvote"),  # right
        P(group=g1, verdict="tie", label="bothbad_vote"),  # right: [[A=B]]
        P(group=g1, status="unparsed", label="tievote"),  # wrong: no vote
        P(group=g2, verdict="second", label="rightvote"),  # right
        P(group=g2, verdict="first", label="rightvote"),  # wrong
        P(group=g2, status="not_loaded", label="maybevote"),  # an unknown vote: wrong, as officially
        P(group="image_generation/test", verdict="first", label="leftvote"),  # without ties: right
        P(group="image_generation/test", verdict="tie", label="rightvote"),  # a tie counts wrong
        P(group="image_generation/test", verdict="first", label="tievote"),  # a human tie is left out
    ]
    m = genai_bench.metrics(preds)
    assert (m["image_generation/official_4way_accuracy"].num, m["image_generation/official_4way_accuracy"].den) == (
        2,
        3,
    )
    assert (m["video_generation/official_4way_accuracy"].num, m["video_generation/official_4way_accuracy"].den) == (
        1,
        3,
    )
    assert (
        m["image_generation/accuracy_without_ties"].value == 0.5
        and m["image_generation/accuracy_without_ties"].den == 2
    )
    # the leaderboard: the mean of the rounded percentages 66.67 and 33.33
    assert m["leaderboard_average"].value == pytest.approx(0.50) and m["leaderboard_average"].den == 6


# ------------------------------------------------------------------------------------ VideoGen-RewardBench
def test_videogen_accuracy_with_and_without_ties_as_videoalign():
    wt, wo = videogen_rewardbench.with_ties, videogen_rewardbench.without_ties
    assert wt([(1, 1.0), (1, 2.0), (1, 3.0), (-1, -4.0)]) == (3, 4)  # at least one pair is always a tie
    assert wt([(0, 0.5), (1, 0.5)]) == (2, 2)  # equal |m| split by row order
    assert wt([(1, 0.5), (0, 0.5)]) == (1, 2)
    assert wo([(1, 0.0), (-1, -2.0), (0, 1.0), (1, None)]) == (1, 3)  # zero and missing margins are wrong; ties out
    assert wt([(1, None), (0, None)]) == (0, 2)  # no margin: never a tie, never right


def test_videogen_dimensions_come_from_each_videos_point_scores():
    pair = P(
        key="0",
        group="pairs",
        verdict="first",
        p_first=0.7,
        p_second=0.3,
        label=dict(overall="A", vq="B", mq="A", ta="same"),
        extra=dict(row=0, path_a="a", path_b="b"),
    )
    va = P(
        key="video:a",
        group="videos",
        mode="point_multi",
        extra=dict(path="a"),
        dims=dict(style=2.0, physics=4.0, alignment=3.0),
    )
    vb = P(
        key="video:b",
        group="videos",
        mode="point_multi",
        extra=dict(path="b"),
        dims=dict(style=3.0, physics=1.0, alignment=3.0),
    )
    m = videogen_rewardbench.margins([pair, va, vb])
    assert m["overall"] == [(1, pytest.approx(0.4))] and m["vq"] == [(-1, -1.0)] and m["mq"] == [(1, 3.0)]
    assert m["ta"] == [(0, 0.0)]


# ------------------------------------------------------------------------------------ VL-RewardBench
def test_vl_rewardbench_groups_and_unparsed_answers():
    assert [
        vl_rewardbench.group_of(i)
        for i in (
            "RLAIF-V-3",
            "RLHF-V-1",
            "hallucination_pair-9",
            "mathverse_2",
            "mmmu_pro_7",
            "wildvision-battle-1",
            "jailbreak_3",
            "svit",
        )
    ] == ["hallucination", "hallucination", "hallucination", "reasoning", "reasoning", "general", "general", "general"]
    preds = [
        P(group="hallucination", verdict="first", label="first"),
        P(group="hallucination", verdict="tie", label="first"),
        P(group="reasoning", verdict="second", label="first"),
        P(group="general", status="unparsed", label="second"),
        P(group="general", verdict="second", label="second"),
    ]
    m = vl_rewardbench.metrics(preds)
    assert (m["overall_accuracy"].num, m["overall_accuracy"].den) == (2, 3)  # the tie and the unparsed are left out
    assert (m["overall_accuracy_unparsed_as_wrong"].num, m["overall_accuracy_unparsed_as_wrong"].den) == (2, 5)
    assert m["macro_accuracy"].value == pytest.approx((1 + 0 + 1) / 3)
    assert m["macro_accuracy_unparsed_as_wrong"].value == pytest.approx((0.5 + 0 + 0.5) / 3)


# ------------------------------------------------------------------------------------ MMRB2
def test_mmrb2_both_orders_count_and_a_tie_is_wrong():
    preds = [
        P(group="t2i", verdict="first", order_verdicts=["first", "second"], label="A"),  # both orders right
        P(group="t2i", verdict="tie", order_verdicts=["first", "first"], label="A"),  # forward right, reverse wrong
        P(group="t2i", verdict="tie", order_verdicts=["tie", "second"], label="B"),  # tie wrong; reverse B -> A: wrong
        P(group="edit", status="unparsed", label="B"),  # no verdict: left out
    ]
    m = mmrb2.metrics(preds)
    assert (m["t2i_accuracy"].num, m["t2i_accuracy"].den) == (3, 6)
    assert (m["edit_accuracy"].num, m["edit_accuracy"].den) == (0, 0) and m["edit_accuracy"].value is None
    assert m["edit_accuracy_unparsed_as_wrong"].den == 2


# ------------------------------------------------------------------------------------ ImageReward
def test_imagereward_pairwise_accuracy_skips_human_ties_and_fails_model_ties():
    def preds(rewards):
        return [
            P(
                key=f"x:{k}",
                group="prompts",
                mode="point_score",
                status="ok" if r is not None else "unparsed",
                score=r,
                extra=dict(index=0, id="x", ranking=[1, 2, 2, 3], size=4, k=k),
            )
            for k, r in enumerate(rewards)
        ]

    assert imagereward.counts(preds([0.9, 0.5, 0.5, 0.1]))["pairwise_accuracy"] == (5, 5)
    assert imagereward.counts(preds([0.9, 0.5, 0.5, 0.5]))["pairwise_accuracy"] == (3, 5)  # equal rewards: wrong
    assert imagereward.counts(preds([0.9, None, 0.5, 0.1]))["pairwise_accuracy"] == (3, 5)  # unscored: wrong


# ------------------------------------------------------------------------------------ shared
def test_calibration_and_bootstrap():
    cal = calibration([(0.95, True), (0.95, False), (0.55, True), (0.55, True)])
    assert cal["ece"] == pytest.approx(0.5 * abs(0.5 - 0.95) + 0.5 * abs(1.0 - 0.55))
    preds = [
        P(key=str(i), group="hallucination", verdict="first", label="first" if i % 4 else "second") for i in range(40)
    ]
    m = vl_rewardbench.metrics(preds)
    bootstrap(preds, vl_rewardbench.metrics, m, n=200, seed=1)
    lo, hi = m["overall_accuracy"].ci95
    assert lo < m["overall_accuracy"].value == 0.75 < hi and 0.55 < lo and hi < 0.95


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("benchmarks")
    return {name: write(str(root / name), damage=True) for name, write in fixtures.WRITERS.items()}


@pytest.mark.parametrize("name", sorted(fixtures.WRITERS))
def test_bad_entries_become_load_errors_with_their_reason(copies, name):
    options = {"media_root": str(Path(copies[name]) / "videos")}
    units = list(benchmarks.benchmark(name).load(copies[name], options))
    errors = [u for u in units if isinstance(u, LoadError)]
    expected = {
        "genai-bench": "unknown vote_type 'maybevote'",
        "videogen-rewardbench": "unknown label",
        "vl-rewardbench": "is not a ranking of two answers",
        "mmrb2": "malformed pair entry",
        "imagereward": "must be lists of the same length",
    }[name]
    assert errors and any(expected in e.reason for e in errors), [e.reason for e in errors]
    if name == "mmrb2":
        assert {e.group for e in errors if e.reason.startswith("unsupported")} == {"interleaved", "reasoning"}


def test_a_folder_that_is_not_the_benchmark_says_what_it_looked_for(tmp_path):
    for name, expect in (
        ("genai-bench", "no GenAI-Bench files"),
        ("vl-rewardbench", "no data/test-00000"),
        ("mmrb2", "none of t2i.json"),
        ("imagereward", "no test.json"),
        ("videogen-rewardbench", "no videogen-rewardbench.csv"),
    ):
        with pytest.raises(benchmarks.BenchmarkError, match=expect):
            list(benchmarks.benchmark(name).load(str(tmp_path), {}))


@pytest.fixture(scope="module")
def evaluated(ray_local, copies, tiny_judge_dir, tmp_path_factory):
    """Each benchmark's copy judged end to end on Ray with the tiny judge (swap on, by default)."""
    from unireward.config import parse_spec
    from unireward.pipelines.eval import run_eval

    out = {}
    for name, data in copies.items():
        spec = parse_spec(
            dict(
                kind="eval",
                name=f"e-{name}",
                benchmark=name,
                data=data,
                output=str(tmp_path_factory.mktemp("eval") / name),
                judge=dict(model=str(tiny_judge_dir)),
                options=dict(media_root=str(Path(data) / "videos")),
                resamples=50,
                resources=dict(batch_size=8, cpus_per_actor=1, decode_cpus=0.5),
            )
        )
        out[name] = (spec, run_eval(spec))
    return out


METRIC_NAMES = {
    "genai-bench": {
        "image_generation/official_4way_accuracy",
        "image_edition/official_4way_accuracy",
        "video_generation/official_4way_accuracy",
        "image_generation/accuracy_without_ties",
        "leaderboard_average",
    },
    "videogen-rewardbench": {
        f"{d}/accuracy_{t}" for d in ("overall", "vq", "mq", "ta") for t in ("with_ties", "without_ties")
    },
    "vl-rewardbench": {
        "overall_accuracy",
        "macro_accuracy",
        "general_accuracy",
        "hallucination_accuracy",
        "reasoning_accuracy",
    },
    "mmrb2": {"t2i_accuracy", "edit_accuracy"},
    "imagereward": {"pairwise_accuracy"},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(fixtures.WRITERS))
def test_eval_end_to_end_on_ray(evaluated, name):
    spec, report = evaluated[name]
    out = Path(spec.output)
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["benchmark"] == name and METRIC_NAMES[name] <= set(summary["metrics"])
    for m in summary["metrics"].values():
        assert set(m) >= {"value", "num", "den"} and m["den"] >= m["num"] >= 0
    assert (out / "report" / "report.png").stat().st_size > 0
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == summary["units"] and len({p["key"] for p in preds}) == len(preds)
    # the damaged entries are predictions with their reason, counted: never dropped
    assert summary["failures"]["total"] >= 2 and all(p.get("reason") for p in preds if p["status"] != "ok")
    statuses = {p["status"] for p in preds}
    assert "not_loaded" in statuses and ("invalid_input" in statuses or name == "mmrb2")
    if name != "imagereward":
        assert summary["swap_agreement"]["den"] > 0  # pairs were judged in both orders
    # the upstream format, read back, gives the same official numbers
    for path in summary["upstream"]:
        back = benchmarks.evaluate(name, benchmarks.read_predictions(name, path, spec.data), resamples=0)
        for k, m in back["metrics"].items():
            # one file holds one config: the other configs' metrics and the cross-config average are not in it
            if k in summary["metrics"] and not k.startswith(("image_edition", "video_generation", "leaderboard")):
                assert (m["num"], m["den"]) == (summary["metrics"][k]["num"], summary["metrics"][k]["den"]), (path, k)


@pytest.mark.slow
def test_eval_cli_scores_a_predictions_file_and_resumes(evaluated, tmp_path):
    from typer.testing import CliRunner

    from unireward.cli import app
    from unireward.pipelines.eval import run_eval

    spec, report = evaluated["vl-rewardbench"]
    res = CliRunner().invoke(
        app,
        [
            "eval",
            "--benchmark",
            "vl-rewardbench",
            "--data",
            spec.data,
            "--predictions",
            str(Path(spec.output) / "predictions.jsonl"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    scored = json.loads(res.stdout)
    assert scored["benchmark"] == "vl-rewardbench" and scored["missing"]["count"] == 0
    assert scored["metrics"]["overall_accuracy"]["num"] == report["metrics"]["overall_accuracy"]["num"]
    again = run_eval(spec)  # a rerun resumes: nothing is judged twice
    assert again["run"]["already_done"] == report["units"] and again["run"]["processed"] == 0
    assert again["metrics"]["overall_accuracy"] == report["metrics"]["overall_accuracy"]
    res = CliRunner().invoke(app, ["eval", "--benchmark", "nope", "--data", ".", "--predictions", "x"])
    assert res.exit_code == 2 and "unknown benchmark" in res.output
