"""Exporters: the files load with `datasets` as they are, and TRL's DPOTrainer trains on the TRL one."""

import io
import json

import pytest
from PIL import Image

from unireward.curate.export import applicable, export
from unireward.io import schema
from unireward.io.media import MediaLimits


def _prefs(world, task):
    """Preference rows from the world's pools: the best candidate against the worst."""
    rows = schema.read_parquet(world.pools[task])
    base = schema.parent(world.pools[task])
    out = []
    for r in rows:
        cands = sorted(r["candidates"], key=lambda c: -c["gt_score"])
        best, worst = cands[0], cands[-1]
        gen = task.endswith("generation")
        ref = (lambda c: schema.resolve_media(c["media"], base)) if gen else (lambda c: c["text"])
        out.append(
            dict(
                prompt_id=r["prompt_id"],
                task=task,
                prompt=r["prompt"],
                context=schema.resolve_media(r["context"], base),
                chosen=ref(best),
                rejected=ref(worst),
            )
        )
    return out


def test_applicable(world):
    prefs = _prefs(world, "image_generation") + _prefs(world, "video_understanding")
    assert applicable(prefs) == ["trl", "diffusion_dpo"]
    assert applicable([]) == []


def test_diffusion_dpo_layout(world, tmp_path):
    from datasets import load_dataset

    prefs = _prefs(world, "image_generation")
    info = export("diffusion_dpo", prefs, str(tmp_path), MediaLimits())
    ds = load_dataset("parquet", data_files=info["files"]["image_generation"]["path"], split="train")
    assert ds.column_names == ["caption", "jpg_0", "jpg_1", "label_0"]  # exactly: the script's fixed Features
    assert len(ds) == len(prefs) and set(ds["label_0"]) == {1.0}
    img = Image.open(io.BytesIO(ds[0]["jpg_0"]))
    assert img.format == "JPEG" and img.size == (128, 128)
    assert ds[0]["caption"] == prefs[0]["prompt"]


def test_videodpo_layout(world, tmp_path):
    from datasets import load_dataset

    prefs = _prefs(world, "video_generation")
    info = export("videodpo", prefs, str(tmp_path), MediaLimits())
    ds = load_dataset("parquet", data_files=info["files"]["video_generation"]["path"], split="train")
    assert ds.column_names == ["idx", "caption", "chosen", "rejected"] and len(ds) == len(prefs)
    listed = json.loads((tmp_path / "videodpo" / "dpo_data.json").read_text())
    assert [x["chosen"] for x in listed] == [p["chosen"] for p in prefs]


def test_trl_layout_and_skipped_media(world, tmp_path):
    from datasets import load_dataset

    prefs = _prefs(world, "image_understanding") + _prefs(world, "video_understanding")
    prefs.append(dict(prefs[0], prompt_id="broken", context=str(tmp_path / "missing.png")))
    info = export("trl", prefs, str(tmp_path), MediaLimits(num_frames=4))
    assert info["skipped"] == [dict(prompt_id="broken", reason=info["skipped"][0]["reason"])]
    assert info["skipped"][0]["reason"].startswith("not_found")
    img = load_dataset("parquet", data_files=info["files"]["image_understanding"]["path"], split="train")
    row = img[0]
    assert len(row["images"]) == 1 and isinstance(row["images"][0], Image.Image)
    assert row["prompt"][0]["role"] == "user"
    assert [p["type"] for p in row["prompt"][0]["content"]] == ["image", "text"]
    assert row["chosen"][0]["role"] == "assistant" and row["chosen"][0]["content"][0]["text"]
    vid = load_dataset("parquet", data_files=info["files"]["video_understanding"]["path"], split="train")
    assert len(vid[0]["images"]) == 4  # the sampled frames, one image part each
    assert [p["type"] for p in vid[0]["prompt"][0]["content"]] == ["image"] * 4 + ["text"]


@pytest.mark.slow
def test_trl_dpo_trainer_trains_on_the_export(world, tiny_judge_dir, tmp_path):
    from datasets import load_dataset
    from trl import DPOConfig, DPOTrainer

    info = export("trl", _prefs(world, "image_understanding"), str(tmp_path), MediaLimits())
    ds = load_dataset("parquet", data_files=info["files"]["image_understanding"]["path"], split="train")
    cfg = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        per_device_train_batch_size=2,
        max_steps=2,
        max_length=None,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
    )
    trainer = DPOTrainer(model=str(tiny_judge_dir), args=cfg, train_dataset=ds)
    out = trainer.train()
    assert out.global_step == 2
    assert trainer.state.log_history[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # log(2) at the start
