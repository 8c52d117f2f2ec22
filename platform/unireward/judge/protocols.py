"""The protocol registry: prompt template, verdict phrases, score markers and scales per
(model family, task, mode).

The packaged registry lives in ``protocols.yaml`` beside this file; a user YAML with the same layout
overrides any subset of it. Loading validates everything and names the offending key on error.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..io import storage
from .types import JudgeItem, Mode, Task

DEFAULT_FAMILY = "qwen"
_PACKAGED = Path(__file__).with_name("protocols.yaml")
_PLACEHOLDER = re.compile(r"\{(prompt|first|second|candidate)\}")


class ProtocolError(ValueError):
    """A protocol definition is invalid (names the file and key)."""


@dataclass(frozen=True)
class ScoreScale:
    """An integer score the model writes after ``marker`` (e.g. "Final Score:"), from low to high."""

    name: str
    marker: str
    low: int
    high: int

    def values(self) -> range:
        return range(self.low, self.high + 1)

    def normalize(self, score: float) -> float:
        return (score - self.low) / (self.high - self.low)


@dataclass(frozen=True)
class Protocol:
    family: str
    task: Task
    mode: Mode
    template: str
    verdicts: Mapping[str, str] | None = None  # pair_rank: first / second [/ tie]
    scales: tuple[ScoreScale, ...] = ()  # point_score: one; point_multi: one per dimension
    answer_prefix: str = ""  # pair_rank: text the logit method forces before the verdict

    @property
    def id(self) -> str:
        return f"{self.family}/{self.task.value}/{self.mode.value}"

    @property
    def digest(self) -> str:
        """A short hash of everything that shapes the model's input and the reading of its output,
        so that provenance distinguishes overridden templates."""
        blob = json.dumps(
            [self.template, dict(self.verdicts or {}), [s.__dict__ for s in self.scales], self.answer_prefix],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def allows_tie(self) -> bool:
        return bool(self.verdicts and self.verdicts.get("tie"))

    def render(self, item: JudgeItem) -> str:
        """The text part of the user turn for ``item`` (visuals are added before it separately)."""
        values = {"prompt": item.prompt}
        if not self.task.is_generation:
            if self.mode is Mode.PAIR_RANK:
                values["first"], values["second"] = item.candidates[0], item.candidates[1]
            else:
                values["candidate"] = item.candidates[0]
        return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), m.group(0))), self.template)

    def score_options(self, scale: ScoreScale) -> dict[str, str]:
        """Logit method: the answer continuations of a score, keyed by the score value."""
        return {str(v): f"{scale.marker} {v}" for v in scale.values()}

    def verdict_options(self) -> dict[str, str]:
        """Logit method: the answer continuations of each verdict, keyed by verdict."""
        assert self.verdicts is not None
        return {k: f"{self.answer_prefix}{v}" for k, v in self.verdicts.items() if v}


def chat_messages(item: JudgeItem, protocol: Protocol) -> list[dict[str, Any]]:
    """The judge's chat for ``item``: one user turn, visuals first, then the protocol's text. The
    same chat is judged (RewardModel) and trained on (unireward.train.data)."""
    kind = Task(item.task).media_kind
    n_media = len(item.candidates) if protocol.task.is_generation else 1
    parts: list[dict[str, Any]] = [{"type": kind} for _ in range(n_media)]
    parts.append({"type": "text", "text": protocol.render(item)})
    return [{"role": "user", "content": parts}]


def _required_placeholders(task: Task, mode: Mode) -> set[str]:
    if task.is_generation:
        return {"prompt"}
    return {"prompt", "first", "second"} if mode is Mode.PAIR_RANK else {"prompt", "candidate"}


def _parse_protocol(family: str, task: Task, mode: Mode, spec: Any, where: str) -> Protocol:
    if not isinstance(spec, Mapping):
        raise ProtocolError(f"{where}: expected a mapping with a 'template', got {type(spec).__name__}")
    allowed = {"template", "verdicts", "score", "dimensions", "answer_prefix"}
    unknown = set(spec) - allowed
    if unknown:
        raise ProtocolError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    template = spec.get("template")
    if not isinstance(template, str) or not template.strip():
        raise ProtocolError(f"{where}.template: a non-empty string is required")
    used = set(_PLACEHOLDER.findall(template))
    need = _required_placeholders(task, mode)
    if need - used:
        raise ProtocolError(f"{where}.template: missing placeholder(s) {sorted('{' + p + '}' for p in need - used)}")
    if used - need:
        raise ProtocolError(
            f"{where}.template: placeholder(s) {sorted('{' + p + '}' for p in used - need)} do not apply to "
            f"{task.value}/{mode.value}"
        )
    answer_prefix = spec.get("answer_prefix", "")
    if not isinstance(answer_prefix, str):
        raise ProtocolError(f"{where}.answer_prefix: must be a string")

    verdicts = None
    scales: tuple[ScoreScale, ...] = ()
    if mode is Mode.PAIR_RANK:
        v = spec.get("verdicts")
        if not isinstance(v, Mapping) or not v.get("first") or not v.get("second"):
            raise ProtocolError(f"{where}.verdicts: 'first' and 'second' phrases are required (and optionally 'tie')")
        extra = set(v) - {"first", "second", "tie"}
        if extra:
            raise ProtocolError(f"{where}.verdicts: unknown verdict(s) {sorted(extra)}")
        phrases = [str(p) for p in v.values() if p]
        if len(set(phrases)) != len(phrases):
            raise ProtocolError(f"{where}.verdicts: phrases must be distinct")
        verdicts = {k: str(p) for k, p in v.items() if p}
        for key in ("score", "dimensions"):
            if key in spec:
                raise ProtocolError(f"{where}.{key}: pair_rank protocols have verdicts, not scores")
    else:
        if "verdicts" in spec:
            raise ProtocolError(f"{where}.verdicts: point protocols have scores, not verdicts")
        if mode is Mode.POINT_SCORE:
            if "score" not in spec:
                raise ProtocolError(f"{where}.score: required ({{marker, low, high}})")
            scales = (_parse_scale(spec["score"], f"{where}.score", default_name="score"),)
        else:
            dims = spec.get("dimensions")
            if not isinstance(dims, list) or not dims:
                raise ProtocolError(f"{where}.dimensions: a non-empty list of {{name, marker, low, high}} is required")
            scales = tuple(_parse_scale(d, f"{where}.dimensions[{i}]") for i, d in enumerate(dims))
            names = [s.name for s in scales]
            if len(set(names)) != len(names):
                raise ProtocolError(f"{where}.dimensions: names must be distinct, got {names}")
    return Protocol(family, task, mode, template, verdicts, scales, answer_prefix)


def _parse_scale(spec: Any, where: str, default_name: str | None = None) -> ScoreScale:
    if not isinstance(spec, Mapping):
        raise ProtocolError(f"{where}: expected a mapping {{marker, low, high}}")
    name = spec.get("name", default_name)
    marker, low, high = spec.get("marker"), spec.get("low"), spec.get("high")
    if not isinstance(name, str) or not name:
        raise ProtocolError(f"{where}.name: required")
    if not isinstance(marker, str) or not marker.strip():
        raise ProtocolError(f"{where}.marker: a non-empty string is required (e.g. 'Final Score:')")
    if not isinstance(low, int) or not isinstance(high, int) or isinstance(low, bool) or isinstance(high, bool):
        raise ProtocolError(f"{where}: 'low' and 'high' must be integers, got {low!r} and {high!r}")
    if not low < high:
        raise ProtocolError(f"{where}: low ({low}) must be below high ({high})")
    if low < 0 or high - low > 1000:
        raise ProtocolError(f"{where}: scale {low}-{high} is not supported (non-negative, at most 1001 values)")
    return ScoreScale(name, marker.strip(), low, high)


class ProtocolRegistry:
    """All protocols by (family, task, mode)."""

    def __init__(self, protocols: Mapping[tuple[str, Task, Mode], Protocol]):
        self._protocols = dict(protocols)

    @classmethod
    def from_mapping(
        cls, data: Any, source: str = "<mapping>", base: ProtocolRegistry | None = None
    ) -> ProtocolRegistry:
        if not isinstance(data, Mapping) or not isinstance(data.get("families"), Mapping):
            raise ProtocolError(f"{source}: expected a top-level 'families:' mapping")
        protocols = dict(base._protocols) if base else {}
        for family, tasks in data["families"].items():
            if not isinstance(tasks, Mapping):
                raise ProtocolError(f"{source}: families.{family} must map tasks to modes")
            for task_name, modes in tasks.items():
                try:
                    task = Task(task_name)
                except ValueError:
                    raise ProtocolError(
                        f"{source}: families.{family}.{task_name}: unknown task; expected one of {[t.value for t in Task]}"
                    ) from None
                if not isinstance(modes, Mapping):
                    raise ProtocolError(f"{source}: families.{family}.{task_name} must map modes to protocols")
                for mode_name, spec in modes.items():
                    where = f"{source}: families.{family}.{task_name}.{mode_name}"
                    try:
                        mode = Mode(mode_name)
                    except ValueError:
                        raise ProtocolError(
                            f"{where}: unknown mode; expected one of {[m.value for m in Mode]}"
                        ) from None
                    if mode is Mode.POINT_MULTI and not task.is_generation:
                        raise ProtocolError(f"{where}: point_multi exists only for generation tasks")
                    protocols[(str(family), task, mode)] = _parse_protocol(str(family), task, mode, spec, where)
        return cls(protocols)

    @classmethod
    def from_yaml(cls, path: str | Path, base: ProtocolRegistry | None = None) -> ProtocolRegistry:
        data = storage.read_yaml(path, ProtocolError, "protocol file")
        return cls.from_mapping(data, str(path), base)

    @classmethod
    def default(cls) -> ProtocolRegistry:
        return cls.from_yaml(_PACKAGED)

    def with_overrides(self, overrides: str | Path | Mapping | None) -> ProtocolRegistry:
        """A new registry where entries of ``overrides`` (a YAML path or a mapping) replace ours."""
        if overrides is None:
            return self
        if isinstance(overrides, Mapping):
            return ProtocolRegistry.from_mapping(overrides, "<overrides>", base=self)
        return ProtocolRegistry.from_yaml(overrides, base=self)

    def families(self) -> list[str]:
        return sorted({f for f, _, _ in self._protocols})

    def get(self, family: str, task: Task | str, mode: Mode | str) -> Protocol:
        key = (family, Task(task), Mode(mode))
        if key not in self._protocols:
            if family not in self.families():
                raise KeyError(f"unknown protocol family {family!r}; known: {self.families()}")
            raise KeyError(f"family {family!r} has no protocol for {Task(task).value}/{Mode(mode).value}")
        return self._protocols[key]

    def __iter__(self):
        return iter(sorted(self._protocols.values(), key=lambda p: p.id))

    def __len__(self) -> int:
        return len(self._protocols)


_default: ProtocolRegistry | None = None


def default_registry() -> ProtocolRegistry:
    global _default
    if _default is None:
        _default = ProtocolRegistry.default()
    return _default
