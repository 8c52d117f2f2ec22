"""``unireward protocols``: the protocol registry and checkpoint profiles (list, show, import the
official scripts of the released checkpoints, check what a judge reads under a profile)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from .console import fail, quiet_libraries

app = typer.Typer(
    help="Protocols and checkpoint profiles: list them, import the official ones, check the inputs.",
    invoke_without_command=True,
)


@app.callback()
def list_protocols(
    ctx: typer.Context,
    family: Optional[str] = typer.Option(None, help="only this family"),
    show: Optional[str] = typer.Option(None, help="print one protocol in full, e.g. qwen/image_generation/pair_rank"),
    overrides: Optional[Path] = typer.Option(
        None, "--overrides", "--protocols", help="a profile or YAML file overriding protocols"
    ),
) -> None:
    """List the protocol registry (prompt templates, verdict phrases, score scales), or run a subcommand."""
    if ctx.invoked_subcommand is not None:
        return
    from .judge.protocols import ProtocolError, default_registry

    try:
        reg = default_registry().with_overrides(overrides)
    except ProtocolError as e:
        fail(str(e))
    if show and show not in {p.id for p in reg}:
        fail(f"no protocol {show!r}; `unireward protocols` lists them")
    for p in reg:
        if (family and p.family != family) or (show and p.id != show):
            continue
        answer = dict(p.verdicts) if p.verdicts else [f"{s.marker} {s.low}-{s.high}" for s in p.scales]
        if show:
            typer.echo(
                json.dumps(
                    dict(
                        id=p.id,
                        digest=p.digest,
                        template=p.template,
                        answers=answer,
                        answer_prefix=p.answer_prefix,
                        labels=p.labels,
                        max_new_tokens=p.max_new_tokens,
                        reasons=p.reasons,
                        think=p.think_template,
                        media=dict(p.media),
                    ),
                    indent=2,
                )
            )
        else:
            typer.echo(f"{p.id:52s} {p.digest}  {answer}")


@app.command("import-upstream")
def import_upstream_cmd(
    checkout: Path = typer.Argument(..., metavar="DIR", help="a local clone of github.com/CodeGoat24/UnifiedReward"),
    out: Path = typer.Option(..., "--out", help="the profile to write (YAML)"),
    generation: Optional[list[str]] = typer.Option(
        None, help="only these: 1.x-qwen, 1.x-llava, 2.0, think-qwen, think-qwen3 (default: all)"
    ),
) -> None:
    """Write a checkpoint profile from the official inference scripts of a local checkout: their prompt
    text (read from the source, never run), media sampling, decoding budgets and answer formats."""
    from .judge.protocols import ProtocolError, ProtocolRegistry
    from .judge.upstream import UpstreamError, dump_profile, import_upstream

    try:
        report = import_upstream(checkout, generation)
    except UpstreamError as e:
        fail(str(e))
    text = dump_profile(report.profile)
    try:  # what is written must load as a profile
        import yaml

        ProtocolRegistry.from_mapping(yaml.safe_load(text), str(out))
    except ProtocolError as e:  # pragma: no cover - the importer writes valid protocols
        fail(f"the imported profile does not validate: {e}", code=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    for line in report.lines():
        typer.echo(line, err=True)
    typer.echo(
        json.dumps(
            dict(
                profile=str(out),
                families=sorted(report.profile["families"]),
                imported=len(report.found),
                missing=len(report.missing),
            ),
            indent=2,
        )
    )


@app.command("check")
def check_cmd(
    profile: Path = typer.Argument(..., metavar="PROFILE", help="a checkpoint profile (or protocols YAML)"),
    model: str = typer.Option(..., help="the judge checkpoint whose processor renders the inputs"),
    family: Optional[str] = typer.Option(None, help="the family to check (default: the profile's)"),
    image: Optional[str] = typer.Option(None, help="an image to use for every visual (default: a synthetic one)"),
    video: Optional[str] = typer.Option(None, help="a video to use for every video (default: a synthetic one)"),
    as_json: bool = typer.Option(False, "--json", help="print the inputs as JSON"),
) -> None:
    """Print, per (task, mode), the input the judge builds under a profile: the text with visual-token
    counts, grid shapes, frame indices and second_per_grid_ts, to diff against your own reference."""
    quiet_libraries()
    from .judge.model import RewardModel
    from .judge.protocols import ProtocolError

    try:
        rm = RewardModel(model, protocols=profile, family=family, device="cpu")
    except (OSError, ValueError, ProtocolError) as e:
        fail(f"cannot load the judge {model!r} with {profile}: {e}")
    rows = []
    for protocol in rm.protocols:
        if protocol.family != rm.family:
            continue
        rows.append(_check_one(rm, protocol, image, video))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"== {r['protocol']}  (digest {r['digest']}, budget {r['max_new_tokens']} new tokens)")
        if "error" in r:
            typer.echo(f"   cannot render: {r['error']}")
            continue
        typer.echo(
            f"   {r['tokens']} tokens ({r['visual_tokens']} visual); "
            + "; ".join(f"{k} {v}" for k, v in r["visuals"].items())
        )
        for line in r["text"].splitlines() or [""]:
            typer.echo(f"   | {line}")


def _examples(image: str | None, video: str | None) -> tuple[Any, Any]:
    """The visuals a check renders with: the given files, else a synthetic 640x480 scene and a
    3-second 24 fps clip."""
    import numpy as np

    from .io.media import encode_video
    from .synth import world

    img = image
    if img is None:
        scene = world.random_scene(np.random.default_rng(0))
        img = world.render_scene(scene, 480).resize((640, 480))
    vid = video
    if vid is None:
        motion = world.random_motion(np.random.default_rng(0))
        vid = encode_video(world.render_motion(motion, 0.0, np.random.default_rng(0), size=96, n_frames=72), fps=24)
    return img, vid


def _check_one(rm, protocol, image: str | None, video: str | None) -> dict[str, Any]:
    from .io.media import Video, load_media
    from .judge.types import JudgeItem, Mode, Task

    img, vid = _examples(image, video)
    task = protocol.task
    visual = vid if task.media_kind == "video" else img
    n = protocol.mode.n_candidates
    if task.is_generation:
        item = JudgeItem(
            task,
            "two red circles on the left",
            [visual] * n,
            mode=protocol.mode,
            context=img if task.has_context else None,
        )
    else:
        answers = ["It is red.", "It is blue."][:n]
        item = JudgeItem(task, "What colour is the circle?", answers, context=visual, mode=protocol.mode)
    row: dict[str, Any] = dict(
        protocol=protocol.id, digest=protocol.digest, max_new_tokens=protocol.budget(rm.max_new_tokens)
    )
    try:
        enc = rm.encode_item(item, protocol)
    except Exception as e:
        row["error"] = f"{type(e).__name__}: {e}"
        return row
    ids = enc["input_ids"][0].tolist()
    pads = {rm.model.config.image_token_id: "<|image_pad|>", rm.model.config.video_token_id: "<|video_pad|>"}
    text, run = [], None
    for t in ids + [None]:
        if run is not None and t == run[0]:
            run[1] += 1
            continue
        if run is not None:
            text.append(f"{pads[run[0]]}x{run[1]}")
            run = None
        if t in pads:
            run = [t, 1]
        elif t is not None:
            text.append(rm.tokenizer.decode([t], skip_special_tokens=False))
    visuals: dict[str, Any] = {}
    for key in ("image_grid_thw", "video_grid_thw", "second_per_grid_ts"):
        if key in enc:
            v = enc[key]
            visuals[key] = v.tolist() if hasattr(v, "tolist") else list(v)
    if Task(item.task).media_kind == "video":
        loaded = load_media(visual, "video", rm.media_limits(protocol))
        if isinstance(loaded, Video):
            visuals["frames"] = dict(
                indices=loaded.indices,
                of=loaded.total_frames,
                sent_as="images" if loaded.as_images else "video",
                size=list(loaded.frames[0].size),
            )
    row.update(tokens=len(ids), visual_tokens=sum(t in pads for t in ids), visuals=visuals, text="".join(text))
    if protocol.mode is Mode.PAIR_SCORE:
        row["labels"] = list(protocol.labels or ())
    return row
