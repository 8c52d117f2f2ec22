"""A seeded synthetic visual world with ground truth for all four tasks.

Scenes are groups of coloured shapes ("two red circles on the left and one blue square on the
right") rendered with Pillow; videos are one shape moving (direction, speed) and possibly changing
colour, written as H.264 mp4. From them:

- image_generation: a caption and N rendered candidates. Each candidate has three ground-truth
  axes, as the released judges score them (``point_multi``): **alignment** (the fraction of the
  caption's attributes it keeps: colour, shape, count, position), **coherence** (defects of the
  drawing visible in the image alone: shapes cut through or split apart) and **style** (blur and
  noise, a colour cast, washed-out contrast). Ground truth: 0.6 * alignment + 0.2 * coherence +
  0.2 * style, each quality axis scored 1.0 / 0.6 / 0.3 for no / a moderate / a severe defect.
- image_understanding: an image, a question about it, N answers (one correct, one right but with
  a false extra claim, the rest wrong): ground truth 1.0 / 0.5 / 0.0.
- video_generation: a motion caption and N videos; alignment over shape, colour, direction, speed
  and colour change, **physics** (jitter, stutter, teleporting) in place of coherence, and style
  (flicker, a colour cast, washed out); ground truth as for images.
- video_understanding: a video, a question about its motion, N answers scored like images.

Generation candidates come in adjacent pairs (0, 1), (2, 3), ... that differ on exactly ONE axis
(the item rows' ``axis``): an ``alignment`` pair shares its quality (the same defect kinds and
levels), a ``coherence`` / ``physics`` / ``style`` pair shares its scene (the same rendered groups
or motion) and the other quality axis. Other pairs (``pairs="all"``) that differ on several axes
are ``mixed``. Understanding pairs are ``correctness`` (a wrong answer against a right one) or
``hallucination`` (the right answer against the same with a false extra claim). Each candidate's
axes are in its pool row's ``meta`` (``candidates``).

Everything is a pure function of (seed, task, prompt index): regenerating gives identical rows and
identical media bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..io import media as media_io
from ..io import schema, storage

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (140, 60, 190),
    "orange": (245, 130, 30),
}
SHAPES = ("circle", "square", "triangle", "diamond")
POSITIONS = ("left", "right", "top", "bottom", "center")
POSITION_PHRASE = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the center",
}
NUMBER_WORD = {1: "one", 2: "two", 3: "three"}
DIRECTIONS = ("left", "right", "up", "down")
SPEEDS = {"slowly": 2.0, "quickly": 5.0}  # pixels per frame at 96 px
TASKS = ("image_generation", "image_understanding", "video_generation", "video_understanding")
ALL_TASKS = TASKS + ("image_editing",)  # image editing: synth/editing.py

IMAGE_SIZE = 128
VIDEO_SIZE = 96
VIDEO_FRAMES = 12
VIDEO_FPS = 8
QUALITY_LEVELS = ((1.0, 0.0, 0.0), (0.6, 1.2, 10.0), (0.3, 2.5, 28.0))  # (quality, blur radius, noise sigma)
BACKGROUND = (235, 235, 235)

# Quality axes of generation candidates: a defect kind and a level (0: none, 1: moderate, 2: severe)
LEVEL_SCORES = (1.0, 0.6, 0.3)  # an axis's ground truth at each level
ALIGNMENT_WEIGHT, QUALITY_WEIGHT = 0.6, 0.2  # ground truth: 0.6 * alignment + 0.2 * each quality axis
IMAGE_AXES = ("alignment", "coherence", "style")
VIDEO_AXES = ("alignment", "physics", "style")
DEFECTS: dict[str, tuple[str, ...]] = {
    "coherence": ("cut", "split"),  # a gap cut through every shape / its halves pulled apart
    "physics": ("jitter", "stutter", "teleport"),  # shaky path / frozen then jumping / a jump aside
    "image_style": ("blur", "cast", "washed"),  # blur and noise / a colour cast / low contrast
    "video_style": ("flicker", "cast", "washed"),  # brightness and noise flicker / cast / low contrast
}
QUALITY_AXIS_SHARE = 0.5  # adjacent candidate pairs decided by a quality axis (the rest: alignment)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _plural(shape: str, n: int) -> str:
    return shape if n == 1 else shape + "s"


# ------------------------------------------------------------------------------------ scenes
@dataclass(frozen=True)
class Group:
    shape: str
    colour: str
    count: int
    position: str

    def phrase(self) -> str:
        return f"{NUMBER_WORD[self.count]} {self.colour} {_plural(self.shape, self.count)} {POSITION_PHRASE[self.position]}"


def caption(groups: list[Group]) -> str:
    return " and ".join(g.phrase() for g in groups)


def random_scene(rng: np.random.Generator) -> list[Group]:
    n_groups = int(rng.integers(1, 3))
    positions = (
        [str(rng.choice(POSITIONS))]
        if n_groups == 1
        else list([("left", "right"), ("top", "bottom")][int(rng.integers(2))])
    )
    shapes = rng.choice(SHAPES, size=n_groups, replace=False)
    colours = rng.choice(list(COLOURS), size=n_groups, replace=False)
    return [Group(str(s), str(c), int(rng.integers(1, 4)), p) for s, c, p in zip(shapes, colours, positions)]


def _other(rng: np.random.Generator, options, current):
    return str(rng.choice([o for o in options if o != current]))


def perturb(groups: list[Group], n_errors: int, rng: np.random.Generator) -> tuple[list[Group], int]:
    """Introduces ``n_errors`` attribute errors; returns the scene and the number of attributes kept."""
    groups = list(groups)
    slots = [(gi, attr) for gi in range(len(groups)) for attr in ("shape", "colour", "count", "position")]
    picked = rng.choice(len(slots), size=min(n_errors, len(slots)), replace=False)
    for k in sorted(int(i) for i in picked):
        gi, attr = slots[k]
        g = groups[gi]
        if attr == "shape":
            g = replace(g, shape=_other(rng, SHAPES, g.shape))
        elif attr == "colour":
            g = replace(g, colour=_other(rng, list(COLOURS), g.colour))
        elif attr == "count":
            g = replace(g, count=int(_other(rng, [1, 2, 3], g.count)))
        else:
            taken = {x.position for x in groups if x is not g}
            g = replace(g, position=_other(rng, [p for p in POSITIONS if p not in taken] + [g.position], g.position))
        groups[gi] = g
    return groups, len(slots) - len(picked)


# Where a group's shapes go, as fractions of the canvas: (x, y) centres for 1, 2 or 3 shapes. The
# strips at the edges and the centre cell never overlap, so no group can hide another.
_LAYOUT = {
    "left": lambda n: [(1 / 6, 0.25 + 0.5 * (i + 0.5) / n) for i in range(n)],
    "right": lambda n: [(5 / 6, 0.25 + 0.5 * (i + 0.5) / n) for i in range(n)],
    "top": lambda n: [(0.25 + 0.5 * (i + 0.5) / n, 1 / 6) for i in range(n)],
    "bottom": lambda n: [(0.25 + 0.5 * (i + 0.5) / n, 5 / 6) for i in range(n)],
    "center": lambda n: [[(0.5, 0.5)], [(0.42, 0.42), (0.58, 0.58)], [(0.41, 0.43), (0.59, 0.43), (0.5, 0.59)]][n - 1],
}


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        draw.rectangle([cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def render_scene(
    groups: list[Group],
    size: int = IMAGE_SIZE,
    coherence: tuple[str, int] | None = None,
    rng: np.random.Generator | None = None,
) -> Image.Image:
    """The scene on the background grey. ``coherence``: (defect, level) drawn into every shape
    (``cut``: a background gap through it at a random angle; ``split``: its halves pulled apart),
    with ``rng`` for the angles; level 0 or None draws clean shapes."""
    img = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(img)
    r = size / 16
    kind, level = coherence or (None, 0)
    if level and kind not in DEFECTS["coherence"]:
        raise ValueError(f"unknown coherence defect {kind!r}; expected one of {DEFECTS['coherence']}")
    for g in groups:
        for fx, fy in _LAYOUT[g.position](g.count):
            cx, cy = fx * size, fy * size
            if not level:
                draw_shape(draw, g.shape, cx, cy, r, COLOURS[g.colour])
            elif kind == "cut":
                draw_shape(draw, g.shape, cx, cy, r, COLOURS[g.colour])
                a = float(rng.uniform(0, np.pi))
                half = r * (0.22 if level == 1 else 0.4)  # half the gap's width
                dx, dy = np.cos(a) * 1.5 * r, np.sin(a) * 1.5 * r
                nx, ny = -np.sin(a) * half, np.cos(a) * half
                draw.polygon(
                    [
                        (cx - dx + nx, cy - dy + ny),
                        (cx + dx + nx, cy + dy + ny),
                        (cx + dx - nx, cy + dy - ny),
                        (cx - dx - nx, cy - dy - ny),
                    ],
                    fill=BACKGROUND,
                )
            else:  # split: the top half shifted one way, the bottom half the other
                shift = r * (0.45 if level == 1 else 0.9)
                side = 1 if rng.random() < 0.5 else -1
                layer = Image.new("RGB", (size, size), BACKGROUND)
                mask = Image.new("L", (size, size), 0)
                draw_shape(ImageDraw.Draw(mask), g.shape, cx, cy, r, 255)
                draw_shape(ImageDraw.Draw(layer), g.shape, cx, cy, r, COLOURS[g.colour])
                top = (0, 0, size, int(round(cy)))
                bottom = (0, int(round(cy)), size, size)
                for box, dx in ((top, side * shift), (bottom, -side * shift)):
                    img.paste(layer.crop(box), (int(round(dx)), box[1]), mask.crop(box))
                draw = ImageDraw.Draw(img)
    return img


def degrade(img: Image.Image, level: int, rng: np.random.Generator) -> Image.Image:
    _, blur, noise = QUALITY_LEVELS[level]
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    if noise:
        arr = np.asarray(img, dtype=np.float32) + rng.normal(0, noise, size=(img.height, img.width, 3))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return img


_CAST_SHIFT = (40.0, 75.0)  # per level: how far a colour cast moves every pixel, in RGB units


def _cast(level: int, rng: np.random.Generator) -> np.ndarray:
    """A colour cast: one shift added to every pixel (channels lowered by 0, half and all of it in a
    random order), so the objects' colours stay as far apart as they were."""
    return -_CAST_SHIFT[level - 1] * np.array((0.0, 0.5, 1.0), dtype=np.float32)[rng.permutation(3)]


