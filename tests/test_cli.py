"""The `unireward` command, in process through typer's CliRunner: version, models build-tiny, synth,
judge, protocols, bench judge and demo. Outputs are parsed as JSON and checked field by field."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version as dist_version
from pathlib import Path

import pytest
from typer.testing import CliRunner

import unireward
from unireward.cli import app
from unireward.judge.protocols import default_registry
from unireward.judge.records import read_items
from unireward.judge.types import Status

STATUSES = {s.value for s in Status}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, args: list[str]):
    res = runner.invoke(app, [str(a) for a in args])
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res


def parse_json(stdout: str):
    """The JSON document a command printed. Tolerates library chatter on lines before it (see
    test_json_stdout_is_only_json for that problem), but nothing after it."""
    lines = stdout.splitlines(keepends=True)
    starts = [k for k, line in enumerate(lines) if line.startswith("{")]
    assert starts, f"no JSON in output:\n{stdout}"
    text = "".join(lines[starts[0] :])
    obj, end = json.JSONDecoder().raw_decode(text)
    assert text[end:].strip() == "", f"trailing output after the JSON: {text[end:]!r}"
    return obj


# ------------------------------------------------------------------------------------ version
def test_version(runner):
    res = invoke(runner, ["version"])
    assert res.exit_code == 0
    assert res.stdout.strip() == unireward.__version__
    assert res.stdout.strip() == dist_version("unireward")


def test_no_args_shows_help(runner):
    res = runner.invoke(app, [])
    assert res.exit_code in (0, 2)  # click >= 8.2 exits 2 for no_args_is_help
    assert "judge" in res.output and "protocols" in res.output


# ------------------------------------------------------------------------------------ models build-tiny
def test_build_tiny_judge(runner, tmp_path):
    out = tmp_path / "judge"
    res = invoke(runner, ["models", "build-tiny", "--kind", "judge", "--out", out, "--size", "nano"])
    assert res.exit_code == 0, res.output
    info = parse_json(res.stdout)
    assert Path(info["path"]) == out
    assert info["kind"] == "judge"
    assert info["arch"] == "qwen2_5_vl"
    assert info["size"] == "nano"
    assert isinstance(info["parameters"], int) and info["parameters"] > 0

    from unireward.judge.model import RewardModel

    rm = RewardModel(out, device="cpu")
    assert sum(p.numel() for p in rm.model.parameters()) == info["parameters"]
    assert rm.model.config.model_type == "qwen2_5_vl"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--size", "huge"], "unknown size 'huge'"),
        (["--arch", "llama9"], "unknown judge architecture 'llama9'"),
    ],
)
def test_build_tiny_judge_bad_option(runner, tmp_path, args, message):
    out = tmp_path / "judge"
    res = invoke(runner, ["models", "build-tiny", "--kind", "judge", "--out", out, *args])
    assert res.exit_code == 2
    assert f"error: {message}" in res.stderr
    assert not out.exists()


def test_build_tiny_unknown_kind_is_a_usage_error(runner, tmp_path):
    res = invoke(runner, ["models", "build-tiny", "--kind", "t2a", "--out", tmp_path / "x"])
    assert res.exit_code == 2
    assert "t2a" in res.output


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["t2i", "t2v"])
def test_build_tiny_diffusers(runner, tmp_path, kind):
    out = tmp_path / kind
    res = invoke(runner, ["models", "build-tiny", "--kind", kind, "--out", out, "--seed", "3"])
    assert res.exit_code == 0, res.output
    info = parse_json(res.stdout)
    assert Path(info["path"]) == out
    assert info["kind"] == kind and info["seed"] == 3
    assert info["unet_parameters"] > 0

    from diffusers import StableDiffusionPipeline, TextToVideoSDPipeline, UNet2DConditionModel, UNet3DConditionModel

    pipe_cls, unet_cls = (
        (StableDiffusionPipeline, UNet2DConditionModel)
        if kind == "t2i"
        else (TextToVideoSDPipeline, UNet3DConditionModel)
    )
    pipe = pipe_cls.from_pretrained(out)
    assert isinstance(pipe.unet, unet_cls)
    assert sum(p.numel() for p in pipe.unet.parameters()) == info["unet_parameters"]


@pytest.mark.slow
def test_json_stdout_is_only_json(tmp_path):
    """A real process: `unireward models build-tiny` promises JSON on stdout (for scripts and jq)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "unireward.cli",
            "models",
            "build-tiny",
            "--kind",
            "judge",
            "--out",
            str(tmp_path / "j"),
            "--size",
            "nano",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["kind"] == "judge"


