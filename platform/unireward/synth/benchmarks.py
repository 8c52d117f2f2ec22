"""The synthetic world written in the published layouts of the public reward benchmarks, with the
world's ground truth as the human labels: to try ``unireward eval`` without downloading anything,
for tests, and for ``unireward bench eval``. ``damage=True`` adds the faults real copies have (a
missing video, an unknown vote, a malformed entry, an unreadable image), one of each where the
layout allows.

Each writer returns the folder to pass as ``--data``.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..io import storage
from .world import TASKS, make_image_generation, make_image_understanding, make_video_generation, pair_label

IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _write_parquet(rows: list[dict[str, Any]], schema: pa.Schema, uri: str) -> None:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf)
    storage.write_bytes(uri, buf.getvalue())


def _pairs(maker, seed: int, n: int):
    """``n`` (prompt, file a, file b, gt a, gt b, files) pairs from a world task's pools."""
    out, i = [], 0
    while len(out) < n:
        p = maker(seed, i, 4)
        c = p.row["candidates"]
        for a, b in ((0, 1), (2, 3)):
            ref = (lambda k: c[k]["media"]) if c[a].get("media") else None
            out.append((p, c[a], c[b], ref))
            if len(out) == n:
                break
        i += 1
    return out


def _vote(ga: float, gb: float) -> str:
    if max(ga, gb) < 0.4:
        return "bothbad_vote"
    return {"first": "leftvote", "second": "rightvote", "tie": "tievote"}[pair_label(ga, gb)]


def genai_bench(
    folder: str,
    n: int = 8,
    seed: int = 0,
    configs=("image_generation", "image_edition", "video_generation"),
    splits=("test_v1", "test"),
    damage: bool = False,
) -> str:
    """``{config}/{split}-00000-of-00001.parquet`` (images as {bytes, path} structs; videos as URLs,
    their files in ``<folder>/videos/``)."""
    from .editing import make_image_editing

    for config in configs:
        for s, split in enumerate(splits):
            rows: list[dict[str, Any]] = []
            if config == "image_generation":
                for p, a, b, _ in _pairs(make_image_generation, seed + 7 * s, n):
                    rows.append(
                        dict(
                            prompt=p.row["prompt"],
                            left_model="m1",
                            left_image=dict(bytes=p.files[a["media"]], path=None),
                            right_model="m2",
                            right_image=dict(bytes=p.files[b["media"]], path=None),
                            vote_type=_vote(a["gt_score"], b["gt_score"]),
                        )
                    )
                schema = pa.schema(
                    [
                        ("prompt", pa.string()),
                        ("left_model", pa.string()),
                        ("left_image", IMAGE_STRUCT),
                        ("right_model", pa.string()),
                        ("right_image", IMAGE_STRUCT),
                        ("vote_type", pa.string()),
                    ]
                )
            elif config == "image_edition":
                for p, a, b, _ in _pairs(make_image_editing, seed + 7 * s, n):
                    rows.append(
                        dict(
                            source_prompt="a scene",
                            target_prompt="the scene edited",
                            instruct_prompt=p.row["prompt"],
                            source_image=dict(bytes=p.files[p.row["context"]], path=None),
                            left_model="m1",
                            left_output_image=dict(bytes=p.files[a["media"]], path=None),
                            right_model="m2",
                            right_output_image=dict(bytes=p.files[b["media"]], path=None),
                            vote_type=_vote(a["gt_score"], b["gt_score"]),
                        )
                    )
                schema = pa.schema(
                    [
                        ("source_prompt", pa.string()),
                        ("target_prompt", pa.string()),
                        ("instruct_prompt", pa.string()),
                        ("source_image", IMAGE_STRUCT),
                        ("left_model", pa.string()),
                        ("left_output_image", IMAGE_STRUCT),
                        ("right_model", pa.string()),
                        ("right_output_image", IMAGE_STRUCT),
                        ("vote_type", pa.string()),
                    ]
                )
            else:
                for k, (p, a, b, _) in enumerate(_pairs(make_video_generation, seed + 7 * s, n)):
                    urls = []
                    for side, c in (("l", a), ("r", b)):
                        name = f"{split}-{k:05d}-{side}.mp4"
                        storage.write_bytes(storage.join(folder, "videos", name), p.files[c["media"]])
                        urls.append(f"https://huggingface.co/datasets/genai-arena-videos/blob/main/dir/{name}")
                    rows.append(
                        dict(
                            prompt=p.row["prompt"],
                            left_model="m1",
                            left_video=urls[0],
                            right_model="m2",
                            right_video=urls[1],
                            vote_type=_vote(a["gt_score"], b["gt_score"]),
                        )
                    )
                schema = pa.schema(
                    [
                        ("prompt", pa.string()),
                        ("left_model", pa.string()),
                        ("left_video", pa.string()),
                        ("right_model", pa.string()),
                        ("right_video", pa.string()),
                        ("vote_type", pa.string()),
                    ]
                )
            if damage and rows:
                rows[0]["vote_type"] = "maybevote"  # an unknown vote
                if len(rows) > 1:
                    if config == "video_generation":
                        rows[1]["left_video"] = rows[1]["left_video"].replace(".mp4", "-missing.mp4")
                    else:
                        key = "left_image" if config == "image_generation" else "left_output_image"
                        rows[1][key] = dict(bytes=b"not an image at all", path=None)
            _write_parquet(rows, schema, storage.join(folder, config, f"{split}-00000-of-00001.parquet"))
    return folder