def _washed(arr: np.ndarray, level: int) -> np.ndarray:
    a = (0.35, 0.55)[level - 1]
    return arr * (1 - a) + 205.0 * a


def style_image(img: Image.Image, style: tuple[str, int] | None, rng: np.random.Generator) -> Image.Image:
    """A style defect on a rendered image: (``blur``: blur and noise | ``cast``: a colour cast |
    ``washed``: low contrast, level); level 0 or None returns the image unchanged."""
    kind, level = style or (None, 0)
    if not level:
        return img
    if kind == "blur":
        return degrade(img, level, rng)
    arr = np.asarray(img, dtype=np.float32)
    if kind == "cast":
        arr = arr + _cast(level, rng)
    elif kind == "washed":
        arr = _washed(arr, level)
    else:
        raise ValueError(f"unknown image style defect {kind!r}; expected one of {DEFECTS['image_style']}")
    return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8))


def png(img: Image.Image) -> bytes:
    return media_io.encode_image(img, "PNG")


# ------------------------------------------------------------------------------------ motion
@dataclass(frozen=True)
class Motion:
    shape: str
    colour: str
    direction: str
    speed: str
    end_colour: str | None = None  # None: no colour change

    def caption(self) -> str:
        text = f"{_article(self.colour)} {self.colour} {self.shape} moving {self.direction} {self.speed}"
        return text + (f", turning {self.end_colour}" if self.end_colour else "")

    def attributes(self) -> int:
        return 5


