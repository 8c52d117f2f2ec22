"""Reading verdicts and scores out of a judge's free text.

Rules (see docs/judge.md):
- The text is NFKC-normalised (full-width digits, non-breaking spaces).
- Where the answer is fenced, only the fence counts: the last ``<answer>...</answer>`` block, else the
  text after the last ``</think>``; an unclosed ``<think>`` means the reasoning was cut off before a
  verdict, which is unparsed. For pairs, if "Overall Judgment" occurs, only the text after its last
  occurrence counts.
- Pairs: every verdict phrase is found ("Image 1 is better", "... better than Image 2", "Answer 2 is
  better", "Both images are equally good", ...); "Image 10" is not "Image 1"; "Image 1 is better in
  colour" judges one aspect and is not a verdict ("better in every respect" is). If the phrases agree,
  that is the verdict. If they conflict, the verdict of the last sentence that holds one is used,
  unless that sentence itself holds conflicting verdicts (then: unparsed).
- Scores: the number right after the LAST score marker ("Final Score:"), never the first integer
  anywhere; decimals are read as written (3.5); a value outside the protocol's scale is unparsed.
- Pair scores (UnifiedReward-2.0): under each dimension's marker, the number after each candidate's
  name ("Image 1: 0.43", "Image 2: 0.57"); the verdict goes to the higher mean, equal means are a
  tie, and the margin is the difference.
- Reasoning (UnifiedReward-Think): the verdict comes from the answer; the per-dimension scores
  ("Image 1 (9/10)") and totals ("Image 1: 9+8+8=25") in the reasoning are kept as dims and scores.
- Nothing ever defaults to a verdict or a score: failure is ``status=unparsed`` with the reason.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from .protocols import Protocol, ScoreScale
from .types import Mode, Status

_NOUN = r"(image|video|answer|response|candidate|picture|clip)"
_PAIR_RE = re.compile(
    rf"\b{_NOUN}\s*#?\s*([12])(?!\d)\s+is\s+(?:clearly\s+|slightly\s+|much\s+|the\s+)?better"
    rf"(?:\s+than\s+(?:the\s+)?(?:{_NOUN}\s*#?\s*)?([12])(?!\d))?",
    re.IGNORECASE,
)
_TIE_RE = re.compile(
    rf"\b(?:both|the\s+two|they)(?:\s+{_NOUN}s?)?\s+are\s+(?:both\s+)?"
    r"(?:equally\s+(?:good|bad|acceptable)|of\s+equal\s+quality|tied)"
    r"|\bit(?:'s|\s+is)\s+a\s+tie\b|\bneither\s+(?:one\s+)?is\s+better\b",
    re.IGNORECASE,
)
# "Image 1 is better in colour" compares one aspect: it is reasoning, not a verdict ...
_QUALIFIED = re.compile(r"\s+(?:in|at|on|for|regarding|with\s+respect\s+to|when\s+it\s+comes\s+to)\b", re.IGNORECASE)
# ... unless the aspect is everything ("better in every respect", "better in terms of overall quality")
_UNQUALIFIED = re.compile(
    r"\s+(?:in|on|for)\s+(?:terms\s+of\s+)?(?:overall|every|all|general|the\s+end)\b", re.IGNORECASE
)
_OVERALL_RE = re.compile(r"overall\s+judge?ment", re.IGNORECASE)
_ANSWER_BLOCK_RE = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_SENTENCE_END = re.compile(r"[.!?\n;。！？；]")
_NUMBER = r"(-?\d+(?:\.\d+)?)"


@dataclass
class Parsed:
    status: Status
    reason: str | None = None
    verdict: str | None = None
    score: float | None = None
    dims: dict[str, float] | None = None
    scores: list[float] | None = None  # pair_score, Think: each candidate's score
    margin: float | None = None  # pair_score: first's score minus second's


def normalize_text(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "")


def answer_region(text: str, pair: bool = True) -> tuple[str | None, str | None]:
    """The part of ``text`` that holds the answer, or (None, reason) when there is none.
    ``pair``: also cut at the last "Overall Judgment" (the pairwise verdict form)."""
    text = normalize_text(text)
    if not text.strip():
        return None, "empty output"
    blocks = _ANSWER_BLOCK_RE.findall(text)
    if blocks:
        return blocks[-1], None
    lower = text.lower()
    if "<answer>" in lower:  # opened but never closed: generation was cut off inside the answer
        return text[lower.rindex("<answer>") + len("<answer>") :], None
    if "</think>" in lower:  # (chat templates may put the opening <think> in the prompt)
        text = text[lower.rindex("</think>") + len("</think>") :]
        if not text.strip():
            return None, "nothing after the reasoning (</think>)"
    elif "<think>" in lower:
        return None, "reasoning (<think>) was cut off before any answer"
    if pair:
        overall = list(_OVERALL_RE.finditer(text))
        if overall:
            text = text[overall[-1].end() :]
    return text, None


def _verdict_matches(region: str) -> list[tuple[int, str]]:
    """(position, verdict) for every verdict phrase in ``region``."""
    found = []
    for m in _PAIR_RE.finditer(region):
        winner, loser = m.group(2), m.group(4)
        if loser is not None and loser == winner:  # "Image 1 is better than Image 1": nonsense
            continue
        rest = region[m.end() :]
        if loser is None and _QUALIFIED.match(rest) and not _UNQUALIFIED.match(rest):
            continue  # "Image 1 is better in colour": one aspect, not the verdict
        found.append((m.start(), "first" if winner == "1" else "second"))
    for m in _TIE_RE.finditer(region):
        found.append((m.start(), "tie"))
    return sorted(found)


def parse_pair(text: str) -> Parsed:
    region, why = answer_region(text)
    if region is None:
        return Parsed(Status.UNPARSED, why)
    found = _verdict_matches(region)
    if not found:
        return Parsed(Status.UNPARSED, "no verdict phrase found")
    kinds = {v for _, v in found}
    if len(kinds) == 1:
        return Parsed(Status.OK, verdict=found[0][1])
    # Conflicting phrases (reasoning usually discusses both): the conclusion is the last sentence
    # that holds a verdict, if that sentence is itself unambiguous.
    last_pos = found[-1][0]
    starts = [m.end() for m in _SENTENCE_END.finditer(region, 0, last_pos)]
    sent_start = starts[-1] if starts else 0
    end_m = _SENTENCE_END.search(region, last_pos)
    sent_end = end_m.start() if end_m else len(region)
    in_sentence = {v for p, v in found if sent_start <= p < sent_end}
    if len(in_sentence) == 1:
        return Parsed(
            Status.OK, verdict=in_sentence.pop(), reason="conflicting verdict phrases; used the last sentence"
        )
    return Parsed(Status.UNPARSED, f"conflicting verdicts in the concluding sentence: {sorted(in_sentence)}")


def _marker_regex(marker: str) -> re.Pattern:
    """A forgiving regex for a score marker such as 'Final Score:' or 'Alignment Score (1-5):':
    any case and spacing, optional markdown emphasis, optional '(lo-hi)' range, ':' or full-width."""
    core = marker.strip().rstrip(":：").strip()
    core = re.sub(r"\s*\(\s*\d+\s*-\s*\d+\s*\)\s*$", "", core)  # the range is optional
    words = [re.escape(w) for w in core.split()]
    pattern = r"\s*".join(words) + r"\s*(?:\(\s*\d+\s*[-–~]\s*\d+\s*\))?\s*\**\s*[:：]\s*\**"
    return re.compile(pattern, re.IGNORECASE)


def read_score(region: str, scale: ScoreScale) -> tuple[float | None, str | None]:
    """The number after the last occurrence of the scale's marker in ``region``."""
    hits = list(_marker_regex(scale.marker).finditer(region))
    if not hits:
        return None, f"no '{scale.marker}' marker found"
    after = region[hits[-1].end() :]
    m = re.match(r"\s*[\[\(\*]*\s*" + _NUMBER, after)
    if not m:
        return None, f"no number after the last '{scale.marker}'"
    value = float(m.group(1))
    if not scale.low <= value <= scale.high:
        return None, f"{scale.name} {m.group(1)} is outside the scale {scale.low}-{scale.high}"
    return value, None


