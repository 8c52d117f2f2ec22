"""``kind: dpo``: Diffusion-DPO of the tiny diffusers pipelines on Ray Train + DeepSpeed (2 CPU
workers), from the curation exporters' formats: the held-out implicit reward accuracy starts at 0
(policy = reference) and rises, the aligned pipeline is exported as a diffusers folder that loads and
generates, bad rows become error records."""

import json
from pathlib import Path

import pytest
import torch

from unireward.config import ConfigError, parse_spec
from unireward.curate.export import export_diffusion_dpo, export_videodpo
from unireward.io.media import MediaLimits
from unireward.judge.records import read_items
from unireward.models.tiny import build_tiny_t2i, build_tiny_t2v
from unireward.synth.world import generate_world
from unireward.train.diffusion import read_pairs, split_pairs
from unireward.train.vlm_dpo import held_out_implicit_accuracy, train_and_held_out


@pytest.fixture(scope="module")
def gen_world(tmp_path_factory):
    return generate_world(
        str(tmp_path_factory.mktemp("dpo_world")),
        n=6,
        seed=9,
        n_candidates=4,
        tasks=("image_generation", "video_generation"),
        pairs="all",
    )


def _prefs(world, task, clearest=False):
    """The world's ground-truth preference pairs of ``task``; with ``clearest``, the widest
    quality gaps first (a few steps of DPO learn a blatant flaw before a subtle one)."""
    items, rows = read_items(world.items[task])
    out, gaps = [], []
    for it, r in zip(items, rows):
        if r["mode"] == "pair_rank" and r["label"] in ("first", "second"):
            a, b = it.candidates
            chosen, rejected = (a, b) if r["label"] == "first" else (b, a)
            out.append(dict(task=task, prompt_id=r["item_id"], prompt=it.prompt, chosen=chosen, rejected=rejected))
            gaps.append(abs(r["gt_scores"][0] - r["gt_scores"][1]))
    if clearest:
        out = [p for _, k, p in sorted(zip(gaps, range(len(out)), out), key=lambda t: (-t[0], t[1]))]
    return out


