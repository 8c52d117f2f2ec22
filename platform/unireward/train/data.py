"""Judge training data (``kind: train_reward``), the pure part: preference records become
(chat, target) examples through the same protocol templates the judge is read with, the original
UnifiedReward conversation format is imported, and sources are sampled and mixed as the original
does (``all``, ``first:N``, ``end:N``, ``random:N``, ``N%``).

A target is exactly what the logit method reads back: the protocol's answer prefix and verdict
phrase for a pair, "marker N" for a score, one "marker N" line per dimension for multi-dimension
scores. Training on these targets makes the trained judge's verdicts readable from one forward pass.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import SAMPLING_RULE
from ..judge.protocols import Protocol, chat_messages
from ..judge.types import JudgeItem, Mode, Task

_PLACEHOLDERS = re.compile(r"<(image|video)>\s*")


class DataError(ValueError):
    """A training record or a sampling rule that cannot be used (the message says which and why)."""


def sample(rows: Sequence[Any], rule: str, seed: int = 0) -> list[Any]:
    """The rows a source contributes under the original's sampling rules: ``all``; ``first:N`` and
    ``end:N`` (the first or last N); ``random:N`` (N drawn without replacement, seeded); ``N%`` (that
    share, drawn like random). Order is kept for first/end/all and is the draw's for random."""
    m = SAMPLING_RULE.match(rule.strip())
    if not m:
        raise DataError(f"sampling {rule!r}: expected all, first:N, end:N, random:N or N%")
    rows = list(rows)
    if m.group(1) == "all":
        return rows
    if m.group(2):
        return rows[: int(m.group(2))]
    if m.group(3):
        n = int(m.group(3))
        return rows[len(rows) - n :] if n else []
    n = int(m.group(4)) if m.group(4) else round(len(rows) * float(m.group(5)) / 100)
    if m.group(5) and float(m.group(5)) > 100:
        raise DataError(f"sampling {rule!r}: a share cannot exceed 100%")
    return random.Random(seed).sample(rows, min(n, len(rows)))


def mix(sources: Mapping[str, Sequence[Any]], weights: Mapping[str, float], total: int, seed: int = 0) -> list[Any]:
    """``total`` rows drawn from ``sources`` in proportion to ``weights`` (per task or per source):
    each source gives its share, without replacement while it lasts, then with replacement; the
    result is shuffled. A source with weight 0 contributes nothing; a weight for an unknown source
    is an error."""
    unknown = set(weights) - set(sources)
    if unknown:
        raise DataError(f"mixing weights for unknown sources: {sorted(unknown)}")
    if any(w < 0 for w in weights.values()) or not any(weights.get(k, 0) > 0 for k in sources):
        raise DataError("mixing weights must be >= 0 with at least one > 0")
    rng = random.Random(seed)
    keys = [k for k in sources if weights.get(k, 0) > 0]
    norm = sum(weights[k] for k in keys)
    counts = {k: int(total * weights[k] / norm) for k in keys}
    for k in sorted(keys, key=lambda k: -(total * weights[k] / norm - counts[k]))[: total - sum(counts.values())]:
        counts[k] += 1  # largest remainders
    out: list[Any] = []
    for k in keys:
        rows = list(sources[k])
        if counts[k] and not rows:
            raise DataError(f"source {k!r} is empty but has weight {weights[k]}")
        draw = rng.sample(rows, min(counts[k], len(rows)))
        draw += [rng.choice(rows) for _ in range(counts[k] - len(draw))]
        out += draw
    rng.shuffle(out)
    return out