def random_motion(rng: np.random.Generator) -> Motion:
    colour = str(rng.choice(list(COLOURS)))
    end = _other(rng, list(COLOURS), colour) if rng.random() < 0.5 else None
    return Motion(str(rng.choice(SHAPES)), colour, str(rng.choice(DIRECTIONS)), str(rng.choice(list(SPEEDS))), end)


def perturb_motion(m: Motion, n_errors: int, rng: np.random.Generator) -> tuple[Motion, int]:
    attrs = ["shape", "colour", "direction", "speed", "change"]
    picked = [attrs[int(i)] for i in rng.choice(len(attrs), size=min(n_errors, len(attrs)), replace=False)]
    for a in picked:
        if a == "shape":
            m = replace(m, shape=_other(rng, SHAPES, m.shape))
        elif a == "colour":
            m = replace(m, colour=_other(rng, [c for c in COLOURS if c != m.end_colour], m.colour))
        elif a == "direction":
            m = replace(m, direction=_other(rng, DIRECTIONS, m.direction))
        elif a == "speed":
            m = replace(m, speed=_other(rng, list(SPEEDS), m.speed))
        else:
            m = replace(m, end_colour=None if m.end_colour else _other(rng, list(COLOURS), m.colour))
    return m, len(attrs) - len(picked)


def render_motion(
    m: Motion,
    flicker: float,
    rng: np.random.Generator,
    size: int = VIDEO_SIZE,
    n_frames: int = VIDEO_FRAMES,
    physics: tuple[str, int] | None = None,
    style: tuple[str, int] | None = None,
) -> list[np.ndarray]:
    """The frames of a motion. ``flicker``: per-frame brightness and noise (0: none). ``physics``:
    (``jitter``: a shaky path | ``stutter``: the shape freezes, then jumps to where it should be |
    ``teleport``: it jumps aside mid-clip and carries on from there, level); ``style``: (``flicker``
    | ``cast`` | ``washed``, level). The direction, speed and colours stay those of ``m``."""
    dx, dy = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[m.direction]
    step = SPEEDS[m.speed] * size / 96
    travel = step * (n_frames - 1)
    cx0 = size / 2 - dx * travel / 2
    cy0 = size / 2 - dy * travel / 2
    c0 = np.array(COLOURS[m.colour], dtype=np.float32)
    c1 = np.array(COLOURS[m.end_colour or m.colour], dtype=np.float32)
    kind, level = physics or (None, 0)
    offsets = np.zeros((n_frames, 2))
    times = np.arange(n_frames, dtype=float)
    if level:
        if kind == "jitter":
            offsets = rng.normal(0, (2.5, 5.0)[level - 1] * size / 96, size=(n_frames, 2))
        elif kind == "stutter":
            hold = (3, 4)[level - 1]
            times = np.floor(times / hold) * hold
            times[-1] = n_frames - 1
        elif kind == "teleport":
            side = 1 if rng.random() < 0.5 else -1
            jump = (14.0, 26.0)[level - 1] * size / 96 * side
            t0 = int(rng.integers(3, n_frames - 3))
            offsets[t0:] += (jump * abs(dy), jump * abs(dx))  # across the direction of motion
        else:
            raise ValueError(f"unknown physics defect {kind!r}; expected one of {DEFECTS['physics']}")
    s_kind, s_level = style or (None, 0)
    if s_level and s_kind not in DEFECTS["video_style"]:
        raise ValueError(f"unknown video style defect {s_kind!r}; expected one of {DEFECTS['video_style']}")
    if s_level and s_kind == "flicker":
        flicker = max(flicker, (0.15, 0.35)[s_level - 1])
    cast = _cast(s_level, rng) if s_level and s_kind == "cast" else None
    frames = []
    for t in range(n_frames):
        img = Image.new("RGB", (size, size), BACKGROUND)
        a = t / (n_frames - 1)
        colour = tuple(int(round(v)) for v in (1 - a) * c0 + a * c1)
        x = cx0 + dx * step * times[t] + offsets[t, 0]
        y = cy0 + dy * step * times[t] + offsets[t, 1]
        draw_shape(ImageDraw.Draw(img), m.shape, x, y, size / 10, colour)
        arr = np.asarray(img, dtype=np.float32)
        if flicker:
            arr = arr * (1 + rng.uniform(-flicker, flicker)) + rng.normal(0, 40 * flicker, size=arr.shape)
        if cast is not None:
            arr = arr + cast
        elif s_level and s_kind == "washed":
            arr = _washed(arr, s_level)
        frames.append(np.clip(arr, 0, 255).astype(np.uint8))
    return frames