def test_pairs_from_both_export_formats_and_their_errors(gen_world, tmp_path):
    img = export_diffusion_dpo(_prefs(gen_world, "image_generation"), str(tmp_path / "img"), MediaLimits())
    vid = export_videodpo(_prefs(gen_world, "video_generation"), str(tmp_path / "vid"), MediaLimits())
    pairs, errors = read_pairs([img["files"]["image_generation"]["path"]], "diffusion_image")
    assert pairs and not errors and isinstance(pairs[0]["chosen"], bytes)
    vpairs, _ = read_pairs([vid["files"]["video_generation"]["path"]], "diffusion_video")
    assert vpairs and Path(vpairs[0]["chosen"]).exists()
    # a tie and a wrong-format file are recorded with their reasons, not trained on
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"caption": ["x", ""], "jpg_0": [b"a", b"b"], "jpg_1": [b"c", b"d"], "label_0": [0.5, 1.0]}),
        tmp_path / "bad.parquet",
    )
    none, errs = read_pairs(
        [str(tmp_path / "bad.parquet"), vid["files"]["video_generation"]["path"]], "diffusion_image"
    )
    assert (
        not none
        and [("tie" in e["reason"]) or ("caption" in e["reason"]) or ("diffusion_dpo row" in e["reason"]) for e in errs]
        and len(errs) == 2 + len(vpairs)
    )
    train, held = split_pairs(pairs, 0.3, 0)
    assert {p["caption"] for p in train}.isdisjoint({p["caption"] for p in held})


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["diffusion_image", "diffusion_video"])
def test_diffusion_dpo_on_ray_train_raises_held_out_implicit_accuracy(ray_local, gen_world, tmp_path, policy):
    from diffusers import DiffusionPipeline

    from unireward.pipelines.train import run_dpo

    task = "image_generation" if policy == "diffusion_image" else "video_generation"
    model = (build_tiny_t2i if policy == "diffusion_image" else build_tiny_t2v)(tmp_path / "pipe")
    export = (export_diffusion_dpo if policy == "diffusion_image" else export_videodpo)(
        _prefs(gen_world, task, clearest=True)[:8], str(tmp_path / "export"), MediaLimits()
    )
    path = export["files"][task]["path"]
    spec = parse_spec(
        dict(
            kind="dpo",
            name="dpo",
            policy=policy,
            model=str(model),
            output=str(tmp_path / "runs"),
            data=dict(train=[path], eval=[path]),
            beta=500.0,
            num_frames=4,
            training=dict(
                max_steps=20,
                batch_size=2,
                lr=1e-3,
                eval_every=10,
                warmup_ratio=0.0,
                schedule="constant",
                deepspeed=dict(zero_stage=2),
            ),
            resources=dict(workers=2),
        )
    )
    summary = run_dpo(spec)
    assert summary["before"]["eval/implicit_acc"] == 0.0  # the policy starts as the reference: no margin
    assert summary["after"]["eval/implicit_acc"] > 0.5 and summary["after"]["eval/margin"] > 0
    assert summary["after"]["eval/loss"] < summary["before"]["eval/loss"]
    pipe = DiffusionPipeline.from_pretrained(summary["final"])
    base = DiffusionPipeline.from_pretrained(str(model))
    assert any(not torch.equal(a, b) for a, b in zip(pipe.unet.state_dict().values(), base.unet.state_dict().values()))
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        "a red circle",
        num_inference_steps=2,
        output_type="np",
        **({"num_frames": 4} if policy == "diffusion_video" else {}),
    )
    assert (out.images if policy == "diffusion_image" else out.frames) is not None
    recs = [json.loads(x) for x in (tmp_path / "runs" / "dpo" / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert any("train/implicit_acc" in r for r in recs)


def test_dpo_spec_validation():
    with pytest.raises(ConfigError, match="policy"):
        parse_spec(dict(kind="dpo", name="d", policy="vlm_video", model="m", output="o", data=dict(train=["x"])))
    spec = parse_spec(
        dict(kind="dpo", name="d", policy="diffusion_image", model="m", output="o", data=dict(train=["x"]))
    )
    assert spec.beta == 5000.0 and spec.training.metric == "eval/implicit_acc"


def _trl_export(tmp_path, task, n=4, seed=2):
    """Ground-truth preference pairs of an understanding task, through the curation TRL exporter."""
    from unireward.curate.export import export_trl

    world = generate_world(str(tmp_path / "world"), n=n, seed=seed, tasks=(task,), pairs="all")
    items, rows = read_items(world.items[task])
    prefs = []
    for it, r in zip(items, rows):
        if r["mode"] == "pair_rank" and r["label"] in ("first", "second"):
            a, b = it.candidates
            chosen, rejected = (a, b) if r["label"] == "first" else (b, a)
            prefs.append(
                dict(
                    task=task,
                    prompt_id=r["item_id"],
                    prompt=it.prompt,
                    context=it.context,
                    chosen=chosen,
                    rejected=rejected,
                )
            )
    return export_trl(prefs[:8], str(tmp_path / "export"), MediaLimits(num_frames=4))["files"][task]["path"]


def _vlm_spec(model, path, tmp_path, name="vlm", **training):
    return parse_spec(
        dict(
            kind="dpo",
            name=name,
            policy="vlm",
            model=str(model),
            output=str(tmp_path / "runs"),
            data=dict(train=[path], eval=[path]),
            loss_type="sigmoid",
            training=dict(
                dict(max_steps=6, batch_size=2, lr=1e-3, eval_every=3, warmup_ratio=0.0, deepspeed=dict(zero_stage=2)),
                **training,
            ),
            resources=dict(workers=2),
        )
    )


def test_held_out_pairs_and_their_exact_implicit_accuracy(tiny_judge_dir, tmp_path):
    """The held-out split is the prompt-seeded fraction of the training file, capped at
    max_eval_pairs; a policy equal to its reference has margin 0 on every pair: none is counted as
    preferred (a tie is not a win)."""
    path = _trl_export(tmp_path, "image_understanding")
    spec = parse_spec(
        dict(
            kind="dpo",
            name="split",
            policy="vlm",
            model=str(tiny_judge_dir),
            output=str(tmp_path / "runs"),
            data=dict(train=[path], eval_fraction=0.5),
        )
    )
    train, held = train_and_held_out(spec)
    assert len(train) + len(held) == 8 and len(held) > 0
    assert not set(train["prompt_id"]) & set(held["prompt_id"])
    capped = spec.model_copy(update=dict(data=spec.data.model_copy(update=dict(max_eval_pairs=1))))
    assert len(train_and_held_out(capped)[1]) == 1
    same = held_out_implicit_accuracy(spec, str(tiny_judge_dir), device="cpu")
    assert same["pairs"] == len(held) and same["correct"] == 0 and same["margin"] == 0.0
    assert same["interval"][0] == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("task", ["image_understanding", "video_understanding"])
def test_vlm_dpo_with_trl_on_ray_train_and_deepspeed(ray_local, tiny_judge_dir, tmp_path, task):
    """TRL's DPOTrainer in 2 Ray Train workers with DeepSpeed ZeRO-2, on the TRL export of image or
    video understanding pairs (videos as frame sequences): held-out implicit accuracy rises from 0,
    the policy exports as an HF folder."""
    from transformers import AutoModelForImageTextToText

    from unireward.pipelines.train import run_dpo

    path = _trl_export(tmp_path, task)
    if task == "video_understanding":  # each video arrived as its frames, one image part each
        import pyarrow.parquet as pq

        row = pq.read_table(path).slice(0, 1).to_pylist()[0]
        assert len(row["images"]) == 4
        assert sum(p.get("type") == "image" for m in row["prompt"] for p in m["content"]) == 4
    spec = _vlm_spec(tiny_judge_dir, path, tmp_path)
    assert spec.beta == 0.1
    summary = run_dpo(spec)
    assert summary["before"] is None  # ZeRO-2: the HF Trainer cannot evaluate before training (an event says so)
    assert summary["after"]["eval/implicit_acc"] > 0.5 and summary["after"]["eval/margin"] > 0
    # each held-out pair counted once, outside TRL: the trained policy prefers the chosen answers
    exact = held_out_implicit_accuracy(spec, summary["final"], device="cpu")
    assert exact["pairs"] == 8 and exact["accuracy"] > 0.5 and exact["margin"] > 0
    model = AutoModelForImageTextToText.from_pretrained(summary["final"])
    base = AutoModelForImageTextToText.from_pretrained(str(tiny_judge_dir))
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), base.state_dict().values()))
    assert (Path(summary["final"]) / "chat_template.jinja").exists() or (
        Path(summary["final"]) / "chat_template.json"
    ).exists()


