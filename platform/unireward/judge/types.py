"""Plain data types of the judge: tasks, modes, items to judge and the judgments it returns."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Task(str, Enum):
    IMAGE_GENERATION = "image_generation"
    IMAGE_UNDERSTANDING = "image_understanding"
    VIDEO_GENERATION = "video_generation"
    VIDEO_UNDERSTANDING = "video_understanding"
    IMAGE_EDITING = "image_editing"

    @property
    def is_generation(self) -> bool:
        """The candidates are visuals (generated images or videos, or edited images), not answers."""
        return self in (Task.IMAGE_GENERATION, Task.VIDEO_GENERATION, Task.IMAGE_EDITING)

    @property
    def has_context(self) -> bool:
        """The prompt is about a given visual: the image or video of a question, or the image to edit."""
        return self in (Task.IMAGE_UNDERSTANDING, Task.VIDEO_UNDERSTANDING, Task.IMAGE_EDITING)

    @property
    def media_kind(self) -> str:
        """The kind of visual input: 'image' or 'video'."""
        return "video" if self in (Task.VIDEO_GENERATION, Task.VIDEO_UNDERSTANDING) else "image"


class Mode(str, Enum):
    PAIR_RANK = "pair_rank"  # two candidates -> which is better (or a tie)
    PAIR_SCORE = "pair_score"  # two candidates -> a score for each on several dimensions (generation tasks)
    POINT_SCORE = "point_score"  # one candidate -> one score on the protocol's scale
    POINT_MULTI = "point_multi"  # one candidate -> several dimension scores (generation tasks)

    @property
    def n_candidates(self) -> int:
        return 2 if self.is_pair else 1

    @property
    def is_pair(self) -> bool:
        return self in (Mode.PAIR_RANK, Mode.PAIR_SCORE)


class Status(str, Enum):
    OK = "ok"
    UNPARSED = "unparsed"  # the model answered, but no verdict/score could be read from its text
    INVALID_INPUT = "invalid_input"  # the item or its media could not be used (reason says why)
    ERROR = "error"  # the judge itself failed on this item (reason says why)


VERDICTS = ("first", "second", "tie")


def swap_verdict(verdict: str | None) -> str | None:
    """Maps a verdict about the swapped order (B, A) back to the original order (A, B)."""
    return {"first": "second", "second": "first"}.get(verdict, verdict) if verdict else verdict


@dataclass
class JudgeItem:
    """One thing to judge.

    - ``candidates``: two (pairwise) or one (pointwise). For generation tasks each candidate is a
      visual: an image or video source (path, ``s3://`` URI, ``data:`` URI, bytes, a PIL image, or for
      video a list of PIL frames). For understanding tasks each candidate is an answer text.
    - ``context``: the image or video an understanding question is about (unused for generation).
    - ``mode``: defaults to ``pair_rank`` for two candidates and ``point_score`` for one; set
      ``point_multi`` for the multi-dimension scores of generation tasks.
    """

    task: Task | str
    prompt: str
    candidates: Sequence[Any]
    context: Any = None
    mode: Mode | str | None = None
    id: str | None = None

    def resolved_mode(self) -> Mode:
        if self.mode is not None:
            return Mode(self.mode)
        return Mode.PAIR_RANK if len(self.candidates) == 2 else Mode.POINT_SCORE

    def problem(self) -> str | None:
        """Why this item cannot be judged, or None. Never raises."""
        try:
            task = Task(self.task)
        except ValueError:
            return f"unknown task {self.task!r}; expected one of {[t.value for t in Task]}"
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            return "empty prompt"
        cands = list(self.candidates) if isinstance(self.candidates, (list, tuple)) else None
        if cands is None:
            return "candidates must be a list"
        try:
            mode = self.resolved_mode()
        except ValueError:
            return f"unknown mode {self.mode!r}; expected one of {[m.value for m in Mode]}"
        if len(cands) != mode.n_candidates:
            return f"{mode.value} needs {mode.n_candidates} candidate(s), got {len(cands)}"
        if mode in (Mode.POINT_MULTI, Mode.PAIR_SCORE) and not task.is_generation:
            return f"{mode.value} scores exist only for generation and editing tasks"
        if any(c is None for c in cands):
            return "a candidate is missing (None)"
        if not task.has_context and self.context is not None:
            return "generation tasks take no context media (the candidates are the visuals)"
        if task.has_context and self.context is None:
            what = "image to edit" if task is Task.IMAGE_EDITING else f"{task.media_kind} the question is about"
            return f"{task.value} needs the {what} (context)"
        if not task.is_generation:
            bad = [i for i, c in enumerate(cands) if not isinstance(c, str)]
            if bad:
                return f"understanding candidates must be answer texts; candidate {bad[0]} is {type(cands[bad[0]]).__name__}"
        return None

    def visuals(self) -> list[Any]:
        """The item's visuals in the order the judge sees them: the context (a question's image or
        video, the image to edit), then the candidates when they are visuals."""
        task = Task(self.task)
        return ([self.context] if task.has_context else []) + (list(self.candidates) if task.is_generation else [])

    def swapped(self) -> JudgeItem:
        """The same pair with the candidates in the other order."""
        return dataclasses.replace(self, candidates=list(reversed(list(self.candidates))))


@dataclass
class Judgment:
    """The judge's answer about one item. Nothing is silent: ``status`` and ``reason`` say what
    happened, ``raw_text`` keeps what the model wrote (generate method)."""

    item_id: str | None
    task: str
    mode: str
    method: str
    status: Status
    reason: str | None = None
    # pairwise
    verdict: str | None = None  # 'first' | 'second' | 'tie'
    probs: dict[str, float] | None = None  # logits method: P(first), P(second)[, P(tie)]
    # pointwise
    score: float | None = None  # on the protocol's native scale
    score_norm: float | None = None  # mapped to [0, 1]
    dims: dict[str, float] | None = None  # point_multi: one score per dimension; pair_score: "<dim>/1", "<dim>/2"
    scores: list[float] | None = None  # pair_score (and Think): each candidate's score, its dimensions' mean (or total)
    margin: float | None = None  # pair_score: first's score minus second's
    distribution: dict[str, float] | None = None  # logits method: P(score value)
    # diagnostics
    mass: float | None = None  # logits: probability the model put on valid verdicts/scores
    raw_text: str | None = None
    agreement: bool | None = None  # swap: did both orders agree?
    orders: list[Judgment] | None = None  # swap: the (A,B) and (B,A) judgments
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["status"] = self.status.value
        if self.orders is not None:
            d["orders"] = [o.to_dict() for o in self.orders]
        return {k: v for k, v in d.items() if v is not None and v != {}}
