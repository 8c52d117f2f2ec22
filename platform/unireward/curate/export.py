"""Exporters: preference rows to the formats DPO trainers read without glue.

- ``trl`` (understanding tasks): TRL's conversational preference format with images, written with
  the HF ``datasets`` features embedded, so ``load_dataset("parquet", ...)`` gives PIL images and
  ``trl.DPOTrainer`` trains on it directly: ``images`` (the context image, or the sampled frames of a
  video, one image part each), ``prompt`` (the user turn), ``chosen`` / ``rejected`` (assistant turns).
- ``diffusion_dpo`` (image generation): the Pick-a-Pic layout the Diffusion-DPO scripts read:
  exactly ``caption``, ``jpg_0`` (chosen, JPEG bytes), ``jpg_1`` (rejected), ``label_0`` (1.0: jpg_0
  is preferred). No extra columns (extra columns break its fixed ``Features``).
- ``videodpo`` (video generation): ``caption``, ``chosen`` and ``rejected`` video paths, as Parquet
  and as the ``dpo_data.json`` list VideoDPO reads.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from typing import Any

from ..io import media as media_io
from ..io import storage

EXPORTERS = {
    "trl": ("image_understanding", "video_understanding"),
    "diffusion_dpo": ("image_generation",),
    "videodpo": ("video_generation",),
}


def applicable(prefs: Sequence[dict[str, Any]]) -> list[str]:
    tasks = {p["task"] for p in prefs}
    return [name for name, for_tasks in EXPORTERS.items() if tasks & set(for_tasks)]


def _write_dataset(ds, uri: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.parquet")
        ds.to_parquet(path)
        with open(path, "rb") as f:
            storage.write_bytes(uri, f.read())


def _png(img) -> dict[str, Any]:
    return {"bytes": media_io.encode_image(img, "PNG"), "path": None}


def trl_prompt(task: str, question: str, context: Any, limits: media_io.MediaLimits) -> tuple[list, list]:
    """An understanding question as the TRL export writes it (and VLM DPO trains on it): the
    context as images (a video as its sampled frames) and the user turn, one image part each.
    Raises MediaError for a context that cannot be read."""
    if task == "image_understanding":
        images = [media_io.load_image(context, limits)]
    else:
        images = media_io.load_video(context, limits).frames
    parts = [{"type": "image", "text": None} for _ in images] + [{"type": "text", "text": question}]
    return images, [{"role": "user", "content": parts}]


def export_trl(prefs: Sequence[dict[str, Any]], out: str, limits: media_io.MediaLimits) -> dict[str, Any]:
    from datasets import Dataset, Features, Image, List, Value

    message = List({"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})})
    features = Features(
        {
            "prompt_id": Value("string"),
            "images": List(Image()),
            "prompt": message,
            "chosen": message,
            "rejected": message,
        }
    )
    written, skipped = {}, []
    for task in EXPORTERS["trl"]:
        rows = [p for p in prefs if p["task"] == task]
        if not rows:
            continue
        records = {k: [] for k in features}
        for p in rows:
            try:
                images, prompt = trl_prompt(task, p["prompt"], p["context"], limits)
            except media_io.MediaError as e:
                skipped.append(dict(prompt_id=p["prompt_id"], reason=f"{e.code}: {e.reason}"))
                continue
            records["prompt_id"].append(p["prompt_id"])
            records["images"].append([_png(im) for im in images])
            records["prompt"].append(prompt)
            records["chosen"].append([{"role": "assistant", "content": [{"type": "text", "text": p["chosen"]}]}])
            records["rejected"].append([{"role": "assistant", "content": [{"type": "text", "text": p["rejected"]}]}])
        uri = storage.join(out, f"{task}.parquet")
        _write_dataset(Dataset.from_dict(records, features=features), uri)
        written[task] = dict(path=uri, rows=len(records["prompt_id"]))
    return dict(files=written, skipped=skipped)


def export_diffusion_dpo(prefs: Sequence[dict[str, Any]], out: str, limits: media_io.MediaLimits) -> dict[str, Any]:
    from datasets import Dataset, Features, Value

    rows = [p for p in prefs if p["task"] == "image_generation"]
    records: dict[str, list] = {"caption": [], "jpg_0": [], "jpg_1": [], "label_0": []}
    skipped = []
    for p in rows:
        try:
            chosen = media_io.encode_image(media_io.load_image(p["chosen"], limits), "JPEG")
            rejected = media_io.encode_image(media_io.load_image(p["rejected"], limits), "JPEG")
        except media_io.MediaError as e:
            skipped.append(dict(prompt_id=p["prompt_id"], reason=f"{e.code}: {e.reason}"))
            continue
        records["caption"].append(p["prompt"])
        records["jpg_0"].append(chosen)
        records["jpg_1"].append(rejected)
        records["label_0"].append(1.0)
    features = Features(
        {"caption": Value("string"), "jpg_0": Value("binary"), "jpg_1": Value("binary"), "label_0": Value("float64")}
    )
    uri = storage.join(out, "train.parquet")
    _write_dataset(Dataset.from_dict(records, features=features), uri)
    return dict(files={"image_generation": dict(path=uri, rows=len(records["caption"]))}, skipped=skipped)


def export_videodpo(prefs: Sequence[dict[str, Any]], out: str, limits: media_io.MediaLimits) -> dict[str, Any]:
    from datasets import Dataset, Features, Value

    rows = [
        dict(idx=k, caption=p["prompt"], chosen=p["chosen"], rejected=p["rejected"])
        for k, p in enumerate(p for p in prefs if p["task"] == "video_generation")
    ]
    features = Features(
        {"idx": Value("int64"), "caption": Value("string"), "chosen": Value("string"), "rejected": Value("string")}
    )
    uri = storage.join(out, "data.parquet")
    _write_dataset(Dataset.from_list(rows, features=features), uri)
    storage.write_bytes(storage.join(out, "dpo_data.json"), json.dumps(rows, indent=1).encode())
    return dict(files={"video_generation": dict(path=uri, rows=len(rows))}, skipped=[])


def export(name: str, prefs: Sequence[dict[str, Any]], out: str, limits: media_io.MediaLimits) -> dict[str, Any]:
    fn = {"trl": export_trl, "diffusion_dpo": export_diffusion_dpo, "videodpo": export_videodpo}[name]
    return fn(prefs, storage.join(out, name), limits)