# ------------------------------------------------------------------------------------ synth
def test_synth_one_task(runner, tmp_path):
    out = tmp_path / "world"
    res = invoke(runner, ["synth", "--out", out, "--n", "1", "--candidates", "2", "--task", "image_generation"])
    assert res.exit_code == 0, res.output
    s = parse_json(res.stdout)
    assert s["root"] == str(out)
    assert list(s["pools"]) == ["image_generation"]
    assert list(s["items"]) == ["image_generation"]
    assert s["corrupted"] == 0
    assert Path(s["pools"]["image_generation"]).is_file()
    assert Path(s["items"]["image_generation"]).is_file()
    assert sorted(p.name for p in out.glob("*.parquet")) == [
        "image_generation.items.parquet",
        "image_generation.pool.parquet",
    ]
    assert not (out / "media" / "image_understanding").exists()

    items, rows = read_items(s["items"]["image_generation"])
    # one prompt, two candidates: one pair (adjacent) and two points
    assert sorted(it.resolved_mode().value for it in items) == ["pair_rank", "point_score", "point_score"]
    for it in items:
        assert it.problem() is None
        for c in it.candidates:
            assert Path(c).is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--candidates", "1"], "n_candidates >= 2"),
        (["--n", "0"], "n >= 1"),
        (["--task", "audio_generation"], "unknown task"),
    ],
)
def test_synth_bad_args(runner, tmp_path, args, message):
    res = invoke(runner, ["synth", "--out", tmp_path / "w", "--n", "1", *args])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ")
    assert message in res.stderr
    assert res.stdout == ""


# ------------------------------------------------------------------------------------ judge
@pytest.fixture(scope="module")
def media(world):
    """Media paths and texts from the session's synthetic world."""
    gen, _ = read_items(world.items["image_generation"])
    und, _ = read_items(world.items["image_understanding"])
    pair = next(it for it in gen if it.resolved_mode().value == "pair_rank")
    upair = next(it for it in und if it.resolved_mode().value == "pair_rank")
    return dict(
        caption=pair.prompt,
        a=pair.candidates[0],
        b=pair.candidates[1],
        question=upair.prompt,
        answers=list(upair.candidates),
        context=upair.context,
    )


def judge_args(model, task="image_generation", prompt="one red circle on the left", **opts) -> list[str]:
    args = ["judge", "--model", str(model), "--task", task, "--prompt", prompt]
    for k, v in opts.items():
        flag = "--" + k.replace("_", "-")
        args += [flag] if v is True else [flag, str(v)]
    return args


def test_judge_pair(runner, tiny_judge_dir, media):
    res = invoke(runner, judge_args(tiny_judge_dir, prompt=media["caption"], a=media["a"], b=media["b"]))
    assert res.exit_code == 0, res.output
    j = parse_json(res.stdout)
    assert j["status"] == "ok"
    assert (j["task"], j["mode"], j["method"]) == ("image_generation", "pair_rank", "logits")
    assert set(j["probs"]) == {"first", "second", "tie"}
    assert sum(j["probs"].values()) == pytest.approx(1.0, abs=1e-6)
    assert j["verdict"] == max(j["probs"], key=j["probs"].get)
    assert 0 < j["mass"] <= 1
    assert j["provenance"]["protocol"] == "qwen/image_generation/pair_rank"
    assert j["provenance"]["model"] == str(tiny_judge_dir)
    assert "orders" not in j and "agreement" not in j