def mp4(frames: list[np.ndarray]) -> bytes:
    return media_io.encode_video(frames, fps=VIDEO_FPS)


# ------------------------------------------------------------------------------------ slot descriptions
# One fixed attribute order for every description: a scene's groups in canonical position order,
# each as (count, colour, shape, position); a motion as (shape, colour, direction, speed, end colour
# or "none"). Captions list their groups in that order too, so a description and a caption line up
# slot by slot.
DEFECT_WORDS = {
    "cut": "cut",
    "split": "split",
    "jitter": "jittery",
    "stutter": "stuttering",
    "teleport": "jumping",
    "blur": "blurry",
    "cast": "tinted",
    "washed": "faded",
    "flicker": "flickering",
}


def canonical(groups: list[Group]) -> list[Group]:
    return sorted(groups, key=lambda g: POSITIONS.index(g.position))


def scene_slots(groups: list[Group]) -> list[list[str]]:
    return [[NUMBER_WORD[g.count], g.colour, g.shape, g.position] for g in canonical(groups)]


def motion_slots(m: Motion) -> list[list[str]]:
    return [[m.shape, m.colour, m.direction, m.speed, m.end_colour or "none"]]


def slot_text(slots: list[list[str]]) -> str:
    """Slots as text: "two red circle left, one blue square right"."""
    return ", ".join(" ".join(g) for g in slots)


def slot_check(observed: list[list[str]], claimed: list[list[str]]) -> str:
    """Slot by slot: what is seen, what is claimed, and whether they agree ("red blue no")."""
    return ", ".join(
        " ".join(f"{o} {c} {'yes' if o == c else 'no'}" for o, c in zip(og, cg)) for og, cg in zip(observed, claimed)
    )


def defect_text(defects: dict[str, Any]) -> str:
    """A candidate's defects in words ("very blurry", "cut, faded"), or "clean"."""
    words = []
    for kind, level in defects.values():
        if level:
            words.append(("very " if level == 2 else "") + DEFECT_WORDS[kind])
    return ", ".join(words) or "clean"


def answer_key(answer: str) -> str:
    """The word an answer's claim turns on: the number of a count answer, else the last word of its
    first sentence ("It is on the left." -> "left")."""
    first = answer.split(".")[0].split()
    if first[:1] == ["There"] and len(first) > 2:
        return first[2]
    return first[-1]


def has_extra_claim(answer: str) -> bool:
    return len([s for s in answer.split(".") if s.strip()]) > 1


# ------------------------------------------------------------------------------------ answers
MAX_UNDERSTANDING_ANSWERS = 5  # the fewest distinct answers any question kind has


def _answers(correct: str, partial: str, wrong: list[str], n: int, rng: np.random.Generator):
    """n answers: the correct one (1.0), a right-but-embellished one (0.5), the rest wrong (0.0)."""
    wrong = list(dict.fromkeys(w for w in wrong if w != correct))
    rng.shuffle(wrong)
    pool = [(correct, 1.0), (partial, 0.5)] + [(w, 0.0) for w in wrong]
    pool = pool[:n]
    order = rng.permutation(len(pool))
    return [pool[i] for i in order]


