"""The protocol registry: everything that shapes a judge's input and the reading of its output, per
(model family, task, mode).

A protocol holds the prompt template, the verdict phrases (pairs), the score markers and scales
(points; decimals allowed), the names of the two candidates in a pair-score answer, the answer
prefix the logit method forces, and, where a released checkpoint's official inference needs them,
how its media are sampled and sized, its decoding budget, whether it reasons before its verdict,
and a ``think`` variant of its template for the generate method.

The packaged registry lives in ``protocols.yaml`` beside this file (the project's own wording). A
*checkpoint profile* is a file with the same layout (``unireward protocols import-upstream`` writes
one from the official repository of the released checkpoints): given to a judge, it overrides the
protocols it covers, and its ``profile:`` section may name the family the judge then uses by
default. Loading validates everything and names the offending key on error.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..io import storage
from ..io.media import MediaLimits
from .types import JudgeItem, Mode, Task

DEFAULT_FAMILY = "qwen"
_PACKAGED = Path(__file__).with_name("protocols.yaml")
_PLACEHOLDER = re.compile(r"\{(prompt|first|second|candidate)\}")
MEDIA_KEYS = tuple(f.name for f in fields(MediaLimits))


class ProtocolError(ValueError):
    """A protocol definition is invalid (names the file and key)."""


@dataclass(frozen=True)
class ScoreScale:
    """A score the model writes after ``marker`` (e.g. "Final Score:"), from ``low`` to ``high``;
    ``decimals`` > 0 when the checkpoint writes decimal scores (e.g. 3.5 on 1-5): the logit method
    then reads them to that many decimal places."""

    name: str
    marker: str
    low: int
    high: int
    decimals: int = 0

    def values(self) -> range:
        return range(self.low, self.high + 1)

    def options(self) -> dict[str, float]:
        """Every answer the logit method reads, as written, with its value: the integers, and with
        ``decimals`` every decimal value of the scale too (both "3" and "3.0" are read as 3)."""
        out = {str(v): float(v) for v in self.values()}
        if self.decimals:
            step = 10**self.decimals
            for k in range(self.low * step, self.high * step + 1):
                out[f"{k / step:.{self.decimals}f}"] = k / step
        return out

    def normalize(self, score: float) -> float:
        return (score - self.low) / (self.high - self.low)


@dataclass(frozen=True)
class Protocol:
    family: str
    task: Task
    mode: Mode
    template: str
    verdicts: Mapping[str, str] | None = None  # pair_rank: first / second [/ tie]
    scales: tuple[ScoreScale, ...] = ()  # point_score: one; point_multi and pair_score: one per dimension
    answer_prefix: str = ""  # pair_rank: text the logit method forces before the verdict
    labels: tuple[str, str] | None = None  # pair_score: how the answer names the two candidates ("Image 1", ...)
    max_new_tokens: int | None = None  # the generate method's budget (None: the judge's default)
    reasons: bool = False  # the template asks for reasoning before the verdict: read with the generate method only
    think_template: str | None = None  # the generate method's ``think`` option: reason first, then answer
    think_max_new_tokens: int | None = None
    media: Mapping[str, Any] = field(default_factory=dict)  # MediaLimits fields the checkpoint's inference sets

    @property
    def id(self) -> str:
        return f"{self.family}/{self.task.value}/{self.mode.value}"

    @property
    def digest(self) -> str:
        """A short hash of everything that shapes the model's input and the reading of its output,
        so that provenance distinguishes overridden templates and profiles."""
        blob = json.dumps(
            [
                self.template,
                dict(self.verdicts or {}),
                [s.__dict__ for s in self.scales],
                self.answer_prefix,
                self.labels,
                self.max_new_tokens,
                self.reasons,
                self.think_template,
                self.think_max_new_tokens,
                dict(self.media),
            ],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def allows_tie(self) -> bool:
        return bool(self.verdicts and self.verdicts.get("tie"))

    @property
    def reads_logits(self) -> bool:
        """Whether the logit method can read this protocol's answer (one that reasons first, or a
        pair of free-form scores, is read from generated text)."""
        return not self.reasons and self.mode is not Mode.PAIR_SCORE

    def render(self, item: JudgeItem, think: bool = False) -> str:
        """The text part of the user turn for ``item`` (visuals are added before it separately)."""
        values = {"prompt": item.prompt}
        if not self.task.is_generation:
            if self.mode is Mode.PAIR_RANK:
                values["first"], values["second"] = item.candidates[0], item.candidates[1]
            else:
                values["candidate"] = item.candidates[0]
        template = self.think_template if think else self.template
        if template is None:
            raise ProtocolError(f"{self.id} has no think variant (a 'think' template)")
        return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), m.group(0))), template)

    def score_options(self, scale: ScoreScale) -> dict[str, str]:
        """Logit method: the answer continuations of a score, keyed by the score as written."""
        return {k: f"{scale.marker} {k}" for k in scale.options()}

    def verdict_options(self) -> dict[str, str]:
        """Logit method: the answer continuations of each verdict, keyed by verdict."""
        assert self.verdicts is not None
        return {k: f"{self.answer_prefix}{v}" for k, v in self.verdicts.items() if v}

    def media_limits(self, base: MediaLimits) -> MediaLimits:
        """The judge's media limits with this protocol's own settings on top."""
        if not self.media:
            return base
        from dataclasses import replace

        return replace(base, **dict(self.media))

    def budget(self, default: int, think: bool = False) -> int:
        """The generate method's new-token budget."""
        if think:
            return self.think_max_new_tokens or self.max_new_tokens or default
        return self.max_new_tokens or default