def test_judge_pair_swap(runner, tiny_judge_dir, media):
    res = invoke(runner, judge_args(tiny_judge_dir, prompt=media["caption"], a=media["a"], b=media["b"], swap=True))
    assert res.exit_code == 0, res.output
    j = parse_json(res.stdout)
    assert j["status"] == "ok"
    assert isinstance(j["agreement"], bool)
    assert len(j["orders"]) == 2
    assert all(o["status"] == "ok" and o["mode"] == "pair_rank" for o in j["orders"])
    assert sum(j["probs"].values()) == pytest.approx(1.0, abs=1e-6)
    assert j["provenance"]["swap"] is True
    # the combined probabilities average (A,B) with (B,A) mapped back
    ab, ba = j["orders"][0]["probs"], j["orders"][1]["probs"]
    assert j["probs"]["first"] == pytest.approx((ab["first"] + ba["second"]) / 2)
    assert j["probs"]["tie"] == pytest.approx((ab["tie"] + ba["tie"]) / 2)


def test_judge_pair_generate(runner, tiny_judge_dir, media):
    res = invoke(
        runner,
        judge_args(
            tiny_judge_dir, prompt=media["caption"], a=media["a"], b=media["b"], method="generate", max_new_tokens=5
        ),
    )
    assert res.exit_code == 0, res.output  # ok or unparsed: judged either way
    j = parse_json(res.stdout)
    assert j["method"] == "generate"
    assert j["status"] in ("ok", "unparsed")
    assert isinstance(j["raw_text"], str)
    assert j["provenance"]["decoding"]["max_new_tokens"] == 5
    if j["status"] == "unparsed":
        assert j["reason"]
    else:
        assert j["verdict"] in ("first", "second", "tie")


def test_judge_point(runner, tiny_judge_dir, media):
    res = invoke(runner, judge_args(tiny_judge_dir, prompt=media["caption"], candidate=media["a"]))
    assert res.exit_code == 0, res.output
    j = parse_json(res.stdout)
    assert j["status"] == "ok"
    assert j["mode"] == "point_score"
    assert 1 <= j["score"] <= 5  # qwen image_generation: 1-5
    assert j["score_norm"] == pytest.approx((j["score"] - 1) / 4)
    assert set(j["distribution"]) == {"1", "2", "3", "4", "5"}
    assert sum(j["distribution"].values()) == pytest.approx(1.0, abs=1e-6)
    assert "verdict" not in j


def test_judge_point_multi(runner, tiny_judge_dir, media):
    res = invoke(runner, judge_args(tiny_judge_dir, prompt=media["caption"], candidate=media["a"], multi=True))
    assert res.exit_code == 0, res.output
    j = parse_json(res.stdout)
    assert j["status"] == "ok"
    assert j["mode"] == "point_multi"
    scales = default_registry().get("qwen", "image_generation", "point_multi").scales
    assert set(j["dims"]) == {s.name for s in scales}
    assert all(1 <= v <= 5 for v in j["dims"].values())
    assert j["score"] == pytest.approx(sum(j["dims"].values()) / len(j["dims"]))


def test_judge_understanding_pair(runner, tiny_judge_dir, media):
    a, b = media["answers"]
    res = invoke(
        runner,
        judge_args(
            tiny_judge_dir, task="image_understanding", prompt=media["question"], a=a, b=b, context=media["context"]
        ),
    )
    assert res.exit_code == 0, res.output
    j = parse_json(res.stdout)
    assert j["status"] == "ok"
    assert (j["task"], j["mode"]) == ("image_understanding", "pair_rank")
    verdicts = default_registry().get("qwen", "image_understanding", "pair_rank").verdicts
    assert set(j["probs"]) == set(verdicts)
    assert sum(j["probs"].values()) == pytest.approx(1.0, abs=1e-6)


def test_judge_llava_family(runner, tiny_judge_dir, media):
    res = invoke(
        runner, judge_args(tiny_judge_dir, prompt=media["caption"], a=media["a"], b=media["b"], family="llava")
    )
    assert res.exit_code == 0, res.output
    j = parse_json(res.stdout)
    assert j["status"] == "ok"
    assert j["provenance"]["protocol"] == "llava/image_generation/pair_rank"


