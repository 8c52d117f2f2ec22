"""Curation and batch scoring on a real local Ray (Ray Data actor pools), end to end: outputs,
error records, exports, exactly-once resume after a killed driver, a killed judge actor, S3."""

import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from unireward.config import parse_spec
from unireward.io import schema, staging
from unireward.pipelines.batch import JobFailed, run_spec
from unireward.synth.world import generate_world

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cworld(tmp_path_factory):
    """A small world with one damaged file per task."""
    return generate_world(str(tmp_path_factory.mktemp("cworld")), n=4, seed=11, n_candidates=4, corrupt=1)


def curate_spec(judge_dir, world, task, output, **extra):
    base = dict(
        kind="curate",
        name=f"t-{task}",
        input=world.pools[task],
        output=str(output),
        judge=dict(model=str(judge_dir)),
        resources=dict(batch_size=1),
        max_error_fraction=0.5,
    )
    for k, v in extra.items():
        base[k] = dict(base.get(k, {}), **v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return parse_spec(base)


def read_dir(path):
    files = sorted(glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def test_curate_all_tasks(ray_local, tiny_judge_dir, cworld, tmp_path):
    from datasets import load_dataset

    for task in cworld.pools:
        out = tmp_path / task
        s = run_spec(curate_spec(tiny_judge_dir, cworld, task, out, judge=dict(swap=True)))
        assert s["prompts"] == 4 and s["run"]["processed"] == 4
        prompts = read_dir(out / "prompts")
        assert sorted(p["prompt_id"] for p in prompts) == sorted(
            p["prompt_id"] for p in pq.read_table(cworld.pools[task]).to_pylist()
        )
        assert {p["status"] for p in prompts} <= {"kept", "dropped", "excluded", "failed"}
        # the damaged file is an error record with its reason; nothing else is lost
        damaged = [c for c in cworld.corrupted if c["task"] == task]
        errors = read_dir(out / "errors")
        assert errors and any(e["stage"] == "decode" for e in errors)
        assert all(e["reason"] for e in errors)
        assert len(damaged) == 1
        # typed outputs
        assert pq.read_schema(next((out / "errors").glob("*.parquet"))).equals(schema.ERROR_SCHEMA)
        prefs = read_dir(out / "preferences")
        for p in prefs:
            assert p["task"] == task and p["margin"] > 0 and p["chosen_id"] != p["rejected_id"]
            assert json.loads(p["provenance"])["model"] == str(tiny_judge_dir)
        assert s["tasks"][task]["status"].get("kept", 0) == len(prefs)
        assert (out / "report" / "summary.json").exists()
        assert (out / "report" / "curation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        pb = s["tasks"][task]["position_bias"]
        assert pb["decisive_verdicts"] >= pb["first_shown_wins"] >= 0
        # exports load with `datasets` without glue
        for name, info in s["exports"].items():
            for f in info["files"].values():
                ds = load_dataset("parquet", data_files=f["path"], split="train")
                assert len(ds) == f["rows"] == len(prefs) - len(info["skipped"])
                if name == "trl":
                    assert set(ds.column_names) >= {"images", "prompt", "chosen", "rejected"}
                if name == "diffusion_dpo":
                    assert ds.column_names == ["caption", "jpg_0", "jpg_1", "label_0"]
                if name == "videodpo":
                    assert (Path(f["path"]).parent / "dpo_data.json").exists()


def test_score_items(ray_local, tiny_judge_dir, cworld, tmp_path):
    items = [r for t in cworld.items for r in pq.read_table(cworld.items[t]).to_pylist()]
    src = tmp_path / "items.parquet"
    # media references stay relative to the world folder: write the table there
    src = Path(cworld.root) / "all.items.parquet"
    schema.write_parquet(
        items
        + [
            dict(
                item_id="malformed",
                task="image_generation",
                mode="pair_rank",
                prompt=None,
                context=None,
                candidates=None,
                label=None,
                gt_scores=None,
            )
        ],
        schema.ITEM_SCHEMA,
        str(src),
    )
    spec = parse_spec(
        dict(
            kind="score",
            name="score",
            input=str(src),
            output=str(tmp_path / "out"),
            judge=dict(model=str(tiny_judge_dir), swap=True),
            resources=dict(batch_size=8),
            max_error_fraction=0.5,
        )
    )
    s = run_spec(spec)
    rows = read_dir(tmp_path / "out" / "judgments")
    assert len(rows) == len(items) + 1 and len({r["item_id"] for r in rows}) == len(rows)
    bad = next(r for r in rows if r["item_id"] == "malformed")
    assert bad["status"] == "invalid_input" and bad["reason"]
    pairs = [r for r in rows if r["mode"] == "pair_rank" and r["status"] == "ok"]
    assert pairs and all(abs(r["p_first"] + r["p_second"] + (r["p_tie"] or 0) - 1) < 1e-6 for r in pairs)
    assert all(r["agreement"] is not None for r in pairs)
    points = [r for r in rows if r["mode"] == "point_score" and r["status"] == "ok"]
    assert points and all(0 <= r["score_norm"] <= 1 for r in points)
    assert s["errors"]["failed_inputs"] == sum(r["status"] in ("invalid_input", "error") for r in rows)
    # items touching a damaged file fail with the decoder's own reason
    damaged = {c["file"] for c in cworld.corrupted}
    by_id = {r["item_id"]: r for r in rows}
    hit = [
        by_id[it["item_id"]]
        for it in items
        if any(str(c).endswith(tuple(damaged)) for c in (it["candidates"] or []) + [it["context"] or ""])
    ]
    assert hit and all(r["status"] == "invalid_input" for r in hit)
    assert all(r["reason"].split(":")[0] in ("not_found", "empty", "decode_failed") for r in hit), [
        r["reason"] for r in hit
    ]


def _cli(args, **kw):
    return subprocess.run([sys.executable, "-m", "unireward.cli", *args], capture_output=True, text=True, **kw)


def _kill_session(sid: int) -> None:
    """SIGKILL every process of a session (Ray workers run in process groups of their own)."""
    for line in subprocess.run(["ps", "-eo", "pid,sid"], capture_output=True, text=True).stdout.splitlines()[1:]:
        pid, s = (int(x) for x in line.split())
        if s == sid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_resume_after_the_driver_is_killed(ray_local, tiny_judge_dir, tmp_path):
    world = generate_world(str(tmp_path / "w"), n=24, seed=4, n_candidates=4, tasks=("image_generation",))
    n = 24
    spec = dict(
        kind="curate",
        name="resume",
        input=world.pools["image_generation"],
        output=str(tmp_path / "killed"),
        judge=dict(model=str(tiny_judge_dir), swap=True),
        resources=dict(batch_size=1),
        max_error_fraction=0.5,
    )
    path = tmp_path / "spec.yaml"
    import yaml

    path.write_text(yaml.safe_dump(spec))
    proc = subprocess.Popen(
        [sys.executable, "-m", "unireward.cli", "run", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and not glob.glob(str(tmp_path / "killed" / "_staging" / "*.parquet")):
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        time.sleep(0.2)
    _kill_session(proc.pid)  # the driver, its local Ray and every Ray worker die mid-run (a machine crash)
    proc.wait()
    partial = staging.done_units(str(tmp_path / "killed"), "prompt_id")
    assert 1 <= len(partial) < n, "the run should have been killed midway"
    assert not (tmp_path / "killed" / "prompts").exists()

    res = _cli(["run", str(path)], timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    s = json.loads(Path(tmp_path / "killed" / "report" / "summary.json").read_text())
    assert s["run"]["already_done"] == len(partial) and s["run"]["processed"] == n - len(partial)

    ref = run_spec(parse_spec(dict(spec, output=str(tmp_path / "whole"))))
    assert ref["run"]["already_done"] == 0
    for sub in ("prompts", "preferences", "errors"):
        a, b = read_dir(tmp_path / "killed" / sub), read_dir(tmp_path / "whole" / sub)
        assert len(a) == len(b)
        for x, y in zip(a, b):
            for k in x:
                if isinstance(x[k], float):
                    assert x[k] == pytest.approx(y[k], rel=1e-6, abs=1e-9), (sub, k)
                elif k != "provenance":
                    assert x[k] == y[k], (sub, k)


def test_a_killed_judge_actor_loses_and_duplicates_nothing(ray_local, tiny_judge_dir, cworld, tmp_path):
    out = tmp_path / "out"
    spec = curate_spec(tiny_judge_dir, cworld, "image_understanding", out)
    res, killed = {}, []
    t = threading.Thread(target=lambda: res.update(s=run_spec(spec)))
    t.start()
    while t.is_alive() and not killed:
        if glob.glob(str(out / "_staging" / "*.parquet")):
            for line in subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines():
                if "ray::" in line and "CurateStage" in line:
                    os.kill(int(line.split()[0]), signal.SIGKILL)
                    killed.append(line)
                    break
        time.sleep(0.1)
    t.join()
    assert killed, "the judge actor was not found"
    s = res["s"]
    assert s["run"]["processed"] == 4
    prompts = read_dir(out / "prompts")
    ids = [p["prompt_id"] for p in prompts]
    assert len(ids) == len(set(ids)) == 4


def test_error_fraction_and_spec_mismatch(ray_local, tiny_judge_dir, cworld, tmp_path):
    out = tmp_path / "out"
    # 1 of 4 understanding prompts has a damaged context: 25% > 10%
    with pytest.raises(JobFailed, match="above max_error_fraction"):
        run_spec(curate_spec(tiny_judge_dir, cworld, "image_understanding", out, max_error_fraction=0.1))
    assert read_dir(out / "errors")  # the results are still written
    with pytest.raises(staging.SpecMismatch, match="select"):
        run_spec(
            curate_spec(
                tiny_judge_dir, cworld, "image_understanding", out, max_error_fraction=0.1, select=dict(margin=0.2)
            )
        )


def test_cli_exit_codes(tiny_judge_dir, cworld, tmp_path):
    import yaml

    spec = dict(
        kind="curate",
        name="fail",
        input=cworld.pools["video_understanding"],
        output=str(tmp_path / "o"),
        judge=dict(model=str(tiny_judge_dir)),
        max_error_fraction=0.0,
    )
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    res = _cli(["run", str(path)], timeout=300)
    assert res.returncode == 1 and "max_error_fraction" in res.stderr
    res = _cli(["run", str(path), "--set", "select.margin=0.3"], timeout=300)
    assert res.returncode == 2 and "different spec" in res.stderr
    res = _cli(["run", str(path), "--set", "resources.max_actors=0"], timeout=60)
    assert res.returncode == 2 and "resources.max_actors" in res.stderr
    path.write_text(yaml.safe_dump(dict(spec, kind="nope")))
    res = _cli(["run", str(path)], timeout=60)
    assert res.returncode == 2 and "kind" in res.stderr


def test_curate_on_s3(ray_local, tiny_judge_dir, s3_env):
    world = generate_world(s3_env + "world", n=2, seed=5, n_candidates=4, tasks=("image_generation",))
    spec = parse_spec(
        dict(
            kind="curate",
            name="s3",
            input=world.pools["image_generation"],
            output=s3_env + "out",
            judge=dict(model=str(tiny_judge_dir)),
            resources=dict(batch_size=2),
        )
    )
    s = run_spec(spec)
    assert s["prompts"] == 2 and s["failed_prompts"] == 0
    assert staging.done_units(s3_env + "out", "prompt_id") == {"ig-00000", "ig-00001"}
    assert schema.read_parquet(s3_env + "out/prompts/part-00000.parquet")


def test_a_job_that_cannot_fit_says_so(ray_local, tiny_judge_dir, cworld, tmp_path):
    spec = curate_spec(
        tiny_judge_dir,
        cworld,
        "image_generation",
        tmp_path / "o",
        resources=dict(min_actors=2, max_actors=2, cpus_per_actor=1.0),
    )
    with pytest.raises(JobFailed, match="cannot start: it needs 3 CPUs"):  # 2 actors + 1 for reading
        run_spec(spec)


def test_generate_candidates(ray_local, tmp_path):
    from unireward.models.tiny import build_tiny_judge, build_tiny_t2i

    t2i = build_tiny_t2i(tmp_path / "t2i")
    vlm = build_tiny_judge(tmp_path / "vlm", size="nano")
    world = generate_world(str(tmp_path / "w"), n=2, seed=2, tasks=("image_understanding",))
    prompts = [
        dict(prompt_id=f"g{k}", task="image_generation", prompt=p, context=None, candidates=[], meta=None)
        for k, p in enumerate(["a red circle on the left", "two blue squares"])
    ]
    schema.write_parquet(prompts, schema.POOL_SCHEMA, str(tmp_path / "prompts.parquet"))

    def run(out, model, inp):
        return run_spec(
            parse_spec(
                dict(
                    kind="curate",
                    name="gen",
                    input=str(inp),
                    output=str(tmp_path / out),
                    judge=dict(model=str(vlm)),
                    generate=dict(
                        model=str(model),
                        n=3,
                        steps=2,
                        height=32,
                        width=32,
                        max_new_tokens=8,
                        resources=dict(cpus_per_actor=0.5, batch_size=1),
                    ),
                    resources=dict(cpus_per_actor=0.5, decode_cpus=0.5),
                    max_error_fraction=1.0,
                )
            )
        )

    s1 = run("g1", t2i, tmp_path / "prompts.parquet")
    files = sorted((tmp_path / "g1" / "candidates" / "image_generation").rglob("*.png"))
    assert len(files) == 6 and s1["prompts"] == 2
    run("g2", t2i, tmp_path / "prompts.parquet")  # same seeds, same images
    files2 = sorted((tmp_path / "g2" / "candidates" / "image_generation").rglob("*.png"))
    assert [f.read_bytes() for f in files] == [f.read_bytes() for f in files2]
    prov = [json.loads(p["provenance"]) for p in read_dir(tmp_path / "g1" / "preferences")]
    assert all(p["seeds"]["chosen"] is not None for p in prov)
    s3 = run("g3", vlm, world.pools["image_understanding"])  # answers sampled by a VLM
    assert s3["prompts"] == 2 and s3["failed_prompts"] == 0


@pytest.mark.parametrize(
    "meta, reason",
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"generate_error": "OOM"}', "OOM"),
        ("{}", None),
        (None, None),
    ],
)
def test_a_pool_rows_meta_is_read_or_its_row_fails_with_the_reason(meta, reason):
    from unireward.curate.select import pool_row_from_record as pool_row

    row = pool_row(
        dict(
            prompt_id="p",
            task="image_understanding",
            prompt="q",
            context=None,
            meta=meta,
            candidates=[dict(id="a", text="x"), dict(id="b", text="y")],
        )
    )
    assert (row.error is None) if reason is None else (reason in row.error)