def videogen_rewardbench(folder: str, n: int = 8, seed: int = 0, damage: bool = False) -> str:
    """``videogen-rewardbench.csv`` with the videos in ``videos/`` relative to it."""
    buf = io.StringIO()
    cols = [
        "path_A",
        "path_B",
        "A_model",
        "B_model",
        "prompt",
        "VQ",
        "MQ",
        "TA",
        "Overall",
        "fps_A",
        "num_frames_A",
        "fps_B",
        "num_frames_B",
    ]
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    ab = {"first": "A", "second": "B", "tie": "same"}
    for k, (p, a, b, _) in enumerate(_pairs(make_video_generation, seed, n)):
        paths = []
        for side, c in (("A", a), ("B", b)):
            rel = f"videos/m{side}/m{side}_{k:05d}.mp4"
            storage.write_bytes(storage.join(folder, rel), p.files[c["media"]])
            paths.append(rel)
        overall = ab[pair_label(a["gt_score"], b["gt_score"])]
        row = dict(
            path_A=paths[0],
            path_B=paths[1],
            A_model="mA",
            B_model="mB",
            prompt=p.row["prompt"],
            VQ=overall,
            MQ=overall,
            TA=overall,
            Overall=overall,
            fps_A=8.0,
            num_frames_A=12.0,
            fps_B=8.0,
            num_frames_B=12.0,
        )
        if damage and k == 0:
            row["Overall"] = "C"  # an unknown label
        if damage and k == 1:
            row["path_B"] = "videos/mB/missing.mp4"
        w.writerow(row)
    storage.write_bytes(storage.join(folder, "videogen-rewardbench.csv"), buf.getvalue().encode())
    return folder


VL_PREFIXES = (
    "RLAIF-V-{k}",
    "mathverse_{k}",
    "wildvision-battle-{k}",
    "hallucination_pair-{k}",
    "mmmu_pro_{k}",
    "RLHF-V-{k}",
    "vlfeedback_{k}",
)


def vl_rewardbench(folder: str, n: int = 14, seed: int = 0, damage: bool = False) -> str:
    """``data/test-00000-of-00001.parquet`` (id, query, response [2], human_ranking, image, ...)."""
    rows, i = [], 0
    while len(rows) < n:
        p = make_image_understanding(seed, i, 4)
        c = p.row["candidates"]
        best = max(c, key=lambda x: x["gt_score"])
        worst = min(c, key=lambda x: x["gt_score"])
        k = len(rows)
        first_better = k % 2 == 0
        resp = [best["text"], worst["text"]] if first_better else [worst["text"], best["text"]]
        rows.append(
            dict(
                id=VL_PREFIXES[k % len(VL_PREFIXES)].format(k=k),
                query=p.row["prompt"],
                response=resp,
                image=dict(bytes=p.files[p.row["context"]], path=None),
                human_ranking=[0, 1] if first_better else [1, 0],
                models=["m1", "m2"],
                judge="human",
                rationale="",
                query_source="synthetic",
                ground_truth="",
            )
        )
        i += 1
    if damage:
        rows[0]["human_ranking"] = [0, 0]  # a malformed ranking
        rows[1]["image"] = dict(bytes=b"\x89PNG broken", path=None)
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("query", pa.string()),
            ("response", pa.list_(pa.string())),
            ("image", IMAGE_STRUCT),
            ("human_ranking", pa.list_(pa.int64())),
            ("models", pa.list_(pa.string())),
            ("judge", pa.string()),
            ("rationale", pa.string()),
            ("query_source", pa.string()),
            ("ground_truth", pa.string()),
        ]
    )
    _write_parquet(rows, schema, storage.join(folder, "data", "test-00000-of-00001.parquet"))
    return folder