def chat_messages(item: JudgeItem, protocol: Protocol, think: bool = False) -> list[dict[str, Any]]:
    """The judge's chat for ``item``: one user turn, visuals first (the context, then the candidates
    that are visuals), then the protocol's text. The same chat is judged (RewardModel) and trained
    on (unireward.train.data); a video sent as separate frames is expanded when it is encoded."""
    kind = Task(item.task).media_kind
    parts: list[dict[str, Any]] = [{"type": kind} for _ in item.visuals()]
    parts.append({"type": "text", "text": protocol.render(item, think)})
    return [{"role": "user", "content": parts}]


def _required_placeholders(task: Task, mode: Mode) -> set[str]:
    if task.is_generation:
        return {"prompt"}
    return {"prompt", "first", "second"} if mode is Mode.PAIR_RANK else {"prompt", "candidate"}


def _check_template(template: Any, task: Task, mode: Mode, where: str) -> str:
    if not isinstance(template, str) or not template.strip():
        raise ProtocolError(f"{where}: a non-empty string is required")
    used = set(_PLACEHOLDER.findall(template))
    need = _required_placeholders(task, mode)
    if need - used:
        raise ProtocolError(f"{where}: missing placeholder(s) {sorted('{' + p + '}' for p in need - used)}")
    if used - need:
        raise ProtocolError(
            f"{where}: placeholder(s) {sorted('{' + p + '}' for p in used - need)} do not apply to "
            f"{task.value}/{mode.value}"
        )
    return template


def _positive_int(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ProtocolError(f"{where}: a positive integer is required, got {value!r}")
    return value


def _parse_media(spec: Any, where: str) -> dict[str, Any]:
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise ProtocolError(f"{where}: expected a mapping of media settings")
    unknown = set(spec) - set(MEDIA_KEYS)
    if unknown:
        raise ProtocolError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(MEDIA_KEYS)}")
    from pydantic import ValidationError

    from ..config import MediaConfig, format_validation_error

    try:
        MediaConfig.model_validate(dict(spec))
    except ValidationError as e:
        raise ProtocolError(format_validation_error(e, where)) from None
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.items()}


def _parse_protocol(family: str, task: Task, mode: Mode, spec: Any, where: str) -> Protocol:
    if not isinstance(spec, Mapping):
        raise ProtocolError(f"{where}: expected a mapping with a 'template', got {type(spec).__name__}")
    allowed = {
        "template",
        "verdicts",
        "score",
        "dimensions",
        "labels",
        "answer_prefix",
        "max_new_tokens",
        "reasons",
        "think",
        "media",
    }
    unknown = set(spec) - allowed
    if unknown:
        raise ProtocolError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    template = _check_template(spec.get("template"), task, mode, f"{where}.template")
    answer_prefix = spec.get("answer_prefix", "")
    if not isinstance(answer_prefix, str):
        raise ProtocolError(f"{where}.answer_prefix: must be a string")
    reasons = spec.get("reasons", False)
    if not isinstance(reasons, bool):
        raise ProtocolError(f"{where}.reasons: true or false")
    think_template, think_budget = None, None
    if spec.get("think") is not None:
        think = spec["think"]
        if not isinstance(think, Mapping) or set(think) - {"template", "max_new_tokens"}:
            raise ProtocolError(f"{where}.think: expected {{template, max_new_tokens}}")
        think_template = _check_template(think.get("template"), task, mode, f"{where}.think.template")
        think_budget = _positive_int(think.get("max_new_tokens"), f"{where}.think.max_new_tokens")

    verdicts = None
    labels = None
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
        for key in ("score", "dimensions", "labels"):
            if key in spec:
                raise ProtocolError(f"{where}.{key}: pair_rank protocols have verdicts, not scores")
    else:
        if "verdicts" in spec:
            raise ProtocolError(f"{where}.verdicts: score protocols have scores, not verdicts")
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
        if mode is Mode.PAIR_SCORE:
            lab = spec.get("labels")
            if (
                not isinstance(lab, list)
                or len(lab) != 2
                or not all(isinstance(x, str) and x.strip() for x in lab)
                or lab[0] == lab[1]
            ):
                raise ProtocolError(
                    f"{where}.labels: the two candidates' names in the answer are required, e.g. ['Image 1', 'Image 2']"
                )
            labels = (lab[0].strip(), lab[1].strip())
        elif "labels" in spec:
            raise ProtocolError(f"{where}.labels: only pair_score protocols name their candidates")
    return Protocol(
        family,
        task,
        mode,
        template,
        verdicts,
        scales,
        answer_prefix,
        labels,
        max_new_tokens=_positive_int(spec.get("max_new_tokens"), f"{where}.max_new_tokens"),
        reasons=reasons,
        think_template=think_template,
        think_max_new_tokens=think_budget,
        media=_parse_media(spec.get("media"), f"{where}.media"),
    )