def image_question(groups: list[Group], rng: np.random.Generator, n: int):
    g = groups[int(rng.integers(len(groups)))]
    absent_colour = str(rng.choice([c for c in COLOURS if all(x.colour != c for x in groups)]))
    extra = f" There is also {_article(absent_colour)} {absent_colour} {_other(rng, SHAPES, None)} in the picture."
    kind = str(rng.choice(["count", "colour", "position", "shape"]))
    if kind == "count":
        q = f"How many {g.colour} {_plural(g.shape, 2)} are in the image?"

        def fmt(k: int) -> str:
            return f"There {'is' if k == 1 else 'are'} {NUMBER_WORD.get(k, str(k))} {g.colour} {_plural(g.shape, k)}."

        correct, wrong = fmt(g.count), [fmt(k) for k in (1, 2, 3, 4) if k != g.count]
    elif kind == "colour":
        q = f"What colour is the {g.shape} {POSITION_PHRASE[g.position]}?"
        correct, wrong = f"It is {g.colour}.", [f"It is {c}." for c in COLOURS if c != g.colour]
    elif kind == "position":
        q = f"Where is the {g.colour} {g.shape} in the image?"
        correct = f"It is {POSITION_PHRASE[g.position]}."
        wrong = [f"It is {POSITION_PHRASE[p]}." for p in POSITIONS if p != g.position]
    else:
        q = f"What shape is the {g.colour} object {POSITION_PHRASE[g.position]}?"
        correct, wrong = f"It is a {g.shape}.", [f"It is a {s}." for s in SHAPES if s != g.shape]
    return q, _answers(correct, correct + extra, wrong, n, rng), kind


def video_question(m: Motion, rng: np.random.Generator, n: int):
    kind = str(rng.choice(["direction", "speed", "end_colour", "shape"]))
    extra = f" It also {'changes colour' if not m.end_colour else 'stays the same colour'} on the way."
    if kind == "direction":
        q = f"In which direction does the {m.shape} move?"
        correct, wrong = f"It moves {m.direction}.", [f"It moves {d}." for d in DIRECTIONS if d != m.direction]
        wrong.append("It does not move.")
    elif kind == "speed":
        q = f"How fast does the {m.shape} move?"
        correct = f"It moves {m.speed}."
        wrong = [f"It moves {s}." for s in SPEEDS if s != m.speed] + ["It does not move.", "It moves in circles."]
    elif kind == "end_colour":
        end = m.end_colour or m.colour
        q = f"What colour is the {m.shape} at the end of the video?"
        correct, wrong = f"It is {end}.", [f"It is {c}." for c in COLOURS if c != end]
    else:
        q = "What shape is moving in the video?"
        correct, wrong = f"A {m.shape}.", [f"A {s}." for s in SHAPES if s != m.shape]
    return q, _answers(correct, correct + extra, wrong, n, rng), kind


# ------------------------------------------------------------------------------------ prompts
@dataclass
class Prompt:
    """One pool row before it is written: media as bytes keyed by relative path."""

    row: dict[str, Any]
    files: dict[str, bytes]


def _rng(seed: int, task: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, TASKS.index(task), index])


def _error_counts(rng: np.random.Generator, n: int, max_errors: int) -> list[int]:
    # spread the candidates over error counts so that pools hold clear winners and losers
    base = np.arange(n) % (max_errors + 1)
    return [int(x) for x in rng.permutation(base)]


def _quality_level(rng: np.random.Generator) -> int:
    return int(rng.choice(len(QUALITY_LEVELS), p=[0.5, 0.3, 0.2]))


@dataclass(frozen=True)
class Spec:
    """What one generation candidate is: its attribute errors against the caption and its defect
    (kind, level) on each quality axis (``structure``: coherence for images, physics for videos)."""

    errors: int
    structure: tuple[str | None, int] = (None, 0)
    style: tuple[str | None, int] = (None, 0)

    def axes(self, kept: float, video: bool) -> dict[str, Any]:
        """Ground truth per axis, the overall score, and the defects."""
        structure = "physics" if video else "coherence"
        out = {
            "alignment": round(kept, 6),
            structure: LEVEL_SCORES[self.structure[1]],
            "style": LEVEL_SCORES[self.style[1]],
        }
        gt = ALIGNMENT_WEIGHT * kept + QUALITY_WEIGHT * (out[structure] + out["style"])
        return dict(out, gt=round(gt, 6), defects={structure: list(self.structure), "style": list(self.style)})


def _defect(rng: np.random.Generator, axis: str, video: bool, level: int | None = None) -> tuple[str, int]:
    kinds = DEFECTS[f"{'video' if video else 'image'}_style"] if axis == "style" else DEFECTS[axis]
    return str(rng.choice(kinds)), int(level if level is not None else rng.integers(1, 3))