def mmrb2(folder: str, n: int = 6, seed: int = 0, damage: bool = False) -> str:
    """``t2i.json`` and ``edit.json`` pairs with ``images/`` and ``input_images/``, and one pair each
    of ``interleaved.json`` and ``reasoning.json`` (which are reported as not judged)."""
    from .editing import make_image_editing

    def img(rel: str, data: bytes) -> str:
        storage.write_bytes(storage.join(folder, rel), data)
        return rel

    t2i = []
    for k, (p, a, b, _) in enumerate(_pairs(make_image_generation, seed, n)):
        if pair_label(a["gt_score"], b["gt_score"]) == "tie":
            continue  # MMRB2 has no ties
        t2i.append(
            dict(
                id=f"t2i_{k}",
                prompt_source="synthetic",
                prompt_content=[["text", p.row["prompt"]]],
                response_a=dict(
                    model_name="m1", response_content=[["image", img(f"images/t2i_{k}_a.png", p.files[a["media"]])]]
                ),
                response_b=dict(
                    model_name="m2", response_content=[["image", img(f"images/t2i_{k}_b.png", p.files[b["media"]])]]
                ),
                chosen="A" if a["gt_score"] > b["gt_score"] else "B",
                human_annotations=[3, 3, 3],
            )
        )
    edit = []
    for k, (p, a, b, _) in enumerate(_pairs(make_image_editing, seed, n)):
        if pair_label(a["gt_score"], b["gt_score"]) == "tie":
            continue
        src = img(f"input_images/edit_{k}.png", p.files[p.row["context"]])
        edit.append(
            dict(
                id=f"edit_{k}",
                prompt_source="synthetic",
                prompt_content=[["text", p.row["prompt"]], ["image", src]],
                response_a=dict(
                    model_name="m1", response_content=[["image", img(f"images/edit_{k}_a.png", p.files[a["media"]])]]
                ),
                response_b=dict(
                    model_name="m2", response_content=[["image", img(f"images/edit_{k}_b.png", p.files[b["media"]])]]
                ),
                chosen="A" if a["gt_score"] > b["gt_score"] else "B",
                human_annotations=[3, 3, 3],
            )
        )
    if damage and t2i:
        t2i[0] = {"id": t2i[0]["id"], "prompt_content": "not a list", "chosen": "A"}  # a malformed entry
    mixed = dict(
        id="mix_0",
        prompt_content=[["text", "explain"]],
        chosen="A",
        response_a=dict(model_name="m1", response_content=[["text", "an answer"], ["image", "images/t2i_0_a.png"]]),
        response_b=dict(model_name="m2", response_content=[["text", "another"]]),
    )
    for name, pairs in (("t2i", t2i), ("edit", edit), ("interleaved", [mixed]), ("reasoning", [dict(mixed, id="r_0")])):
        storage.write_bytes(storage.join(folder, f"{name}.json"), json.dumps({"pairs": pairs}, indent=1).encode())
    return folder


def imagereward(folder: str, n: int = 6, seed: int = 0, damage: bool = False) -> str:
    """``test.json`` rank lists (lower is better, ties kept) with the images in ``test_images/``."""
    items = []
    for k in range(n):
        p = make_image_generation(seed, k, 4)
        gens, ranks = [], []
        gts = sorted({c["gt_score"] for c in p.row["candidates"]}, reverse=True)
        for j, c in enumerate(p.row["candidates"]):
            rel = f"part-{k:06d}/images/{j:04d}.png"
            storage.write_bytes(storage.join(folder, "test_images", rel), p.files[c["media"]])
            gens.append(rel)
            ranks.append(gts.index(c["gt_score"]) + 1)
        items.append(dict(id=f"{k:06d}-0001", prompt=p.row["prompt"], generations=gens, ranking=ranks))
    if damage:
        storage.write_bytes(storage.join(folder, "test_images", items[0]["generations"][0]), b"unreadable")
        items.append({"id": "broken", "prompt": "x", "generations": ["a.png"], "ranking": [1, 2]})
    storage.write_bytes(storage.join(folder, "test.json"), json.dumps(items, indent=1).encode())
    return folder


WRITERS = {
    "genai-bench": genai_bench,
    "videogen-rewardbench": videogen_rewardbench,
    "vl-rewardbench": vl_rewardbench,
    "mmrb2": mmrb2,
    "imagereward": imagereward,
}
__all__ = ["WRITERS", "TASKS"]