def _parse_scale(spec: Any, where: str, default_name: str | None = None) -> ScoreScale:
    if not isinstance(spec, Mapping):
        raise ProtocolError(f"{where}: expected a mapping {{marker, low, high}}")
    unknown = set(spec) - {"name", "marker", "low", "high", "decimals"}
    if unknown:
        raise ProtocolError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: name, marker, low, high, decimals")
    name = spec.get("name", default_name)
    marker, low, high = spec.get("marker"), spec.get("low"), spec.get("high")
    decimals = spec.get("decimals", 0)
    if not isinstance(name, str) or not name:
        raise ProtocolError(f"{where}.name: required")
    if not isinstance(marker, str) or not marker.strip():
        raise ProtocolError(f"{where}.marker: a non-empty string is required (e.g. 'Final Score:')")
    if not isinstance(low, int) or not isinstance(high, int) or isinstance(low, bool) or isinstance(high, bool):
        raise ProtocolError(f"{where}: 'low' and 'high' must be integers, got {low!r} and {high!r}")
    if not low < high:
        raise ProtocolError(f"{where}: low ({low}) must be below high ({high})")
    if not isinstance(decimals, int) or isinstance(decimals, bool) or not 0 <= decimals <= 2:
        raise ProtocolError(f"{where}.decimals: 0, 1 or 2, got {decimals!r}")
    if low < 0 or (high - low) * 10**decimals > 1000:
        raise ProtocolError(
            f"{where}: scale {low}-{high} with {decimals} decimal(s) is not supported "
            "(non-negative, at most 1001 values)"
        )
    return ScoreScale(name, marker.strip(), low, high, decimals)


class ProtocolRegistry:
    """All protocols by (family, task, mode), and the profile they came from (if any)."""

    def __init__(self, protocols: Mapping[tuple[str, Task, Mode], Protocol], profile: Mapping[str, Any] | None = None):
        self._protocols = dict(protocols)
        self.profile: dict[str, Any] = dict(profile or {})

    @classmethod
    def from_mapping(
        cls, data: Any, source: str = "<mapping>", base: ProtocolRegistry | None = None
    ) -> ProtocolRegistry:
        if not isinstance(data, Mapping) or not isinstance(data.get("families"), Mapping):
            raise ProtocolError(f"{source}: expected a top-level 'families:' mapping")
        unknown = set(data) - {"version", "profile", "families"}
        if unknown:
            raise ProtocolError(
                f"{source}: unknown top-level key(s) {sorted(unknown)}; allowed: version, profile, families"
            )
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
                    if mode in (Mode.POINT_MULTI, Mode.PAIR_SCORE) and not task.is_generation:
                        raise ProtocolError(f"{where}: {mode.value} exists only for generation and editing tasks")
                    protocols[(str(family), task, mode)] = _parse_protocol(str(family), task, mode, spec, where)
        profile = _parse_profile(data.get("profile"), source, {f for f, _, _ in protocols})
        if profile:
            profile["digest"] = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return cls(protocols, profile or (base.profile if base else None))

    @classmethod
    def from_yaml(cls, path: str | Path, base: ProtocolRegistry | None = None) -> ProtocolRegistry:
        data = storage.read_yaml(path, ProtocolError, "protocol file")
        return cls.from_mapping(data, str(path), base)

    @classmethod
    def default(cls) -> ProtocolRegistry:
        return cls.from_yaml(_PACKAGED)

    def with_overrides(self, overrides: str | Path | Mapping | None) -> ProtocolRegistry:
        """A new registry where entries of ``overrides`` (a YAML path or a mapping: a profile, or a
        few protocols) replace ours."""
        if overrides is None:
            return self
        if isinstance(overrides, Mapping):
            return ProtocolRegistry.from_mapping(overrides, "<overrides>", base=self)
        return ProtocolRegistry.from_yaml(overrides, base=self)

    @property
    def default_family(self) -> str:
        """The family a judge uses when none is named: the profile's, else ``qwen``."""
        return self.profile.get("family") or DEFAULT_FAMILY

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


def _parse_profile(spec: Any, source: str, families: set[str]) -> dict[str, Any]:
    """A profile's ``profile:`` section: ``name``, ``family`` (the family a judge uses by default),
    ``source`` (where its text came from), free-form ``notes``."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise ProtocolError(f"{source}: profile: expected a mapping")
    unknown = set(spec) - {"name", "family", "source", "notes"}
    if unknown:
        raise ProtocolError(
            f"{source}: profile: unknown key(s) {sorted(unknown)}; allowed: name, family, source, notes"
        )
    family = spec.get("family")
    if family is not None and family not in families:
        raise ProtocolError(f"{source}: profile.family {family!r} has no protocols; families: {sorted(families)}")
    return dict(spec)


_default: ProtocolRegistry | None = None


def default_registry() -> ProtocolRegistry:
    global _default
    if _default is None:
        _default = ProtocolRegistry.default()
    return _default
