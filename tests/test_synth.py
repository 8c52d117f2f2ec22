"""unireward.synth.world: the seeded synthetic world and its ground truth.

Checks determinism (rows and media bytes), the Parquet schemas (pyarrow and ``datasets``), that the
ground truth agrees with the stored scene / motion (and with what is actually drawn), corruption for
robustness demos, argument validation, and writing to S3.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from collections import deque
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from unireward.io import schema, storage
from unireward.io.media import MediaError, load_image, load_video
from unireward.io.schema import ITEM_SCHEMA, POOL_SCHEMA, read_parquet, resolve_media
from unireward.synth import world as W

BACKGROUND = np.array((235, 235, 235))
PALETTE = {tuple(c) for c in W.COLOURS.values()} | {tuple(BACKGROUND)}


def pack_rgb(arr: np.ndarray) -> np.ndarray:
    a = arr.reshape(-1, 3).astype(np.int64)
    return (a[:, 0] << 16) | (a[:, 1] << 8) | a[:, 2]


PALETTE_CODES = set(pack_rgb(np.array(sorted(PALETTE))).tolist())
WORD_NUMBER = {w: k for k, w in W.NUMBER_WORD.items()}
EXPECTED_CODE = {
    "missing": "not_found",
    "zero_bytes": "empty",
    "truncated": "decode_failed",
    "garbage": "decode_failed",
}


# ------------------------------------------------------------------------------------- helpers
def media_tree(root: str | Path) -> dict[str, bytes]:
    """relative path -> bytes of every file under ``root``/media."""
    root = Path(root)
    out = {}
    for dirpath, _, files in os.walk(root / "media"):
        for f in files:
            p = Path(dirpath) / f
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def loader(path: str):
    return load_image if path.endswith(".png") else load_video


def colour_mask(arr: np.ndarray, colour: str | tuple, tol: int = 30) -> np.ndarray:
    rgb = np.array(W.COLOURS[colour] if isinstance(colour, str) else colour)
    return np.abs(arr.astype(int) - rgb).sum(-1) < tol


def foreground(arr: np.ndarray, tol: int = 60) -> np.ndarray:
    return np.abs(arr.astype(int) - BACKGROUND).sum(-1) > tol


def centroid(frame) -> tuple[float, float]:
    ys, xs = np.nonzero(foreground(np.asarray(frame)))
    assert len(xs), "no object in the frame"
    return float(xs.mean()), float(ys.mean())


def components(mask: np.ndarray) -> int:
    """Number of 4-connected components of a boolean mask."""
    mask = mask.copy()
    h, w = mask.shape
    n = 0
    for y0, x0 in zip(*np.nonzero(mask)):
        if not mask[y0, x0]:
            continue
        n += 1
        mask[y0, x0] = False
        queue = deque([(y0, x0)])
        while queue:
            y, x = queue.popleft()
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx]:
                    mask[ny, nx] = False
                    queue.append((ny, nx))
    return n


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def scene_of(meta: str) -> list[W.Group]:
    return [W.Group(**g) for g in json.loads(meta)["scene"]]


def motion_of(meta: str) -> W.Motion:
    return W.Motion(**json.loads(meta)["motion"])


def candidate_axes(meta: str) -> dict[str, dict]:
    """candidate id -> its ground-truth axes (alignment, coherence or physics, style, defects)."""
    return {c["id"]: c for c in json.loads(meta)["candidates"]}


def overall(axes: dict) -> float:
    structure = axes.get("coherence", axes.get("physics"))
    return round(W.ALIGNMENT_WEIGHT * axes["alignment"] + W.QUALITY_WEIGHT * (structure + axes["style"]), 6)


# ------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """Two worlds from the same seed and one from another seed (all four tasks)."""
    base = tmp_path_factory.mktemp("twins")
    a = W.generate_world(str(base / "a"), n=2, seed=7, n_candidates=4)
    b = W.generate_world(str(base / "b"), n=2, seed=7, n_candidates=4)
    c = W.generate_world(str(base / "c"), n=2, seed=8, n_candidates=4)
    return a, b, c


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged") / "w"
    return W.generate_world(str(root), n=4, seed=2, n_candidates=4, corrupt=4)


# ----------------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_rows_and_media(twins):
    a, b, _ = twins
    assert set(a.pools) == set(b.pools) == set(W.TASKS)
    for task in W.TASKS:
        pool_a, pool_b = read_parquet(a.pools[task]), read_parquet(b.pools[task])
        assert len(pool_a) == 2 and pool_a == pool_b
        items_a, items_b = read_parquet(a.items[task]), read_parquet(b.items[task])
        assert len(items_a) == 2 * (2 + 4) and items_a == items_b
    tree_a, tree_b = media_tree(a.root), media_tree(b.root)
    # 2 prompts x 4 candidates for generation tasks, one context per prompt for understanding tasks
    assert len(tree_a) == 2 * 4 + 2 + 2 * 4 + 2
    assert sorted(tree_a) == sorted(tree_b)
    different = [k for k in tree_a if tree_a[k] != tree_b[k]]
    assert not different, f"media bytes differ between two runs with the same seed: {different}"
    assert all(tree_a[k] for k in tree_a)


def test_world_json_describes_the_run(twins):
    a, b, _ = twins
    ja = json.loads(Path(a.root, "world.json").read_text())
    jb = json.loads(Path(b.root, "world.json").read_text())
    assert ja["seed"] == 7 and ja["n"] == 2 and ja["n_candidates"] == 4 and ja["corrupted"] == []
    assert ja["pools"] == a.pools and ja["items"] == a.items
    for task in W.TASKS:
        assert Path(ja["pools"][task]).is_file() and Path(ja["items"][task]).is_file()
    # identical apart from where each world lives
    assert json.loads(json.dumps(ja).replace(a.root, "ROOT")) == json.loads(json.dumps(jb).replace(b.root, "ROOT"))


def test_different_seed_gives_different_world(twins):
    a, _, c = twins
    for task in W.TASKS:
        pa, pc = read_parquet(a.pools[task]), read_parquet(c.pools[task])
        assert [r["prompt_id"] for r in pa] == [r["prompt_id"] for r in pc]  # same layout ...
        assert [r["meta"] for r in pa] != [r["meta"] for r in pc]  # ... different content
    prompts_a = [r["prompt"] for t in ("image_generation", "video_generation") for r in read_parquet(a.pools[t])]
    prompts_c = [r["prompt"] for t in ("image_generation", "video_generation") for r in read_parquet(c.pools[t])]
    assert prompts_a != prompts_c
    tree_a, tree_c = media_tree(a.root), media_tree(c.root)
    assert sorted(tree_a) == sorted(tree_c)
    same = [k for k in tree_a if tree_a[k] == tree_c[k]]
    assert len(same) < len(tree_a) // 4, f"too many identical files across seeds: {same}"


# ----------------------------------------------------------------------------------- parquet
def test_parquet_files_follow_the_schemas_exactly(world):
    for task in W.TASKS:
        pool_schema = pq.read_schema(world.pools[task])
        item_schema = pq.read_schema(world.items[task])
        assert pool_schema.equals(POOL_SCHEMA), f"{task} pool schema:\n{pool_schema}"
        assert item_schema.equals(ITEM_SCHEMA), f"{task} item schema:\n{item_schema}"
        assert pq.read_table(world.pools[task]).schema.names == POOL_SCHEMA.names
        assert pq.read_table(world.items[task]).schema.names == ITEM_SCHEMA.names


def test_rows_are_well_formed(world):
    for task in W.TASKS:
        pools = read_parquet(world.pools[task])
        assert len(pools) == world.n == 2
        gen = task.endswith("_generation")
        for row in pools:
            assert row["task"] == task and row["prompt"]
            assert len(row["candidates"]) == world.n_candidates
            assert len({c["id"] for c in row["candidates"]}) == world.n_candidates
            for c in row["candidates"]:
                assert c["id"].startswith(row["prompt_id"])
                assert (c["media"] is not None) == gen and (c["text"] is not None) == (not gen)
                assert c["seed"] is None
            assert (row["context"] is None) == gen
            json.loads(row["meta"])
        items = read_parquet(world.items[task])
        modes = [it["mode"] for it in items]
        assert modes.count("pair_rank") == 2 * 2 and modes.count("point_score") == 2 * 4
        for it in items:
            assert it["task"] == task
            assert len(it["candidates"]) == len(it["gt_scores"]) == (2 if it["mode"] == "pair_rank" else 1)
            assert (it["label"] is None) == (it["mode"] == "point_score")


def test_parquet_loads_with_datasets(world, tmp_path):
    datasets = pytest.importorskip("datasets")
    for task in W.TASKS:
        for uri in (world.pools[task], world.items[task]):
            ds = datasets.load_dataset("parquet", data_files=uri, split="train", cache_dir=str(tmp_path / "cache"))
            expected = read_parquet(uri)
            assert ds.num_rows == len(expected) > 0
            assert ds.to_list() == expected
            names = POOL_SCHEMA.names if uri.endswith(".pool.parquet") else ITEM_SCHEMA.names
            assert list(ds.column_names) == names


def test_relative_media_paths_resolve_against_the_parquet_folder(world, tmp_path):
    def resolved(root: str, pools: dict[str, str], items: dict[str, str]) -> set[Path]:
        found = set()
        for task in W.TASKS:
            for uri in (pools[task], items[task]):
                base = schema.parent(uri)
                assert Path(base) == Path(root).absolute()
                per_file = set()
                for row in read_parquet(uri):
                    refs = [row["context"]] if row["context"] else []
                    if task.endswith("_generation"):
                        refs += [c["media"] if isinstance(c, dict) else c for c in row["candidates"]]
                    assert refs
                    for ref in refs:
                        assert not os.path.isabs(ref) and "://" not in ref, ref
                        path = Path(resolve_media(ref, base))
                        assert path.is_file(), path
                        per_file.add(path.resolve())
                found |= per_file
        return found

    files = resolved(world.root, world.pools, world.items)
    # every media file of the world is referenced, and nothing else
    assert files == {(Path(world.root) / rel).resolve() for rel in media_tree(world.root)}
    assert len(files) == 2 * 4 + 2 + 2 * 4 + 2
    # the folder can be moved: the references follow it
    moved = tmp_path / "moved"
    shutil.copytree(world.root, moved)
    pools = {t: str(moved / Path(p).name) for t, p in world.pools.items()}
    items = {t: str(moved / Path(p).name) for t, p in world.items.items()}
    moved_files = resolved(str(moved), pools, items)
    assert moved_files == {(moved / rel).resolve() for rel in media_tree(moved)}
    row = read_parquet(items["image_generation"])[0]
    assert load_image(resolve_media(row["candidates"][0], str(moved))).size == (W.IMAGE_SIZE, W.IMAGE_SIZE)


# ----------------------------------------------------------------------------------- ground truth
def test_unperturbed_scene_at_best_quality_scores_one():
    rng = np.random.default_rng(0)
    for _ in range(20):
        scene = W.random_scene(rng)
        same, kept = W.perturb(scene, 0, rng)
        assert same == scene and kept == 4 * len(scene)
        assert W.Spec(0).axes(kept / (4 * len(scene)), video=False)["gt"] == 1.0
        assert W.Spec(0).axes(1.0, video=True)["gt"] == 1.0
        # no defect draws exactly the rendered scene
        clean = np.asarray(W.render_scene(scene))
        assert np.array_equal(
            np.asarray(W.style_image(W.render_scene(scene, coherence=(None, 0)), (None, 0), rng)), clean
        )
        assert np.array_equal(np.asarray(W.degrade(W.render_scene(scene), 0, rng)), clean)


def test_perturb_changes_exactly_n_attributes():
    rng = np.random.default_rng(1)
    for _ in range(50):
        scene = W.random_scene(rng)
        n_err = int(rng.integers(0, 4 * len(scene) + 1))
        out, kept = W.perturb(scene, n_err, rng)
        assert kept == 4 * len(scene) - n_err
        changed = sum(
            getattr(g, a) != getattr(o, a) for g, o in zip(scene, out) for a in ("shape", "colour", "count", "position")
        )
        assert changed == n_err
        for g in out:
            assert g.shape in W.SHAPES and g.colour in W.COLOURS and g.count in (1, 2, 3) and g.position in W.POSITIONS
        assert len({g.position for g in out}) == len(out), "two groups must not share a position"


def test_image_generation_ground_truth_matches_the_candidates():
    """gt is 0.6 * alignment + 0.2 * coherence + 0.2 * style; a candidate without a style defect is
    drawn in the palette only; one without any defect and with every attribute kept is exactly the
    captioned scene; a coherence defect changes the drawing but not the palette."""
    seen = dict(perfect=0, wrong_clean=0, broken=0, styled=0)
    for i in range(25):
        p = W.make_image_generation(5, i, 6)
        scene = scene_of(p.row["meta"])
        assert p.row["prompt"] == W.caption(scene)
        axes = candidate_axes(p.row["meta"])
        reference = np.asarray(W.render_scene(scene))
        assert len(p.row["candidates"]) == 6
        for c in p.row["candidates"]:
            a = axes[c["id"]]
            assert 0.0 <= c["gt_score"] <= 1.0 and c["gt_score"] == overall(a)
            assert a["coherence"] == W.LEVEL_SCORES[a["defects"]["coherence"][1]]
            assert a["style"] == W.LEVEL_SCORES[a["defects"]["style"][1]]
            assert round(a["alignment"] * 4 * len(scene)) == pytest.approx(a["alignment"] * 4 * len(scene))
            img = decode_png(p.files[c["media"]])
            assert img.shape == (W.IMAGE_SIZE, W.IMAGE_SIZE, 3)
            palette_only = set(np.unique(pack_rgb(img)).tolist()) <= PALETTE_CODES
            assert palette_only == (a["style"] == 1.0), f"{c['id']}: {a} but palette only={palette_only}"
            if a["style"] < 1.0:
                seen["styled"] += 1
            elif a["coherence"] < 1.0:
                seen["broken"] += 1
                assert not np.array_equal(img, reference)
            else:
                matches = np.array_equal(img, reference)
                assert matches == (a["alignment"] == 1.0), f"{c['id']}: {a}, equal to the scene: {matches}"
                seen["perfect"] += matches
                seen["wrong_clean"] += not matches
    assert all(seen.values()), seen


def test_adjacent_pairs_differ_on_exactly_their_axis():
    """Each adjacent pair differs on the one axis named in meta["pairs"] (never a tie); a quality
    pair shows the same scene (its clean member is drawn like the other's scene)."""
    seen = set()
    for task, make in (("image_generation", W.make_image_generation), ("video_generation", W.make_video_generation)):
        names = W.IMAGE_AXES if task == "image_generation" else W.VIDEO_AXES
        for i in range(30 if task == "image_generation" else 12):
            p = make(11, i, 5)
            meta = json.loads(p.row["meta"])
            axes = candidate_axes(p.row["meta"])
            assert len(meta["pairs"]) == 3 and meta["pairs"][-1] is None  # 5 candidates: two pairs and a free one
            items = [it for it in W.items_from_pool(p.row) if it["mode"] == "pair_rank"]
            assert len(items) == 2
            for k, it in enumerate(items):
                a, b = (axes[c["id"]] for c in p.row["candidates"][2 * k : 2 * k + 2])
                differ = [n for n in names if a[n] != b[n]]
                assert differ == [meta["pairs"][k]] == [it["axis"]], (differ, meta["pairs"], it)
                assert it["label"] in ("first", "second")
                seen.add((task, it["axis"]))
                if it["axis"] != "alignment":
                    assert a["alignment"] == b["alignment"]
            for it in W.items_from_pool(p.row, "all"):
                if it["mode"] == "pair_rank":
                    assert it["axis"] in (None, "mixed", *names)
    assert seen == {("image_generation", a) for a in W.IMAGE_AXES} | {("video_generation", a) for a in W.VIDEO_AXES}


def test_understanding_pairs_name_what_decides_them():
    for make in (W.make_image_understanding, W.make_video_understanding):
        row = make(3, 0, 4).row
        for it in W.items_from_pool(row, "all"):
            if it["mode"] != "pair_rank":
                assert it["axis"] is None
                continue
            gts = set(it["gt_scores"])
            expected = None if len(gts) == 1 else "hallucination" if gts == {1.0, 0.5} else "correctness"
            assert it["axis"] == expected


def test_pools_without_candidate_axes_have_no_axis():
    row = W.make_image_generation(1, 0, 4).row
    row = dict(row, meta=json.dumps({"scene": json.loads(row["meta"])["scene"]}))
    assert all(it["axis"] is None for it in W.items_from_pool(row, "all"))


def test_video_generation_ground_truth_matches_the_candidates():
    seen_perfect = 0
    for i in range(6):
        p = W.make_video_generation(4, i, 4)
        motion = motion_of(p.row["meta"])
        assert p.row["prompt"] == motion.caption()
        axes = candidate_axes(p.row["meta"])
        reference = W.mp4(W.render_motion(motion, 0.0, np.random.default_rng(0)))
        for c in p.row["candidates"]:
            a = axes[c["id"]]
            assert 0.0 <= c["gt_score"] <= 1.0 and c["gt_score"] == overall(a)
            assert a["physics"] == W.LEVEL_SCORES[a["defects"]["physics"][1]]
            if c["gt_score"] == 1.0:
                assert p.files[c["media"]] == reference
                seen_perfect += 1
            else:
                assert p.files[c["media"]] != reference
    assert seen_perfect


def test_pair_label():
    assert W.pair_label(0.9, 0.1) == "first"
    assert W.pair_label(0.1, 0.9) == "second"
    assert W.pair_label(0.5, 0.5) == "tie"
    assert W.pair_label(0.5, 0.5 + 1e-12) == "tie"
    assert W.pair_label(0.5, 0.5001) == "second"
    assert W.pair_label(None, 0.5) is None and W.pair_label(0.5, None) is None


def test_pair_labels_agree_with_gt_scores(world):
    seen = set()
    for task in W.TASKS:
        gt_of = {}
        for row in read_parquet(world.pools[task]):
            for c in row["candidates"]:
                gt_of[(row["prompt_id"], c["media"] or c["text"])] = c["gt_score"]
        for row in read_parquet(world.pools[task]):
            for it in W.items_from_pool(row, "all"):
                expected_gts = [gt_of[(row["prompt_id"], ref)] for ref in it["candidates"]]
                assert it["gt_scores"] == expected_gts
                if it["mode"] == "pair_rank":
                    a, b = it["gt_scores"]
                    label = "tie" if a == b else ("first" if a > b else "second")
                    assert it["label"] == label == W.pair_label(a, b)
                    seen.add(label)
        for it in read_parquet(world.items[task]):
            if it["mode"] == "pair_rank":
                assert it["label"] == W.pair_label(*it["gt_scores"])
    assert seen == {"first", "second", "tie"}


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_items_from_pool_pair_counts(n):
    row = W.make_image_generation(1, 0, n).row
    ids = [c["id"] for c in row["candidates"]]
    adjacent = W.items_from_pool(row, "adjacent")
    pairs = [it for it in adjacent if it["mode"] == "pair_rank"]
    points = [it for it in adjacent if it["mode"] == "point_score"]
    assert len(pairs) == n // 2 and len(points) == n and len(adjacent) == n // 2 + n
    assert [it["item_id"] for it in pairs] == [f"{ids[k]}~{ids[k + 1]}" for k in range(0, n - 1, 2)]
    assert [it["item_id"] for it in points] == ids
    every = W.items_from_pool(row, "all")
    all_pairs = [it for it in every if it["mode"] == "pair_rank"]
    assert len(all_pairs) == n * (n - 1) // 2
    assert {it["item_id"] for it in all_pairs} == {f"{ids[a]}~{ids[b]}" for a in range(n) for b in range(a + 1, n)}
    assert len([it for it in every if it["mode"] == "point_score"]) == n
    for it in every:
        assert it["prompt"] == row["prompt"] and it["task"] == "image_generation" and it["context"] is None
        for ref in it["candidates"]:
            assert ref.startswith(f"media/image_generation/{row['prompt_id']}/")


def test_items_from_pool_understanding_uses_texts_and_context():
    row = W.make_image_understanding(1, 0, 4).row
    items = W.items_from_pool(row)
    texts = {c["text"] for c in row["candidates"]}
    for it in items:
        assert it["context"] == row["context"] and set(it["candidates"]) <= texts


@pytest.mark.parametrize("pairs", ["some", "", "ALL", None])
def test_items_from_pool_rejects_unknown_pairs(pairs):
    row = W.make_image_generation(1, 0, 4).row
    with pytest.raises(ValueError, match="pairs"):
        W.items_from_pool(row, pairs)


# ----------------------------------------------------------------------------------- understanding
def check_answer_scores(cands: list[dict]) -> tuple[str, str, list[str]]:
    scores = sorted(c["gt_score"] for c in cands)
    assert scores.count(1.0) == 1 and scores.count(0.5) == 1
    assert scores.count(0.0) == len(scores) - 2
    correct = next(c["text"] for c in cands if c["gt_score"] == 1.0)
    partial = next(c["text"] for c in cands if c["gt_score"] == 0.5)
    wrong = [c["text"] for c in cands if c["gt_score"] == 0.0]
    assert len({c["text"] for c in cands}) == len(cands), "answers must be distinct"
    return correct, partial, wrong


def find_group(scene: list[W.Group], **attrs) -> W.Group:
    found = [g for g in scene if all(getattr(g, k) == v for k, v in attrs.items())]
    assert len(found) == 1, f"question does not identify one group: {attrs} in {scene}"
    return found[0]


PHRASE_POSITION = {v: k for k, v in W.POSITION_PHRASE.items()}


def test_image_understanding_answers_are_correct_for_the_scene():
    kinds = set()
    for i in range(40):
        p = W.make_image_understanding(9, i, 4)
        meta = json.loads(p.row["meta"])
        scene, kind, q = scene_of(p.row["meta"]), meta["question_kind"], p.row["prompt"]
        kinds.add(kind)
        assert len(p.row["candidates"]) == 4
        correct, partial, wrong = check_answer_scores(p.row["candidates"])
        # the context image is the stored scene
        assert np.array_equal(decode_png(p.files[p.row["context"]]), np.asarray(W.render_scene(scene)))
        if kind == "count":
            m = re.fullmatch(r"How many (\w+) (\w+)s are in the image\?", q)
            assert m, q
            g = find_group(scene, colour=m[1], shape=m[2])
            a = re.fullmatch(r"There (is|are) (\w+) (\w+) (\w+)\.", correct)
            assert a, correct
            assert WORD_NUMBER[a[2]] == g.count and a[3] == g.colour
            assert (a[1] == "is") == (g.count == 1)
            for w in wrong:
                ww = re.fullmatch(r"There (?:is|are) (\w+) \w+ \w+\.", w)
                assert ww and WORD_NUMBER.get(ww[1], ww[1]) != g.count, w
        elif kind == "colour":
            m = re.fullmatch(r"What colour is the (\w+) (.+)\?", q)
            assert m, q
            g = find_group(scene, shape=m[1], position=PHRASE_POSITION[m[2]])
            assert correct == f"It is {g.colour}."
            assert all(w != correct and w.startswith("It is ") for w in wrong)
        elif kind == "position":
            m = re.fullmatch(r"Where is the (\w+) (\w+) in the image\?", q)
            assert m, q
            g = find_group(scene, colour=m[1], shape=m[2])
            a = re.fullmatch(r"It is (.+)\.", correct)
            assert a and PHRASE_POSITION[a[1]] == g.position
            assert all(PHRASE_POSITION[re.fullmatch(r"It is (.+)\.", w)[1]] != g.position for w in wrong)
        else:
            assert kind == "shape"
            m = re.fullmatch(r"What shape is the (\w+) object (.+)\?", q)
            assert m, q
            g = find_group(scene, colour=m[1], position=PHRASE_POSITION[m[2]])
            assert correct == f"It is a {g.shape}."
            assert all(re.fullmatch(r"It is a (\w+)\.", w)[1] != g.shape for w in wrong)
        # the half-right answer is the right one plus a false claim about a colour not in the scene
        assert partial.startswith(correct + " ")
        extra = re.fullmatch(r"There is also an? (\w+) (\w+) in the picture\.", partial[len(correct) + 1 :])
        assert extra, partial
        assert extra[1] in W.COLOURS and all(g.colour != extra[1] for g in scene)
    assert kinds == {"count", "colour", "position", "shape"}


def test_video_understanding_answers_are_correct_for_the_motion():
    kinds = set()
    for i in range(40):
        p = W.make_video_understanding(9, i, 4)
        meta = json.loads(p.row["meta"])
        m, kind = motion_of(p.row["meta"]), meta["question_kind"]
        kinds.add(kind)
        assert len(p.row["candidates"]) == 4
        correct, partial, wrong = check_answer_scores(p.row["candidates"])
        if kind == "direction":
            assert correct == f"It moves {m.direction}."
            assert all(re.fullmatch(r"It moves (\w+)\.", w)[1] != m.direction for w in wrong if "not" not in w)
        elif kind == "speed":
            assert correct == f"It moves {m.speed}."
            assert all(m.speed not in w for w in wrong)
        elif kind == "end_colour":
            assert correct == f"It is {m.end_colour or m.colour}."
            assert all(re.fullmatch(r"It is (\w+)\.", w)[1] != (m.end_colour or m.colour) for w in wrong)
        else:
            assert kind == "shape"
            assert correct == f"A {m.shape}."
            assert all(re.fullmatch(r"A (\w+)\.", w)[1] != m.shape for w in wrong)
        if kind in ("direction", "speed", "end_colour"):
            assert m.shape in p.row["prompt"]
        # the extra claim is false: it changes colour iff the video does not
        assert partial.startswith(correct + " ")
        claims_change = "changes colour" in partial
        assert claims_change == (m.end_colour is None)
        assert claims_change or "stays the same colour" in partial
    assert kinds == {"direction", "speed", "end_colour", "shape"}


@pytest.mark.parametrize("n", [2, 3, 5])
def test_understanding_gives_n_answers(n):
    for make in (W.make_image_understanding, W.make_video_understanding):
        for i in range(16):
            cands = make(0, i, n).row["candidates"]
            assert len(cands) == n
            assert sorted(c["gt_score"] for c in cands) == [0.0] * (n - 2) + [0.5, 1.0]


# ----------------------------------------------------------------------------------- rendering
@pytest.mark.parametrize(
    "position,third",
    [("left", (0, None)), ("right", (2, None)), ("top", (None, 0)), ("bottom", (None, 2)), ("center", (1, 1))],
)
def test_render_scene_places_the_group_in_its_third(position, third):
    size = W.IMAGE_SIZE
    arr = np.asarray(W.render_scene([W.Group("circle", "red", 1, position)]))
    assert arr.shape == (size, size, 3)
    red = colour_mask(arr, "red")
    assert red.sum() > 100
    ys, xs = np.nonzero(red)
    col, row = third
    if col is not None:
        assert xs.min() >= col * size / 3 and xs.max() < (col + 1) * size / 3
    if row is not None:
        assert ys.min() >= row * size / 3 and ys.max() < (row + 1) * size / 3
    # nothing else is drawn: every pixel is background or the red of the circle
    assert np.all(red | np.all(arr == BACKGROUND, axis=-1))


def test_single_red_circle_on_the_left():
    arr = np.asarray(W.render_scene([W.Group("circle", "red", 1, "left")]))
    red = colour_mask(arr, "red")
    third = W.IMAGE_SIZE // 3
    assert red[:, :third].sum() > 100
    assert red[:, third + 1 :].sum() == 0
    assert colour_mask(arr, "blue").sum() == 0


# the part of the canvas each position phrase names: (x0, y0, x1, y1) as fractions
THIRDS = {
    "left": (0, 0, 1 / 3, 1),
    "right": (2 / 3, 0, 1, 1),
    "top": (0, 0, 1, 1 / 3),
    "bottom": (0, 2 / 3, 1, 1),
    "center": (1 / 3, 1 / 3, 2 / 3, 2 / 3),
}


def test_render_scene_draws_each_group_in_its_colour():
    rng = np.random.default_rng(4)
    for _ in range(30):
        scene = W.random_scene(rng)
        arr = np.asarray(W.render_scene(scene))
        for g in scene:
            x0, y0, x1, y1 = (int(round(v * W.IMAGE_SIZE)) for v in THIRDS[g.position])
            mask = colour_mask(arr, g.colour)
            assert mask[y0:y1, x0:x1].sum() > 50, (g, scene)
        drawn = {c for c in W.COLOURS if colour_mask(arr, c).sum() > 0}
        assert drawn == {g.colour for g in scene}


@pytest.mark.parametrize("position", ["left", "right", "top", "bottom"])
@pytest.mark.parametrize("shape", W.SHAPES)
def test_render_scene_draws_count_separate_shapes(position, shape):
    for count in (1, 2, 3):
        arr = np.asarray(W.render_scene([W.Group(shape, "blue", count, position)]))
        assert components(colour_mask(arr, "blue")) == count, (shape, count, position)


@pytest.mark.parametrize("shape", W.SHAPES)
def test_render_scene_draws_count_separate_shapes_in_the_center(shape):
    for count in (1, 2, 3):
        arr = np.asarray(W.render_scene([W.Group(shape, "blue", count, "center")]))
        assert components(colour_mask(arr, "blue")) == count, (shape, count)


def group_mask(g: W.Group) -> np.ndarray:
    return foreground(np.asarray(W.render_scene([g])))


@pytest.mark.parametrize(
    "a,b",
    [
        ("left", "right"),
        ("top", "bottom"),
        ("left", "center"),
        ("right", "center"),
        ("top", "center"),
        ("bottom", "center"),
    ],
)
def test_groups_at_opposite_positions_never_overlap(a, b):
    for ca in (1, 2, 3):
        for cb in (1, 2, 3):
            overlap = group_mask(W.Group("circle", "red", ca, a)) & group_mask(W.Group("square", "blue", cb, b))
            assert not overlap.any(), (a, ca, b, cb)


@pytest.mark.parametrize("a,b", [("left", "top"), ("left", "bottom"), ("right", "top"), ("right", "bottom")])
def test_groups_at_perpendicular_positions_never_overlap(a, b):
    # both positions can occur together in a perturbed scene
    scene = [W.Group("circle", "red", 3, a), W.Group("square", "blue", 3, b)]
    rng = np.random.default_rng(0)
    reachable = False
    for _ in range(200):
        out, _ = W.perturb(
            [W.Group("circle", "red", 3, a), W.Group("square", "blue", 3, "right" if a == "left" else "left")], 1, rng
        )
        reachable |= {g.position for g in out} == {a, b}
    assert reachable, "perturb should be able to produce this pair of positions"
    overlap = group_mask(scene[0]) & group_mask(scene[1])
    assert not overlap.any(), f"{overlap.sum()} pixels drawn by both groups"
    arr = np.asarray(W.render_scene(scene))
    assert components(colour_mask(arr, "red")) == 3 and components(colour_mask(arr, "blue")) == 3


def test_degrade_levels():
    rng = np.random.default_rng(0)
    img = W.render_scene([W.Group("square", "green", 2, "top")])
    ref = np.asarray(img).astype(float)
    errs = []
    for level in range(len(W.QUALITY_LEVELS)):
        out = np.asarray(W.degrade(img, level, rng)).astype(float)
        assert out.shape == ref.shape
        errs.append(np.abs(out - ref).mean())
    assert errs[0] == 0.0 and 0 < errs[1] < errs[2]


def motion_frames(direction: str, speed: str = "quickly", **kw) -> list[np.ndarray]:
    return W.render_motion(W.Motion("circle", "red", direction, speed, **kw), 0.0, np.random.default_rng(0))


@pytest.mark.parametrize("direction,axis,sign", [("right", 0, 1), ("left", 0, -1), ("down", 1, 1), ("up", 1, -1)])
def test_render_motion_moves_in_its_direction(direction, axis, sign):
    frames = motion_frames(direction)
    assert len(frames) == W.VIDEO_FRAMES
    assert frames[0].shape == (W.VIDEO_SIZE, W.VIDEO_SIZE, 3) and frames[0].dtype == np.uint8
    cs = np.array([centroid(f) for f in frames])
    steps = np.diff(cs[:, axis]) * sign
    assert np.all(steps > 0), cs[:, axis]
    assert np.ptp(cs[:, 1 - axis]) < 1.0  # no drift along the other axis


def test_quickly_travels_further_than_slowly():
    def travel(speed):
        cs = [centroid(f) for f in motion_frames("right", speed)]
        return cs[-1][0] - cs[0][0]

    slow, fast = travel("slowly"), travel("quickly")
    assert 0 < slow < fast
    assert fast / slow == pytest.approx(W.SPEEDS["quickly"] / W.SPEEDS["slowly"], rel=0.1)


def test_render_motion_changes_colour_towards_the_end_colour():
    frames = motion_frames("up", "slowly", end_colour="blue")

    def object_colour(frame):
        return frame[foreground(frame)].astype(float).mean(axis=0)

    assert np.abs(object_colour(frames[0]) - W.COLOURS["red"]).max() < 3
    assert np.abs(object_colour(frames[-1]) - W.COLOURS["blue"]).max() < 3
    steady = motion_frames("up", "slowly")
    assert np.abs(object_colour(steady[-1]) - W.COLOURS["red"]).max() < 3
    # decoded from mp4 the end colour survives (within codec tolerance)
    video = load_video(W.mp4(frames))
    last = np.asarray(video.frames[-1])
    assert np.abs(object_colour(last) - W.COLOURS["blue"]).max() < 40


def test_flicker_perturbs_frames_but_not_the_motion():
    m = W.Motion("square", "green", "left", "quickly")
    clean = W.render_motion(m, 0.0, np.random.default_rng(0))
    noisy = W.render_motion(m, 0.35, np.random.default_rng(0))
    assert not np.array_equal(clean[0], noisy[0])
    assert np.abs(noisy[0].astype(float) - clean[0]).mean() > 5


@pytest.mark.parametrize("physics", [(k, lv) for k in W.DEFECTS["physics"] for lv in (1, 2)])
def test_physics_defects_keep_the_direction(physics):
    for direction, axis, sign in (("right", 0, 1), ("up", 1, -1)):
        m = W.Motion("circle", "red", direction, "quickly")
        clean = W.render_motion(m, 0.0, np.random.default_rng(0))
        broken = W.render_motion(m, 0.0, np.random.default_rng(0), physics=physics)
        assert any(not np.array_equal(a, b) for a, b in zip(clean, broken))
        cs = np.array([centroid(f) for f in broken])
        assert (cs[-1, axis] - cs[0, axis]) * sign > 30, cs
        steps = np.abs(np.diff(np.array([centroid(f) for f in clean]), axis=0))
        jumps = np.abs(np.diff(cs, axis=0))
        assert jumps.max() > steps.max() + 1.5  # visible: a frame-to-frame move no clean clip makes


@pytest.mark.parametrize("style", [(k, lv) for k in W.DEFECTS["image_style"] for lv in (1, 2)])
def test_style_defects_keep_the_colours_apart(style):
    """A style defect changes the whole image, but each object stays nearest its own colour among
    the palette seen through the same defect."""
    scene = [W.Group("circle", "yellow", 1, "left"), W.Group("square", "orange", 1, "right")]
    clean = np.asarray(W.render_scene(scene)).astype(float)
    out = np.asarray(W.style_image(W.render_scene(scene), style, np.random.default_rng(1))).astype(float)
    assert np.abs(out - clean).mean() > 3
    if style[0] == "blur":
        return
    # the same defect applied to flat swatches of every palette colour
    swatches = {
        c: np.asarray(W.style_image(Image.new("RGB", (4, 4), v), style, np.random.default_rng(1)))[0, 0]
        for c, v in W.COLOURS.items()
    }
    for g, x in zip(scene, (W.IMAGE_SIZE // 6, 5 * W.IMAGE_SIZE // 6)):
        pixel = out[W.IMAGE_SIZE // 2, x]
        assert min(swatches, key=lambda c: np.abs(swatches[c] - pixel).sum()) == g.colour


@pytest.mark.parametrize("coherence", [(k, lv) for k in W.DEFECTS["coherence"] for lv in (1, 2)])
def test_coherence_defects_break_every_shape(coherence):
    scene = [W.Group("square", "blue", 2, "left")]
    clean = np.asarray(W.render_scene(scene))
    out = np.asarray(W.render_scene(scene, coherence=coherence, rng=np.random.default_rng(0)))
    assert set(np.unique(pack_rgb(out)).tolist()) <= PALETTE_CODES
    changed = np.any(out != clean, axis=-1)
    for _, fy in W._LAYOUT["left"](2):  # each shape's row band has changed pixels
        y = int(fy * W.IMAGE_SIZE)
        assert changed[y - 8 : y + 8].sum() > 10


# ----------------------------------------------------------------------------------- video files
def test_world_videos_decode_to_eight_frames(world):
    n = 0
    for rel in media_tree(world.root):
        if rel.endswith(".mp4"):
            v = load_video(str(Path(world.root) / rel))
            assert len(v.frames) == 8 and v.total_frames == W.VIDEO_FRAMES
            assert v.frames[0].size == (W.VIDEO_SIZE, W.VIDEO_SIZE)
            assert v.source_fps == pytest.approx(W.VIDEO_FPS)
            n += 1
    assert n == 2 * 4 + 2


def expected_direction(cs: np.ndarray) -> str:
    dx, dy = cs[-1] - cs[0]
    if abs(dx) > abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def test_mp4_round_trips_the_motion(world):
    # the stored contexts of the session world
    for row in read_parquet(world.pools["video_understanding"]):
        m = motion_of(row["meta"])
        v = load_video(resolve_media(row["context"], schema.parent(world.pools["video_understanding"])))
        cs = np.array([centroid(f) for f in v.frames])
        assert expected_direction(cs) == m.direction
    # every direction and speed, through the encoder and decoder
    travel = {}
    for direction in W.DIRECTIONS:
        for speed in W.SPEEDS:
            v = load_video(W.mp4(motion_frames(direction, speed)))
            assert len(v.frames) == 8
            cs = np.array([centroid(f) for f in v.frames])
            assert expected_direction(cs) == direction, (direction, speed, cs)
            travel[direction, speed] = np.abs(cs[-1] - cs[0]).max()
    for direction in W.DIRECTIONS:
        assert travel[direction, "quickly"] > 1.5 * travel[direction, "slowly"]


# ----------------------------------------------------------------------------------- corruption
def test_corrupt_world_lists_four_damaged_files_per_task(damaged):
    listed = json.loads(Path(damaged.root, "world.json").read_text())["corrupted"]
    assert listed == damaged.corrupted
    assert len(listed) == 4 * len(W.TASKS)
    for task in W.TASKS:
        mine = [c for c in listed if c["task"] == task]
        assert len(mine) == 4 and len({c["file"] for c in mine}) == 4
        assert {c["corruption"] for c in mine} == set(W.CORRUPTIONS)
        assert all(c["file"].startswith(f"media/{task}/") for c in mine)
        # damaged files stay referenced by the rows, so a judge meets them
        rows = read_parquet(damaged.pools[task])
        refs = {r["context"] for r in rows} | {c["media"] for r in rows for c in r["candidates"]}
        assert {c["file"] for c in mine} <= refs


def test_damaged_files_fail_with_the_right_code_and_others_load(damaged):
    bad = {}
    for c in damaged.corrupted:
        path = str(Path(damaged.root) / c["file"])
        if c["corruption"] == "missing":
            assert not os.path.exists(path)
        elif c["corruption"] == "zero_bytes":
            assert os.path.getsize(path) == 0
        with pytest.raises(MediaError) as e:
            loader(path)(path)
        assert e.value.code == EXPECTED_CODE[c["corruption"]], (c, e.value)
        bad[c["file"]] = c
    good = 0
    for task in W.TASKS:
        base = schema.parent(damaged.pools[task])
        for row in read_parquet(damaged.pools[task]):
            refs = [row["context"]] if row["context"] else [c["media"] for c in row["candidates"]]
            for ref in refs:
                if ref in bad:
                    continue
                out = loader(ref)(resolve_media(ref, base))
                if ref.endswith(".png"):
                    assert out.size == (W.IMAGE_SIZE, W.IMAGE_SIZE)
                else:
                    assert len(out.frames) == 8
                good += 1
    assert good == 4 * (4 + 1 + 4 + 1) - 16


def test_corrupt_is_capped_by_the_number_of_files(tmp_path):
    s = W.generate_world(
        str(tmp_path / "w"), n=1, seed=0, n_candidates=2, corrupt=9, tasks=("image_understanding", "image_generation")
    )
    per_task = {t: [c for c in s.corrupted if c["task"] == t] for t in s.pools}
    assert len(per_task["image_understanding"]) == 1 and len(per_task["image_generation"]) == 2


def test_corrupt_bytes():
    data = bytes(range(256)) * 3
    assert W.corrupt_bytes(data, "zero_bytes") == b""
    assert W.corrupt_bytes(data, "missing") is None
    t = W.corrupt_bytes(data, "truncated")
    assert 0 < len(t) < len(data) and data.startswith(t)
    assert W.corrupt_bytes(b"x", "truncated") == b"x"
    g = W.corrupt_bytes(data, "garbage")
    assert g and g != data
    with pytest.raises(ValueError):
        W.corrupt_bytes(data, "flipped")


# ----------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n=0),
        dict(n=-3),
        dict(n_candidates=1),
        dict(n_candidates=0),
        dict(tasks=("image_generation", "sound_generation")),
        dict(tasks=("nope",)),
    ],
)
def test_generate_world_validates_arguments(tmp_path, kwargs):
    out = tmp_path / "w"
    with pytest.raises(ValueError):
        W.generate_world(str(out), **kwargs)
    assert not out.exists(), "nothing may be written for invalid arguments"


def test_generate_world_subset_of_tasks_and_progress(tmp_path):
    calls = []
    s = W.generate_world(
        str(tmp_path / "w"),
        n=3,
        seed=1,
        n_candidates=3,
        tasks=("image_understanding",),
        progress=lambda t, i, n: calls.append((t, i, n)),
    )
    assert list(s.pools) == ["image_understanding"] and list(s.items) == ["image_understanding"]
    assert calls == [("image_understanding", i, 3) for i in (1, 2, 3)]
    assert sorted(os.listdir(tmp_path / "w" / "media")) == ["image_understanding"]
    rows = read_parquet(s.pools["image_understanding"])
    assert len(rows) == 3 and all(len(r["candidates"]) == 3 for r in rows)
    items = read_parquet(s.items["image_understanding"])
    assert len(items) == 3 * (1 + 3)


def test_generate_world_all_pairs(tmp_path):
    s = W.generate_world(str(tmp_path / "w"), n=1, seed=1, n_candidates=4, tasks=("image_generation",), pairs="all")
    items = read_parquet(s.items["image_generation"])
    assert sum(it["mode"] == "pair_rank" for it in items) == 6


# ----------------------------------------------------------------------------------- s3
@pytest.mark.slow
def test_world_on_s3(s3_env, tmp_path):
    tasks = ("image_generation", "video_understanding")
    remote = W.generate_world(s3_env, n=2, seed=6, n_candidates=3, tasks=tasks, corrupt=1)
    local = W.generate_world(str(tmp_path / "w"), n=2, seed=6, n_candidates=3, tasks=tasks, corrupt=1)
    assert remote.corrupted == local.corrupted
    summary = json.loads(storage.read_bytes(storage.join(s3_env, "world.json")))
    assert summary["pools"] == remote.pools and summary["root"] == s3_env
    bad = {c["file"] for c in remote.corrupted}
    for task in tasks:
        assert remote.items[task].startswith("s3://")
        items = read_parquet(remote.items[task])
        assert items == read_parquet(local.items[task]) and items
        assert read_parquet(remote.pools[task]) == read_parquet(local.pools[task])
        base = schema.parent(remote.items[task])
        assert base.startswith("s3://")
        for it in items:
            refs = [it["context"]] if it["context"] else list(it["candidates"])
            for ref in refs:
                uri = resolve_media(ref, base)
                assert uri.startswith("s3://")
                local_path = Path(tmp_path / "w" / ref)
                if ref in bad:
                    assert storage.exists(uri) == local_path.exists()
                    continue
                assert storage.read_bytes(uri) == local_path.read_bytes()
        # media load straight from S3
        row = items[0]
        ref = row["context"] or row["candidates"][0]
        if ref not in bad:
            out = loader(ref)(resolve_media(ref, base))
            if ref.endswith(".png"):
                assert out.size == (W.IMAGE_SIZE, W.IMAGE_SIZE)
            else:
                assert len(out.frames) == 8


def test_too_many_understanding_candidates_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at most 5 distinct answers"):
        W.generate_world(str(tmp_path / "w"), n=1, n_candidates=6)
    # generation pools may be larger
    s = W.generate_world(str(tmp_path / "g"), n=1, n_candidates=6, tasks=("image_generation",))
    assert len(W.schema.read_parquet(s.pools["image_generation"])[0]["candidates"]) == 6