def parse_point(text: str, protocol: Protocol) -> Parsed:
    region, why = answer_region(text, pair=False)
    if region is None:
        return Parsed(Status.UNPARSED, why)
    if protocol.mode is Mode.POINT_SCORE:
        score, why = read_score(region, protocol.scales[0])
        if score is None:
            return Parsed(Status.UNPARSED, why)
        return Parsed(Status.OK, score=score)
    dims: dict[str, float] = {}
    missing = []
    for scale in protocol.scales:
        value, why = read_score(region, scale)
        if value is None:
            missing.append(why)
        else:
            dims[scale.name] = value
    if missing:
        return Parsed(Status.UNPARSED, "; ".join(missing), dims=dims or None)
    return Parsed(Status.OK, score=sum(dims.values()) / len(dims), dims=dims)


_DIM_SCORE = re.compile(rf"\b{_NOUN}\s*([12])\s*\(\s*{_NUMBER}\s*/\s*\d+\s*\)", re.IGNORECASE)
_TOTAL = re.compile(rf"\b{_NOUN}\s*([12])\s*[:：]\s*[\d.+\s]*=\s*{_NUMBER}", re.IGNORECASE)
_HEADER = re.compile(r"^\s*(?:\d+\.\s*)?\[?([^\n:\[\]]{1,60}?)\]?\s*[:：]\s*$", re.MULTILINE)