def target_text(protocol: Protocol, label: Any) -> str:
    """The assistant's answer for ``label``: a verdict key (first/second/tie) for pairs, an integer
    score for points, a {dimension: score} mapping for multi-dimension scores."""
    if protocol.mode is Mode.PAIR_RANK:
        verdicts = protocol.verdicts or {}
        if label not in verdicts or not verdicts[label]:
            raise DataError(
                f"{protocol.id}: label {label!r} is not one of its verdicts {sorted(k for k, v in verdicts.items() if v)}"
            )
        return f"{protocol.answer_prefix}{verdicts[label]}."
    if protocol.mode is Mode.POINT_SCORE:
        scale = protocol.scales[0]
        return f"{scale.marker} {_score(label, scale, protocol)}"
    if not isinstance(label, Mapping):
        raise DataError(f"{protocol.id}: a multi-dimension label must map each dimension to a score")
    missing = [s.name for s in protocol.scales if s.name not in label]
    if missing:
        raise DataError(f"{protocol.id}: the label lacks the dimensions {missing}")
    return "\n".join(f"{s.marker} {_score(label[s.name], s, protocol)}" for s in protocol.scales)


def _score(value: Any, scale, protocol: Protocol) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise DataError(f"{protocol.id}: score {value!r} is not an integer")
    if not scale.low <= value <= scale.high:
        raise DataError(f"{protocol.id}: score {value} is outside {scale.low}-{scale.high}")
    return int(value)


@dataclass
class SFTExample:
    """One training example: the chat (user turn with media placeholders and text), the media in
    order, and the assistant target. Only the target's tokens carry loss."""

    messages: list[dict[str, Any]]
    media: list[Any]
    media_kind: str  # "image" or "video"
    target: str
    task: str
    source: str = ""

    def conversation(self) -> list[dict[str, Any]]:
        return self.messages + [{"role": "assistant", "content": [{"type": "text", "text": self.target}]}]


THINK_NOUNS = {"image_generation": "Image", "video_generation": "Video"}  # understanding: "Answer"


def think_text(task: str, rationales: Sequence[str]) -> str:
    """Reasoning before a pairwise verdict: what each candidate is, in the order shown
    ("<think>Image 1: ... Image 2: ...</think>" and a line break); the parser reads the verdict
    after it, and the generate method reads its probabilities there."""
    noun = THINK_NOUNS.get(str(task), "Answer")
    return "<think>" + " ".join(f"{noun} {k + 1}: {r}." for k, r in enumerate(rationales)) + "</think>\n"


def from_preference(
    item: JudgeItem, protocol: Protocol, label: Any, source: str = "", rationales: Sequence[str] | None = None
) -> SFTExample:
    """A project-schema preference (a judge item with its ground-truth label) as an SFT example,
    through the protocol the judge reads it with. ``rationales`` (pairs): reasoning about each
    candidate, in the item's order; the target then reasons first (``think_text``), then gives the
    verdict."""
    problem = item.problem()
    if problem:
        raise DataError(f"item {item.id or '?'}: {problem}")
    task = Task(item.task)
    media = item.visuals()
    target = target_text(protocol, label)
    if rationales is not None:
        if (
            protocol.mode is not Mode.PAIR_RANK
            or len(rationales) != 2
            or not all(isinstance(r, str) and r for r in rationales)
        ):
            raise DataError(f"item {item.id or '?'}: reasoning needs one non-empty rationale per candidate of a pair")
        target = think_text(task.value, rationales) + target
    return SFTExample(
        messages=chat_messages(item, protocol),
        media=media,
        media_kind=task.media_kind,
        target=target,
        task=task.value,
        source=source,
    )


def from_conversation(record: Mapping[str, Any], task: str, source: str = "") -> SFTExample:
    """A record in the original's format, ``{"image" | "images" | "video": ..., "conversations":
    [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]}``, as an SFT example. The
    ``<image>``/``<video>`` placeholders in the human turn are removed (the visuals go first, as in
    the judge's chats); their count must match the media given."""
    try:
        Task(task)
    except ValueError:
        raise DataError(f"unknown task {task!r}; expected one of {[t.value for t in Task]}") from None
    convs = record.get("conversations")
    if not isinstance(convs, list) or len(convs) < 2:
        raise DataError("a conversation record needs 'conversations': [human, gpt]")
    human, gpt = convs[0], convs[1]
    if human.get("from") != "human" or gpt.get("from") != "gpt":
        raise DataError(
            f"conversations must start with a human then a gpt turn, got {human.get('from')!r}, {gpt.get('from')!r}"
        )
    text, answer = str(human.get("value", "")), str(gpt.get("value", ""))
    if not answer.strip():
        raise DataError("the gpt turn is empty: nothing to train on")
    if "video" in record:
        kind, media = "video", [record["video"]]
    elif "images" in record:
        kind, media = "image", list(record["images"])
    elif "image" in record:
        kind, media = "image", [record["image"]] if not isinstance(record["image"], list) else list(record["image"])
    else:
        kind, media = Task(task).media_kind, []
    placeholders = _PLACEHOLDERS.findall(text)
    if placeholders and len(placeholders) != len(media):
        raise DataError(
            f"the human turn has {len(placeholders)} media placeholders but the record gives {len(media)} {kind}(s)"
        )
    parts: list[dict[str, Any]] = [{"type": kind} for _ in media]
    parts.append({"type": "text", "text": _PLACEHOLDERS.sub("", text).strip()})
    return SFTExample(
        messages=[{"role": "user", "content": parts}],
        media=media,
        media_kind=kind,
        target=answer,
        task=Task(task).value,
        source=source,
    )