def candidate_specs(
    rng: np.random.Generator, n: int, max_errors: int, video: bool
) -> tuple[list[Spec], list[str | None]]:
    """The N candidates of a generation prompt, as adjacent pairs that differ on one axis each (an
    odd last candidate is free), and each pair's deciding axis (None for the free one).

    - alignment: two distinct error counts, the same quality (clean, or both with the same defect);
    - a quality axis (coherence or physics, style): the same error count (the same scene, drawn once
      per candidate), the other quality axis the same, one candidate clean on this axis and the
      other with a moderate or severe defect."""
    structure = "physics" if video else "coherence"
    specs: list[Spec] = []
    axes: list[str | None] = []
    for _ in range(n // 2):
        if rng.random() < QUALITY_AXIS_SHARE:
            axis = structure if rng.random() < 0.5 else "style"
            other = "style" if axis == structure else structure
            errors = int(rng.choice([0, 1, 2], p=[0.6, 0.25, 0.15]))
            shared = _defect(rng, other, video) if rng.random() < 0.2 else (None, 0)
            bad = _defect(rng, axis, video)
            pair = [
                Spec(errors, **{_field(axis): (None, 0), _field(other): shared}),
                Spec(errors, **{_field(axis): bad, _field(other): shared}),
            ]
        else:
            axis = "alignment"
            low = int(rng.integers(0, 2))
            high = int(rng.integers(low + 1, max_errors + 1))
            q = {"structure": (None, 0), "style": (None, 0)}
            if rng.random() < 0.3:
                which = structure if rng.random() < 0.5 else "style"
                q[_field(which)] = _defect(rng, which, video)
            pair = [Spec(low, **q), Spec(high, **q)]
        if rng.random() < 0.5:
            pair.reverse()
        specs += pair
        axes.append(axis)
    if n % 2:
        specs.append(
            Spec(
                int(rng.integers(0, max_errors + 1)),
                _defect(rng, structure, video) if rng.random() < 0.4 else (None, 0),
                _defect(rng, "style", video) if rng.random() < 0.4 else (None, 0),
            )
        )
        axes.append(None)
    return specs, axes


def _field(axis: str) -> str:
    return "style" if axis == "style" else "structure"


def _generated(
    files: dict[str, bytes], pid: str, j: int, task: str, ext: str, data: bytes, axes: dict[str, Any]
) -> dict[str, Any]:
    """A generation candidate: its media file and its overall ground truth."""
    rel = f"media/{task}/{pid}/c{j}.{ext}"
    files[rel] = data
    return dict(id=f"{pid}-c{j}", text=None, media=rel, gt_score=axes["gt"], seed=None)


def _candidate_meta(cid: str, axes: dict[str, Any]) -> dict[str, Any]:
    return dict(id=cid, **{k: v for k, v in axes.items() if k != "gt"})


def make_image_generation(seed: int, i: int, n: int) -> Prompt:
    rng = _rng(seed, "image_generation", i)
    scene = random_scene(rng)
    pid = f"ig-{i:05d}"
    cands, files, metas = [], {}, []
    specs, pair_axes = candidate_specs(rng, n, 3, video=False)
    perturbed: dict[int, tuple[list[Group], int]] = {}
    for j, spec in enumerate(specs):
        key = j // 2
        if pair_axes[key] not in (None, "alignment") and key in perturbed:  # a quality pair: the same scene
            groups, kept = perturbed[key]
        else:
            groups, kept = perturb(scene, spec.errors, rng)
            perturbed[key] = (groups, kept)
        img = style_image(render_scene(groups, coherence=spec.structure, rng=rng), spec.style, rng)
        axes = spec.axes(kept / (4 * len(scene)), video=False)
        cands.append(_generated(files, pid, j, "image_generation", "png", png(img), axes))
        metas.append(dict(_candidate_meta(cands[-1]["id"], axes), scene=[asdict(g) for g in groups]))
    meta = dict(scene=[asdict(g) for g in scene], pairs=pair_axes, candidates=metas)
    return Prompt(
        dict(
            prompt_id=pid,
            task="image_generation",
            prompt=caption(scene),
            context=None,
            candidates=cands,
            meta=json.dumps(meta),
        ),
        files,
    )


def make_image_understanding(seed: int, i: int, n: int) -> Prompt:
    rng = _rng(seed, "image_understanding", i)
    scene = random_scene(rng)
    pid = f"iu-{i:05d}"
    rel = f"media/image_understanding/{pid}/context.png"
    files = {rel: png(render_scene(scene))}
    q, answers, kind = image_question(scene, rng, n)
    cands = [dict(id=f"{pid}-c{j}", text=a, media=None, gt_score=s, seed=None) for j, (a, s) in enumerate(answers)]
    meta = dict(scene=[asdict(g) for g in scene], question_kind=kind)
    return Prompt(
        dict(prompt_id=pid, task="image_understanding", prompt=q, context=rel, candidates=cands, meta=json.dumps(meta)),
        files,
    )


def make_video_generation(seed: int, i: int, n: int) -> Prompt:
    rng = _rng(seed, "video_generation", i)
    motion = random_motion(rng)
    pid = f"vg-{i:05d}"
    cands, files, metas = [], {}, []
    specs, pair_axes = candidate_specs(rng, n, 3, video=True)
    perturbed: dict[int, tuple[Motion, int]] = {}
    for j, spec in enumerate(specs):
        key = j // 2
        if pair_axes[key] not in (None, "alignment") and key in perturbed:  # a quality pair: the same motion
            m, kept = perturbed[key]
        else:
            m, kept = perturb_motion(motion, spec.errors, rng)
            perturbed[key] = (m, kept)
        data = mp4(render_motion(m, 0.0, rng, physics=spec.structure, style=spec.style))
        axes = spec.axes(kept / motion.attributes(), video=True)
        cands.append(_generated(files, pid, j, "video_generation", "mp4", data, axes))
        metas.append(dict(_candidate_meta(cands[-1]["id"], axes), motion=asdict(m)))
    meta = dict(motion=asdict(motion), pairs=pair_axes, candidates=metas)
    return Prompt(
        dict(
            prompt_id=pid,
            task="video_generation",
            prompt=motion.caption(),
            context=None,
            candidates=cands,
            meta=json.dumps(meta),
        ),
        files,
    )


def make_video_understanding(seed: int, i: int, n: int) -> Prompt:
    rng = _rng(seed, "video_understanding", i)
    motion = random_motion(rng)
    pid = f"vu-{i:05d}"
    rel = f"media/video_understanding/{pid}/context.mp4"
    files = {rel: mp4(render_motion(motion, 0.0, rng))}
    q, answers, kind = video_question(motion, rng, n)
    cands = [dict(id=f"{pid}-c{j}", text=a, media=None, gt_score=s, seed=None) for j, (a, s) in enumerate(answers)]
    return Prompt(
        dict(
            prompt_id=pid,
            task="video_understanding",
            prompt=q,
            context=rel,
            candidates=cands,
            meta=json.dumps(dict(motion=asdict(motion), question_kind=kind)),
        ),
        files,
    )


MAKERS: dict[str, Callable[[int, int, int], Prompt]] = {
    "image_generation": make_image_generation,
    "image_understanding": make_image_understanding,
    "video_generation": make_video_generation,
    "video_understanding": make_video_understanding,
}


def _maker(task: str) -> Callable[[int, int, int], Prompt]:
    if task == "image_editing":
        from .editing import make_image_editing

        return make_image_editing
    return MAKERS[task]


# ------------------------------------------------------------------------------------ corruption
CORRUPTIONS = ("zero_bytes", "truncated", "garbage", "missing")


def corrupt_bytes(data: bytes, kind: str) -> bytes | None:
    """Damaged versions of a media file, for robustness demos and tests (None: delete the file)."""
    if kind == "zero_bytes":
        return b""
    if kind == "truncated":
        return data[: max(1, len(data) // 3)]
    if kind == "garbage":
        return b"this is not a media file\n" * 8
    if kind == "missing":
        return None
    raise ValueError(f"unknown corruption {kind!r}")


# ------------------------------------------------------------------------------------ items
def pair_label(a: float | None, b: float | None, eps: float = 1e-9) -> str | None:
    if a is None or b is None:
        return None
    if abs(a - b) <= eps:
        return "tie"
    return "first" if a > b else "second"


AXIS_NAMES = ("alignment", "coherence", "physics", "style")


def pair_axis(row: dict[str, Any], a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """What decides the pair of candidates ``a`` and ``b`` of pool ``row``: for generation, the one
    axis they differ on (``alignment``, ``coherence``, ``physics`` or ``style``), ``mixed`` for
    several, None for none (or a pool without per-candidate axes in its meta); for understanding,
    ``hallucination`` (the right answer against the same with a false extra claim: 1.0 vs 0.5),
    ``correctness`` (a wrong answer, 0.0, against a better one), None for a tie or unknown."""
    if row["task"] == "image_editing":
        return None  # edits have no axes in this world
    if row["task"].endswith("_generation"):
        try:
            meta = json.loads(row.get("meta") or "{}")
        except ValueError:
            return None
        by_id = {c.get("id"): c for c in meta.get("candidates") or [] if isinstance(c, dict)}
        ca, cb = by_id.get(a["id"]), by_id.get(b["id"])
        if ca is None or cb is None:
            return None
        differ = [k for k in AXIS_NAMES if k in ca and ca[k] != cb.get(k)]
        return differ[0] if len(differ) == 1 else "mixed" if differ else None
    sa, sb = a.get("gt_score"), b.get("gt_score")
    if sa is None or sb is None or sa == sb:
        return None
    return "hallucination" if {sa, sb} == {1.0, 0.5} else "correctness" if min(sa, sb) == 0.0 else None


def items_from_pool(row: dict[str, Any], pairs: str = "adjacent") -> list[dict[str, Any]]:
    """Item rows (pairs and points) of one pool row. ``pairs``: 'adjacent' ((0,1), (2,3), ...: the
    original's pair ranking; in this world each such pair differs on one axis) or 'all' (every
    unordered pair). Pair rows carry ``axis`` (see ``pair_axis``); every row carries ``rationales``,
    the ground-truth reasoning about each of its candidates (see ``candidate_rationales``)."""
    cands = row["candidates"]
    gen = row["task"] in ("image_generation", "video_generation", "image_editing")  # the candidates are visuals
    ref = (lambda c: c["media"]) if gen else (lambda c: c["text"])
    why = candidate_rationales(row)
    out = []
    if pairs == "adjacent":
        idx = [(k, k + 1) for k in range(0, len(cands) - 1, 2)]
    elif pairs == "all":
        idx = [(a, b) for a in range(len(cands)) for b in range(a + 1, len(cands))]
    else:
        raise ValueError(f"pairs must be 'adjacent' or 'all', got {pairs!r}")
    for a, b in idx:
        ca, cb = cands[a], cands[b]
        out.append(
            dict(
                item_id=f"{ca['id']}~{cb['id']}",
                task=row["task"],
                mode="pair_rank",
                prompt=row["prompt"],
                context=row["context"],
                candidates=[ref(ca), ref(cb)],
                label=pair_label(ca["gt_score"], cb["gt_score"]),
                gt_scores=[ca["gt_score"], cb["gt_score"]],
                axis=pair_axis(row, ca, cb),
                rationales=[why[a], why[b]] if why else None,
            )
        )
    for k, c in enumerate(cands):
        out.append(
            dict(
                item_id=c["id"],
                task=row["task"],
                mode="point_score",
                prompt=row["prompt"],
                context=row["context"],
                candidates=[ref(c)],
                label=None,
                gt_scores=[c["gt_score"]],
                axis=None,
                rationales=[why[k]] if why else None,
            )
        )
    return out


def candidate_rationales(row: dict[str, Any]) -> list[str] | None:
    """Ground-truth reasoning about each candidate of pool ``row``, in the fixed slot order: for
    generation, the visual's slots checked against the caption (seen, claimed, yes/no) and its
    defects ("two two yes red blue no circle circle yes left left yes; very blurry"); for
    understanding, what the visual shows, the answer's claim and whether they agree, and whether it
    adds a claim ("red blue no, extra"). None when the row's meta lacks what it takes (pools written
    before these fields)."""
    if row["task"] == "image_editing":
        return None  # edits have no slot rationales in this world
    try:
        meta = json.loads(row.get("meta") or "{}")
    except ValueError:
        return None
    cands = row["candidates"]
    if row["task"].endswith("_generation"):
        video = row["task"] == "video_generation"
        key = "motion" if video else "scene"
        by_id = {c.get("id"): c for c in meta.get("candidates") or [] if isinstance(c, dict)}
        if key not in meta or any(key not in by_id.get(c["id"], {}) for c in cands):
            return None
        slots = (lambda x: motion_slots(Motion(**x))) if video else (lambda x: scene_slots([Group(**g) for g in x]))
        claimed = slots(meta[key])
        return [
            f"{slot_check(slots(by_id[c['id']][key]), claimed)}; {defect_text(by_id[c['id']]['defects'])}"
            for c in cands
        ]
    correct = [c["text"] for c in cands if c.get("gt_score") == 1.0]
    if not correct:
        return None
    seen = answer_key(correct[0])
    out = []
    for c in cands:
        key = answer_key(c["text"])
        out.append(f"{seen} {key} {'yes' if key == seen else 'no'}{', extra' if has_extra_claim(c['text']) else ''}")
    return out


# ------------------------------------------------------------------------------------ world
@dataclass
class WorldSummary:
    root: str
    seed: int
    n: int
    n_candidates: int
    pools: dict[str, str]
    items: dict[str, str]
    corrupted: list[dict[str, str]]


def generate_world(
    out: str,
    n: int = 8,
    seed: int = 0,
    n_candidates: int = 4,
    tasks: tuple[str, ...] = TASKS,
    corrupt: int = 0,
    pairs: str = "adjacent",
    progress: Callable[[str, int, int], None] | None = None,
) -> WorldSummary:
    """Writes ``n`` prompts per task (pools and items as Parquet, media beside them) under ``out``
    (a local folder or ``s3://`` prefix). ``corrupt``: per task, damage this many candidate or
    context files (zero bytes, truncated, garbage, missing) to exercise error handling."""
    if n < 1 or n_candidates < 2:
        raise ValueError("need n >= 1 prompts and n_candidates >= 2")
    if n_candidates > MAX_UNDERSTANDING_ANSWERS and any(t.endswith("_understanding") for t in tasks):
        raise ValueError(
            f"understanding questions have at most {MAX_UNDERSTANDING_ANSWERS} distinct answers; "
            f"ask for n_candidates <= {MAX_UNDERSTANDING_ANSWERS} or generation tasks only"
        )
    unknown = set(tasks) - set(ALL_TASKS)
    if unknown:
        raise ValueError(f"unknown task(s) {sorted(unknown)}; expected some of {ALL_TASKS}")
    pools, items, corrupted = {}, {}, []
    for task in tasks:
        prompts = []
        for i in range(n):
            prompts.append(_maker(task)(seed, i, n_candidates))
            if progress:
                progress(task, i + 1, n)
        files = {k: v for p in prompts for k, v in p.files.items()}
        rng = np.random.default_rng([seed, ALL_TASKS.index(task), 1_000_003])
        victims = sorted(files)
        for k, vi in enumerate(rng.choice(len(victims), size=min(corrupt, len(victims)), replace=False)):
            rel = victims[int(vi)]
            kind = CORRUPTIONS[k % len(CORRUPTIONS)]
            damaged = corrupt_bytes(files[rel], kind)
            if damaged is None:
                del files[rel]
            else:
                files[rel] = damaged
            corrupted.append(dict(task=task, file=rel, corruption=kind))
        for rel, data in files.items():
            storage.write_bytes(storage.join(out, rel), data)
        rows = [p.row for p in prompts]
        pools[task] = storage.join(out, f"{task}.pool.parquet")
        schema.write_parquet(rows, schema.POOL_SCHEMA, pools[task])
        items[task] = storage.join(out, f"{task}.items.parquet")
        schema.write_parquet([it for r in rows for it in items_from_pool(r, pairs)], schema.ITEM_SCHEMA, items[task])
    summary = WorldSummary(str(out), seed, n, n_candidates, pools, items, corrupted)
    storage.write_bytes(storage.join(out, "world.json"), json.dumps(asdict(summary), indent=2).encode())
    return summary