def reasoning_scores(text: str) -> tuple[dict[str, float] | None, list[float] | None]:
    """The per-dimension scores ("<dimension>: Image 1 (9/10) ... Image 2 (7/10)") and the totals
    ("Image 1: 9+8+8=25") a reasoning judge writes before its answer, as ``dims`` keyed
    "<dimension>/1", "<dimension>/2" and ``scores`` (the totals, else the dimensions' sums)."""
    text = normalize_text(text)
    lower = text.lower()
    if "<think>" in lower or "</think>" in lower:
        end = lower.rfind("</think>")
        text = text[: end if end >= 0 else len(text)]
    dims: dict[str, float] = {}
    headers = [(m.start(), m.group(1).strip().lower()) for m in _HEADER.finditer(text)]
    for k, m in enumerate(_DIM_SCORE.finditer(text)):
        name = next((h for pos, h in reversed(headers) if pos < m.start()), None) or f"dimension {k // 2 + 1}"
        dims.setdefault(f"{name}/{m.group(2)}", float(m.group(3)))
    totals = {m.group(2): float(m.group(3)) for m in _TOTAL.finditer(text)}
    if "1" in totals and "2" in totals:
        scores = [totals["1"], totals["2"]]
    elif dims:
        scores = [sum(v for k, v in dims.items() if k.endswith(f"/{c}")) for c in "12"]
    else:
        scores = None
    return dims or None, scores


def parse_pair_score(text: str, protocol: Protocol) -> Parsed:
    """A score for each of the two candidates on every dimension (see the module docstring)."""
    region, why = answer_region(text, pair=False)
    if region is None:
        return Parsed(Status.UNPARSED, why)
    assert protocol.labels is not None
    markers = [(s, list(_marker_regex(s.marker).finditer(region))) for s in protocol.scales]
    dims: dict[str, float] = {}
    missing = []
    for scale, hits in markers:
        if not hits:
            missing.append(f"no '{scale.marker}' marker found")
            continue
        start = hits[-1].end()
        following = [m.start() for _, hs in markers for m in hs if m.start() > start]
        block = region[start : min(following) if following else len(region)]
        for c, label in enumerate(protocol.labels, 1):
            m = re.search(
                re.escape(label).replace(r"\ ", r"\s*") + r"\s*[:：]\s*\**\s*" + _NUMBER, block, re.IGNORECASE
            )
            if not m:
                missing.append(f"no score for {label} under '{scale.marker}'")
                continue
            value = float(m.group(1))
            if not scale.low <= value <= scale.high:
                missing.append(f"{scale.name} of {label} {m.group(1)} is outside the scale {scale.low}-{scale.high}")
                continue
            dims[f"{scale.name}/{c}"] = value
    if missing:
        return Parsed(Status.UNPARSED, "; ".join(missing), dims=dims or None)
    n = len(protocol.scales)
    scores = [sum(dims[f"{s.name}/{c}"] for s in protocol.scales) / n for c in (1, 2)]
    margin = scores[0] - scores[1]
    verdict = "first" if margin > 0 else "second" if margin < 0 else "tie"
    return Parsed(Status.OK, verdict=verdict, dims=dims, scores=scores, margin=margin)


def parse(text: str, protocol: Protocol) -> Parsed:
    """Parses a judge's output under ``protocol``."""
    if protocol.mode is Mode.PAIR_SCORE:
        return parse_pair_score(text, protocol)
    if protocol.mode is Mode.PAIR_RANK:
        out = parse_pair(text)
        if protocol.reasons or "</think>" in normalize_text(text).lower():
            out.dims, out.scores = reasoning_scores(text)
        return out
    return parse_point(text, protocol)
