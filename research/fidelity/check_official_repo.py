"""Checks a profile imported from the real official repository against the official scripts: for
every script of the importer's map, the text CPython makes of the script's own prompt expression
(evaluated with test values for its variables) and the input the official preprocessing builds
(tests/upstream_reference.py) against what unireward builds through the profile: input_ids,
pixels, grids and second_per_grid_ts must be equal.

usage (from the repository root, after cloning github.com/CodeGoat24/UnifiedReward to DIR):
    .venv/bin/python research/fidelity/check_official_repo.py DIR [OUT.json]
"""

import ast
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from unireward.io.media import encode_video
from unireward.judge.model import RewardModel
from unireward.judge.types import JudgeItem, Mode
from unireward.judge.upstream import dump_profile, import_upstream, upstream_map
from unireward.models.tiny import build_tiny_judge
from upstream_reference import official_inputs

VALUES = dict(
    prompt="a red fox in the snow",
    Query="What colour is the fox?",
    R1="It is red.",
    R2="It is blue.",
    Response="It is red.",
)


def official_text(source: str) -> str:
    """CPython's own evaluation of the script's prompt expression, with VALUES for its variables."""
    tree = ast.parse(source)
    assigns = {
        t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
    }
    expr = None
    for n in tree.body:
        for sub in ast.walk(n):
            if isinstance(sub, ast.Dict):
                kv = {k.value: v for k, v in zip(sub.keys, sub.values) if isinstance(k, ast.Constant)}
                if getattr(kv.get("type"), "value", None) == "text" and "text" in kv:
                    expr = kv["text"]
                    break
        if expr is not None:
            break
    if isinstance(expr, ast.Name):
        expr = assigns[expr.id]
    if expr is None:
        expr = next(assigns[v] for v in ("problem", "prompt_text", "question") if v in assigns)
    code = compile(ast.Expression(expr), "<prompt>", "eval")
    return eval(code, {"len": len}, dict(VALUES, images=[]))


def main(root: str, out: str | None = None) -> None:
    work = Path(tempfile.mkdtemp())
    spec = upstream_map()
    profile = work / "profile.yaml"
    report = import_upstream(root)
    profile.write_text(dump_profile(report.profile))
    judges = {
        a: RewardModel(build_tiny_judge(work / a, arch=a, size="nano"), protocols=profile, device="cpu")
        for a in ("qwen2_5_vl", "qwen3_vl")
    }
    rng = np.random.default_rng(0)
    img = [str(work / f"{w}x{h}.png") for w, h in ((640, 480), (2400, 1800))]
    for p, (w, h) in zip(img, ((640, 480), (2400, 1800))):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(p)
    vid = []
    for name, n, fps, (w, h) in (("a", 120, 24, (320, 240)), ("b", 13, 8, (96, 64))):
        frames = [np.full((h, w, 3), (9 * k) % 255, dtype=np.uint8) for k in range(n)]
        (work / f"{name}.mp4").write_bytes(encode_video(frames, fps=fps))
        vid.append(str(work / f"{name}.mp4"))
    results = []
    for gkey, gen in spec["generations"].items():
        rm = judges["qwen3_vl" if gkey in ("2.0", "think-qwen3") else "qwen2_5_vl"]
        media = gen["media"]
        for script in gen["scripts"]:
            row = dict(generation=gkey, script=script["path"], task=script["task"], mode=script["mode"])
            results.append(row)
            src = Path(root) / script["path"]
            try:
                text = official_text(src.read_text())
            except SyntaxError as e:
                row.update(result="skipped", reason=f"the official script is not valid Python ({e.msg})")
                continue
            for token in gen.get("strip_visual_tokens", []):
                text = re.sub(rf"^(?:\s*{re.escape(token)}\s*)+", "", text)
            kind = "video" if "video" in script["task"] else "image"
            pair = Mode(script["mode"]).is_pair
            vis = vid if kind == "video" else img
            if script["task"].endswith("generation"):
                item = JudgeItem(script["task"], VALUES["prompt"], vis[: 2 if pair else 1], mode=script["mode"])
                visuals = list(item.candidates)
            else:
                answers = [VALUES["R1"], VALUES["R2"]] if pair else [VALUES["Response"]]
                item = JudgeItem(script["task"], VALUES["Query"], answers, context=vis[0], mode=script["mode"])
                visuals = [vis[0]]
            protocol = rm.protocols.get(gen["family"], script["task"], script["mode"])
            ours = rm.encode_item(item, protocol)
            m = {**media, **script.get("media", {})}
            if m["video_mode"] == "qwen":
                ref = official_inputs(rm.processor, kind, text, visuals, "qwen")
            else:
                rule = "trunc" if m["frame_index"] == "linspace_trunc" else m["frame_index"]
                frames = dict(
                    n=m["num_frames"],
                    rule=rule,
                    size=tuple(m["frame_size"]) if m.get("frame_size") else None,
                    quality=m.get("jpeg_quality"),
                )
                ref = official_inputs(rm.processor, kind, text, visuals, "client", frames, m.get("jpeg_quality"))
            same = {
                "text": protocol.render(item) == text,
                "input_ids": torch.equal(ours["input_ids"], ref["input_ids"]),
            }
            for key in ("pixel_values", "pixel_values_videos", "image_grid_thw", "video_grid_thw"):
                if key in ref or key in ours:
                    same[key] = key in ref and key in ours and torch.equal(ours[key], ref[key])
            if "second_per_grid_ts" in ref:
                same["second_per_grid_ts"] = torch.allclose(
                    torch.as_tensor(ours["second_per_grid_ts"]), torch.as_tensor(ref["second_per_grid_ts"])
                )
            row.update(
                result="equal" if all(same.values()) else "DIFFERENT",
                checks=same,
                tokens=int(ours["input_ids"].shape[1]),
            )
    summary = dict(
        repository_commit=report.profile["profile"]["source"]["commit"],
        equal=sum(r["result"] == "equal" for r in results),
        cases=len(results),
        results=results,
    )
    text = json.dumps(summary, indent=2)
    print(text)
    if out:
        Path(out).write_text(text + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