# ------------------------------------------------------------------------------------ sources
def example_from_item_row(
    row: Mapping[str, Any], protocol_for, source: str = "", swap: bool = False, think: bool = False
) -> SFTExample | None:
    """An item row (the ``item`` schema, media already resolved) with its ground truth as an SFT
    example: a pair with its ``label`` (first/second/tie), a point with ``gt_scores[0]`` in [0, 1]
    mapped onto the protocol's scale. ``swap`` gives the pair in the other order (label swapped).
    ``think``: a pair with ``rationales`` reasons about each candidate before its verdict.
    Returns None for a row without ground truth; raises DataError for a malformed one."""
    from ..judge.records import item_from_record

    item = item_from_record(dict(row))
    problem = item.problem()
    if problem:
        raise DataError(f"item {row.get('item_id') or '?'}: {problem}")
    mode = item.resolved_mode()
    protocol: Protocol = protocol_for(item.task, mode)
    if mode is Mode.PAIR_RANK:
        label = row.get("label")
        if label is None:
            return None
        why = list(row.get("rationales") or []) if think else None
        if think and not why:
            raise DataError(f"item {row.get('item_id') or '?'}: think needs the pair's rationales")
        if swap:
            item, label = item.swapped(), {"first": "second", "second": "first"}.get(label, label)
            why = why[::-1] if why else why
        return from_preference(item, protocol, label, source, rationales=why)
    if mode is Mode.POINT_SCORE:
        gt = row.get("gt_scores") or [None]
        if gt[0] is None:
            return None
        if not 0 <= gt[0] <= 1:
            raise DataError(f"item {row.get('item_id') or '?'}: gt_scores[0] {gt[0]} is outside [0, 1]")
        scale = protocol.scales[0]
        return from_preference(item, protocol, round(scale.low + gt[0] * (scale.high - scale.low)), source)
    raise DataError(f"item {row.get('item_id') or '?'}: mode {mode.value} has no training target here")


def group_key(row: Mapping[str, Any]) -> str:
    """The prompt a row belongs to (task, prompt, context): held-out splits never share a prompt
    with training."""
    import hashlib

    return hashlib.sha1(f"{row.get('task')}\x00{row.get('prompt')}\x00{row.get('context')}".encode()).hexdigest()


def held_out(key: str, fraction: float, seed: int = 0) -> bool:
    """Whether the group ``key`` is held out: a seeded hash puts about ``fraction`` of the groups
    there, stable under reordering and resampling of the rows."""
    import hashlib

    return int(hashlib.sha1(f"{seed}:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def split(rows: Sequence[Any], key, fraction: float, seed: int = 0) -> tuple[list, list]:
    """(train, held-out) by ``held_out(key(row))``: a group is wholly on one side."""
    train, held = [], []
    for r in rows:
        (held if held_out(key(r), fraction, seed) else train).append(r)
    return train, held


def split_by_prompt(rows: Sequence[Mapping[str, Any]], fraction: float, seed: int = 0) -> tuple[list, list]:
    """(train, held-out) with about ``fraction`` of the prompts held out."""
    return split(rows, group_key, fraction, seed)