def test_judge_missing_image_is_invalid_input(runner, tiny_judge_dir, media, tmp_path):
    missing = tmp_path / "no_such_image.png"
    res = invoke(runner, judge_args(tiny_judge_dir, prompt=media["caption"], a=missing, b=media["b"]))
    assert res.exit_code == 2
    j = parse_json(res.stdout)
    assert j["status"] == "invalid_input"
    assert "no_such_image.png" in j["reason"]
    assert "probs" not in j and "verdict" not in j


def test_judge_unknown_task_is_invalid_input(runner, tiny_judge_dir, media):
    res = invoke(runner, judge_args(tiny_judge_dir, task="audio_generation", candidate=media["a"]))
    assert res.exit_code == 2
    j = parse_json(res.stdout)
    assert j["status"] == "invalid_input"
    assert "unknown task" in j["reason"]


def test_judge_understanding_without_context_is_invalid_input(runner, tiny_judge_dir):
    res = invoke(
        runner,
        judge_args(tiny_judge_dir, task="image_understanding", prompt="What colour?", a="It is red.", b="It is blue."),
    )
    assert res.exit_code == 2
    j = parse_json(res.stdout)
    assert j["status"] == "invalid_input"
    assert "context" in j["reason"]


@pytest.mark.parametrize("which", ["a", "b"])
def test_judge_half_a_pair_is_an_error(runner, tiny_judge_dir, media, which):
    res = invoke(runner, judge_args(tiny_judge_dir, **{which: media["a"]}))
    assert res.exit_code == 2
    assert "error: a pair needs both --a and --b" in res.stderr
    assert res.stdout == ""


def test_judge_pair_and_point_together_is_an_error(runner, tiny_judge_dir, media):
    res = invoke(runner, judge_args(tiny_judge_dir, a=media["a"], b=media["b"], candidate=media["a"]))
    assert res.exit_code == 2
    assert "error: give either --a and --b (pair) or --candidate (point)" in res.stderr
    assert res.stdout == ""


def test_judge_nothing_to_judge_is_an_error(runner, tiny_judge_dir):
    res = invoke(runner, judge_args(tiny_judge_dir))
    assert res.exit_code == 2
    assert "error: give either" in res.stderr


def test_judge_nonexistent_model(runner, tmp_path, media):
    missing = tmp_path / "no_such_judge"
    res = invoke(runner, judge_args(missing, candidate=media["a"]))
    assert res.exit_code == 2
    assert "cannot load judge" in res.stderr
    assert str(missing) in res.stderr
    assert res.stdout == ""


# ------------------------------------------------------------------------------------ protocols
def _ids(stdout: str) -> list[str]:
    return [line.split()[0] for line in stdout.splitlines() if line.strip()]


def test_protocols_lists_ids(runner):
    res = invoke(runner, ["protocols"])
    assert res.exit_code == 0
    ids = _ids(res.stdout)
    assert "qwen/image_generation/pair_rank" in ids
    assert "llava/video_understanding/pair_rank" in ids
    assert ids == [p.id for p in default_registry()]
    line = next(x for x in res.stdout.splitlines() if x.startswith("qwen/image_generation/pair_rank"))
    assert default_registry().get("qwen", "image_generation", "pair_rank").digest in line
    assert "Image 1 is better" in line


def test_protocols_family_filter(runner):
    res = invoke(runner, ["protocols", "--family", "llava"])
    assert res.exit_code == 0
    ids = _ids(res.stdout)
    assert ids and all(i.startswith("llava/") for i in ids)
    assert len(ids) == sum(p.family == "llava" for p in default_registry())


def test_protocols_show(runner):
    res = invoke(runner, ["protocols", "--show", "qwen/video_understanding/pair_rank"])
    assert res.exit_code == 0
    p = parse_json(res.stdout)
    proto = default_registry().get("qwen", "video_understanding", "pair_rank")
    assert p["id"] == "qwen/video_understanding/pair_rank"
    assert p["answer_prefix"] == "Overall Judgment: "
    assert p["digest"] == proto.digest
    assert p["template"] == proto.template
    assert p["answers"] == dict(proto.verdicts)


