"""Image editing in the synthetic world: a source scene, an instruction that changes one thing, and
N edited candidates with ground truth.

Instructions recolour a group, move it, change how many shapes it has, reshape it, or remove it.
Each candidate is the source with an edit applied and maybe a degradation:

- the requested edit, and nothing else (instruction following 1.0);
- the requested edit and an unrequested change too (over-editing, 0.5);
- a different edit of the same group (the instruction misread, 0.0);
- no edit at all (0.0);
and a quality level (clean, blurred, noisy). Ground truth: 0.75 * instruction following + 0.25 *
quality, the same weighting as generation candidates.

A pure function of (seed, index): regenerating gives identical rows and media bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from .world import (
    COLOURS,
    POSITIONS,
    QUALITY_LEVELS,
    SHAPES,
    Group,
    Prompt,
    _plural,
    degrade,
    png,
    random_scene,
    render_scene,
)

TASK = "image_editing"
EDITS = ("recolour", "move", "count", "reshape", "remove")
NUMBER = {1: "one", 2: "two", 3: "three"}


def _name(g: Group) -> str:
    return f"{g.colour} {_plural(g.shape, g.count)}"


def _apply(groups: list[Group], kind: str, gi: int, rng: np.random.Generator) -> tuple[list[Group], str]:
    """The scene with edit ``kind`` applied to group ``gi``, and the instruction that asks for it."""
    g = groups[gi]
    out = list(groups)
    if kind == "recolour":
        c = str(rng.choice([c for c in COLOURS if all(x.colour != c for x in groups)]))
        out[gi] = replace(g, colour=c)
        return out, f"make the {_name(g)} {c}"
    if kind == "move":
        taken = {x.position for x in groups}
        p = str(rng.choice([p for p in POSITIONS if p not in taken]))
        out[gi] = replace(g, position=p)
        return out, f"move the {_name(g)} to the {'centre' if p == 'center' else p}"
    if kind == "count":
        n = int(rng.choice([k for k in (1, 2, 3) if k != g.count]))
        out[gi] = replace(g, count=n)
        return out, f"make the {_name(g)} {NUMBER[n]} {g.colour} {_plural(g.shape, n)}"
    if kind == "reshape":
        s = str(rng.choice([s for s in SHAPES if all(x.shape != s for x in groups)]))
        out[gi] = replace(g, shape=s)
        return out, f"turn the {_name(g)} into {_plural(s, g.count)}"
    if len(groups) < 2:  # removing the only group leaves nothing to compare: recolour instead
        return _apply(groups, "recolour", gi, rng)
    del out[gi]
    return out, f"remove the {_name(g)}"


def _over(target: list[Group], kind: str, gi: int | None, rng: np.random.Generator) -> list[Group]:
    """The edited scene with one more, unrequested change: another group recoloured, or (a scene of
    one group) another attribute of the edited group."""
    others = [k for k in range(len(target)) if k != gi]
    if others:
        return _apply(target, "recolour", int(rng.choice(others)), rng)[0]
    return _apply(target, "reshape" if kind != "reshape" else "recolour", gi or 0, rng)[0]


def make_image_editing(seed: int, i: int, n: int) -> Prompt:
    rng = np.random.default_rng([seed, 4, i])
    source = random_scene(rng)
    pid = f"ie-{i:05d}"
    gi = int(rng.integers(len(source)))
    kind = str(rng.choice(EDITS))
    target, instruction = _apply(source, kind, gi, rng)
    files = {f"media/{TASK}/{pid}/source.png": png(render_scene(source))}
    # candidate kinds spread over the pool so that it holds clear winners and losers
    kinds = [("right", 1.0), ("over", 0.5), ("wrong", 0.0), ("none", 0.0)]
    order = [kinds[int(k) % len(kinds)] for k in rng.permutation(max(n, len(kinds)))][:n]
    cands = []
    for j, (what, follow) in enumerate(order):
        if what == "right":
            scene = target
        elif what == "over":  # the edit, and an unrequested change as well
            scene = _over(target, kind, None if kind == "remove" else gi, rng)
        elif what == "wrong":
            scene, _ = _apply(source, str(rng.choice([e for e in EDITS if e not in (kind, "remove")])), gi, rng)
        else:
            scene = source
        level = int(rng.choice(len(QUALITY_LEVELS), p=[0.5, 0.3, 0.2]))
        rel = f"media/{TASK}/{pid}/c{j}.png"
        files[rel] = png(degrade(render_scene(scene), level, rng))
        gt = 0.75 * follow + 0.25 * QUALITY_LEVELS[level][0]
        cands.append(dict(id=f"{pid}-c{j}", text=None, media=rel, gt_score=round(gt, 6), seed=None))
    meta: dict[str, Any] = dict(
        source=[asdict(g) for g in source],
        target=[asdict(g) for g in target],
        edit=kind,
        candidates=[w for w, _ in order],
    )
    return Prompt(
        dict(
            prompt_id=pid,
            task=TASK,
            prompt=instruction,
            context=f"media/{TASK}/{pid}/source.png",
            candidates=cands,
            meta=json.dumps(meta),
        ),
        files,
    )