def _events(run_dir):
    recs = [json.loads(x) for x in (run_dir / "logs" / "metrics.jsonl").read_text().splitlines()]
    return recs, [r for r in recs if "event" in r and r["event"] in ("start", "resumed", "done")]


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["diffusion_image", "vlm"])
def test_rerunning_a_dpo_spec_resumes_from_its_latest_checkpoint(
    ray_local, gen_world, tiny_judge_dir, tmp_path, policy
):
    from unireward.pipelines.train import run_dpo

    if policy == "vlm":
        path = _trl_export(tmp_path, "image_understanding")

        def make(steps):
            return _vlm_spec(tiny_judge_dir, path, tmp_path, name="again", max_steps=steps, eval_every=2)
    else:
        model = build_tiny_t2i(tmp_path / "pipe")
        path = export_diffusion_dpo(_prefs(gen_world, "image_generation")[:6], str(tmp_path / "export"), MediaLimits())[
            "files"
        ]["image_generation"]["path"]

        def make(steps):
            return parse_spec(
                dict(
                    kind="dpo",
                    name="again",
                    policy=policy,
                    model=str(model),
                    output=str(tmp_path / "runs"),
                    data=dict(train=[path], eval=[path]),
                    beta=500.0,
                    training=dict(
                        max_steps=steps,
                        batch_size=2,
                        lr=1e-3,
                        eval_every=2,
                        warmup_ratio=0.0,
                        deepspeed=dict(zero_stage=2),
                    ),
                    resources=dict(workers=2),
                )
            )

    run_dpo(make(2))
    summary = run_dpo(make(4))
    recs, events = _events(tmp_path / "runs" / "again")
    assert [e["event"] for e in events] == ["start", "done", "resumed", "done"]
    assert events[2]["step"] == 2 and events[3]["step"] == 4
    assert summary["restarts"] == 1
    steps = [r["step"] for r in recs if "train/loss" in r]
    assert steps[-1] == 4 and sorted(steps) == steps and len(steps) == len(set(steps))  # no step trained twice