def test_protocols_show_point_protocol_lists_scales(runner):
    res = invoke(runner, ["protocols", "--show", "qwen/video_generation/point_score"])
    assert res.exit_code == 0
    p = parse_json(res.stdout)
    assert p["answers"] == ["Final Score: 1-10"]
    assert p["answer_prefix"] == ""


def test_protocols_overrides(runner, tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text(
        "families:\n"
        "  qwen:\n"
        "    image_generation:\n"
        "      pair_rank:\n"
        "        template: 'Which image fits [{prompt}] better?'\n"
        "        verdicts: {first: 'Image 1 is better', second: 'Image 2 is better', tie: 'Both images are equally good'}\n"
    )
    res = invoke(runner, ["protocols", "--overrides", f, "--show", "qwen/image_generation/pair_rank"])
    assert res.exit_code == 0, res.output
    p = parse_json(res.stdout)
    assert p["template"] == "Which image fits [{prompt}] better?"
    assert p["digest"] != default_registry().get("qwen", "image_generation", "pair_rank").digest


def test_protocols_broken_overrides(runner, tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("families: [unclosed\n  qwen: {\n")
    res = invoke(runner, ["protocols", "--overrides", f])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ")
    assert "not valid YAML" in res.stderr and str(f) in res.stderr
    assert res.stdout == ""


def test_protocols_overrides_missing_file(runner, tmp_path):
    res = invoke(runner, ["protocols", "--overrides", tmp_path / "nope.yaml"])
    assert res.exit_code == 2
    assert "not found" in res.stderr


# ------------------------------------------------------------------------------------ bench
@pytest.mark.slow
def test_bench_eval_json(runner):
    res = invoke(runner, ["bench", "eval", "--json", "--small", "8", "--large", "24", "--batch-size", "4"])
    assert res.exit_code == 0, res.output
    r = parse_json(res.stdout)
    assert r["loop_pairs_per_s"] > 0 and r["ray_1_actor_pairs_per_s"] > 0
    assert r["ray_1_actor_vs_loop"] == pytest.approx(r["ray_1_actor_pairs_per_s"] / r["loop_pairs_per_s"])
    assert {k: v["units"] for k, v in r["runs"].items()} == {"8": 8, "24": 24}  # every pair judged, once
    mem = r["driver_peak_rss_mb"]
    assert set(mem) == {"8", "24"} and all(v > 0 for v in mem.values())
    assert r["driver_memory_ratio"] == pytest.approx(mem["24"] / mem["8"])
    assert r["setup"]["batch_size"] == 4


@pytest.mark.slow
def test_bench_judge_json(runner):
    res = invoke(
        runner, ["bench", "judge", "--json", "--size", "nano", "--pairs", "2", "--repeats", "1", "--batch-size", "2"]
    )
    assert res.exit_code == 0, res.output
    r = parse_json(res.stdout)
    methods = {"one_at_a_time_short", "one_at_a_time_reasoning", "batched_generate", "logits"}
    assert set(r["pairs_per_s"]) == methods
    assert set(r["speedup_vs_one_at_a_time"]) == methods
    assert all(isinstance(v, float) and v > 0 for v in r["pairs_per_s"].values())
    s = r["speedup_logits_vs_one_at_a_time"]
    assert isinstance(s, float) and s > 0
    assert s == pytest.approx(r["pairs_per_s"]["logits"] / r["pairs_per_s"]["one_at_a_time_short"])
    assert s == pytest.approx(r["speedup_vs_one_at_a_time"]["logits"])
    assert r["speedup_vs_one_at_a_time"]["one_at_a_time_short"] == pytest.approx(1.0)
    setup = r["setup"]
    assert setup["parameters"] > 0
    assert (setup["n_pairs"], setup["batch_size"], setup["repeats"]) == (2, 2, 1)
    assert "nano" in setup["model"]
    # with --json the progress log goes to stderr, never into the JSON
    assert "timing logits" in res.stderr
    assert "timing" not in res.stdout


# ------------------------------------------------------------------------------------ demo
@pytest.mark.slow
def test_demo(runner, tmp_path):
    # n=2, not 1: with one prompt the understanding tasks have a single media file (the context),
    # so only 1 of the 2 files per task could be damaged there.
    work = tmp_path / "demo"
    res = invoke(runner, ["demo", "--workdir", work, "--n", "2"])
    assert res.exit_code == 0, res.output

    summary = json.loads((work / "summary.json").read_text())
    tasks = ["image_generation", "image_understanding", "video_generation", "video_understanding"]
    assert sorted(summary["results"]) == sorted(tasks)
    assert len(summary["corrupted"]) == 8
    assert {c["task"] for c in summary["corrupted"]} == set(tasks)
    assert all(sum(c["task"] == t for c in summary["corrupted"]) == 2 for t in tasks)

    rows = [json.loads(line) for line in (work / "judgments.jsonl").read_text().splitlines()]
    assert rows
    for row in rows:
        assert row["status"] in STATUSES
        if row["status"] == "invalid_input":
            assert row["reason"]

    world = Path(summary["world"])
    invalid_total = 0
    for task in tasks:
        items, item_rows = read_items(str(world / f"{task}.items.parquet"))
        n_items = len(items) + (sum(r["mode"] == "point_score" for r in item_rows) if "generation" in task else 0)
        assert set(summary["results"][task]) == {"logits", "generate"}
        for method in ("logits", "generate"):
            r = summary["results"][task][method]
            counts = r["status"]
            assert set(counts) == STATUSES
            assert sum(counts.values()) == n_items
            mine = [row for row in rows if row["task"] == task and row["method"] == method]
            assert len(mine) == n_items
            assert counts == {s: sum(row["status"] == s for row in mine) for s in STATUSES}
            assert r["pairs"]["n"] == sum(x["mode"] == "pair_rank" and x["label"] is not None for x in mine)
            invalid_total += counts["invalid_input"]
        # damaged files in every task became invalid_input judgments
        assert summary["results"][task]["logits"]["status"]["invalid_input"] > 0
    assert invalid_total > 0
    assert len(rows) == sum(sum(r["status"].values()) for bm in summary["results"].values() for r in bm.values())

    # the paper's selection beside its alternatives, on the same pools, each with its n and interval
    sel = dict(summary["curation"]["selectors"])
    swap = sel.pop("swap")
    assert swap["pairs"] > 0 and 0 <= swap["agreement"] <= 1 and swap["confident"] <= swap["pairs"]
    assert list(sel) == ["pair ranking + point sifting", "Bradley-Terry", "pointwise argmax", "random pair"]
    for name, r in sel.items():
        assert r["kept"] >= 0 and (r["precision"] is None or 0 <= r["precision"] <= 1)
        if r["kept"] and name != "random pair":
            lo, hi = r["ci95"]
            assert lo <= r["precision"] <= hi and r["truly_better"] == round(r["precision"] * r["kept"])
    assert sel["random pair"]["expected"] and sel["random pair"]["kept"] > 0

    # the DPO step: the policy's accuracy on held-out questions before and after each run
    align = summary["alignment"]
    runs = align["runs"]
    assert align["pairs"]["ground_truth"] > 0 and "before DPO" in runs and "DPO on ground-truth pairs" in runs
    assert ("DPO on judge-curated pairs" in runs) == (align["pairs"]["judge_curated"] >= 4)
    for run in runs.values():
        for t in ("image_understanding", "video_understanding"):
            acc = run["accuracy"][t]
            assert acc["questions"] == 24 and 0 <= acc["accuracy"] <= 1 and acc["chance"] == 0.25
    assert Path(runs["DPO on ground-truth pairs"]["final"], "config.json").exists()

    png = (work / "agreement.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    from PIL import Image

    with Image.open(work / "agreement.png") as im:
        im.verify()
    assert "summary.json" in res.stdout


def test_protocols_show_unknown_id_fails(runner):
    res = invoke(runner, ["protocols", "--show", "qwen/image_generation/nope"])
    assert res.exit_code == 2
    assert "no protocol" in res.output
