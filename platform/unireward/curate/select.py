"""Selection: from one prompt's candidates and the judge's verdicts to (at most) one preference
pair. Pure functions: the judge is passed in as a callable, so this runs the same in a plain loop,
in a Ray Data actor, or against a served judge.

Three strategies:

- ``pair_point`` (the original's pair ranking + point sifting): the valid candidates form N/2
  disjoint pairs (0,1), (2,3), ...; each pair is ranked; every candidate is also scored pointwise.
  chosen = the best-scored winner, rejected = the worst-scored loser, kept only if the score margin
  exceeds ``margin``. Scores are numbers (normalised to [0, 1]), never strings.
- ``bradley_terry``: ``pairings`` random pairs per prompt (seeded by the prompt id), a regularised
  Bradley-Terry fit of the pairwise outcomes, best against worst, kept if P(best beats worst) >=
  ``min_confidence``.
- ``pointwise``: every candidate scored alone, the best-scored against the worst-scored (what a
  scalar reward model's pipeline does), kept if the margin exceeds ``margin`` and, with logit
  scores, P(chosen scores higher) >= ``min_confidence``. No pair is judged.

Ties and unparsed verdicts are handled explicitly (``on_tie`` / ``on_unparsed``): drop the pair,
re-judge it in the swapped order, or exclude the whole prompt. Never "candidate 1 wins".
With ``confirm`` (pair_point), the chosen and rejected candidates are judged head to head, which
gives P(chosen better than rejected); a pair below ``min_confidence`` is dropped.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..io.media import MediaError
from ..judge.group import bradley_terry, p_first_better
from ..judge.types import JudgeItem, Judgment, Mode, Status, Task

JudgeFn = Callable[[list[JudgeItem], bool], list[Judgment]]
DROP, REJUDGE, EXCLUDE = "drop_pair", "rejudge_swapped", "exclude_prompt"


@dataclass
class Candidate:
    id: str
    ref: str  # what the output records: the answer text, or the media reference
    source: Any  # what the judge reads: the text, decoded media, or the MediaError decoding raised
    gt: float | None = None
    seed: int | None = None


@dataclass
class PoolRow:
    prompt_id: str
    task: str
    prompt: str
    candidates: list[Candidate]
    context_ref: str | None = None
    context: Any = None  # decoded context media (understanding tasks), or a MediaError
    error: str | None = None  # why the row's candidates could not be generated, if they could not


@dataclass
class PromptResult:
    prompt_id: str
    task: str
    status: str  # kept | dropped | excluded | failed
    reason: str | None = None
    preferences: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    judgments: list[dict[str, Any]] = field(default_factory=list)  # compact records, for the report
    stats: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None
    context: str | None = None  # reference to the context media

    def record(self) -> dict[str, Any]:
        """The prompt's result as a staged row (``schema.STAGED_PROMPT_SCHEMA``): the lists as JSON,
        so shards keep one schema whatever they hold."""
        return dict(
            prompt_id=self.prompt_id,
            task=self.task,
            prompt=self.prompt,
            context=self.context,
            status=self.status,
            reason=self.reason,
            preferences=json.dumps(self.preferences),
            errors=json.dumps(self.errors),
            judgments=json.dumps(self.judgments),
            stats=json.dumps(self.stats),
        )


def pool_row_from_record(row: dict[str, Any], decoded: dict[str, Any] | None = None) -> PoolRow:
    """A PoolRow from a pool record (``schema.POOL_SCHEMA``), with the media already decoded for it
    (``judge.records.decode_row_media``: by candidate id, and the context). A candidate without its
    media or text, or a row whose ``meta`` is not a JSON object, is recorded as such, never skipped."""
    from ..judge.records import CONTEXT_KEY

    decoded = decoded or {}
    try:
        generation = Task(row.get("task")).is_generation
    except ValueError:
        generation = False
    cands = []
    for k, c in enumerate(row.get("candidates") or []):
        if not c:
            continue
        cid = c.get("id") or f"{row.get('prompt_id')}-c{k}"
        ref = c.get("media") if generation else c.get("text")
        if ref is None:
            source: Any = MediaError("not_found", f"candidate {cid} has no {'media' if generation else 'text'}")
        else:
            source = decoded.get(c.get("id"), ref) if generation else ref
        cands.append(Candidate(cid, ref or "", source, c.get("gt_score"), c.get("seed")))
    error = None
    try:
        meta = json.loads(row["meta"]) if row.get("meta") else {}
    except (TypeError, ValueError) as e:  # never read as "no error": the row fails with the reason
        meta, error = {}, f"malformed meta (not JSON: {e})"
    if not isinstance(meta, dict):
        meta, error = {}, f"malformed meta (a JSON object was expected, got {type(meta).__name__})"
    return PoolRow(
        row.get("prompt_id") or "",
        row.get("task") or "",
        row.get("prompt") or "",
        cands,
        context_ref=row.get("context"),
        context=decoded.get(CONTEXT_KEY, row.get("context")),
        error=error or meta.get("generate_error"),
    )


@dataclass
class _Pair:
    a: int
    b: int
    judgment: Judgment
    rejudged: Judgment | None = None

    def final(self) -> Judgment:
        return self.rejudged if self.rejudged is not None else self.judgment


def _seed_for(prompt_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{prompt_id}".encode()).digest()[:8], "little")


def plan_pairs(n: int, strategy: str, pairings: int, prompt_id: str, seed: int) -> list[tuple[int, int]]:
    if strategy == "pointwise":
        return []
    if strategy == "pair_point":
        return [(k, k + 1) for k in range(0, n - 1, 2)]
    everything = [(a, b) for a in range(n) for b in range(a + 1, n)]
    rng = np.random.default_rng(_seed_for(prompt_id, seed))
    picked = rng.choice(len(everything), size=min(pairings, len(everything)), replace=False)
    out = []
    for k in sorted(int(i) for i in picked):
        a, b = everything[k]
        out.append((a, b) if rng.random() < 0.5 else (b, a))  # random presentation order
    return out


def row_problem(row: PoolRow) -> str | None:
    try:
        task = Task(row.task)
    except ValueError:
        return f"unknown task {row.task!r}"
    if not row.prompt_id:
        return "missing prompt_id"
    if not isinstance(row.prompt, str) or not row.prompt.strip():
        return "empty prompt"
    if len(row.candidates) < 2:
        return f"needs at least 2 candidates, has {len(row.candidates)}"
    if task.has_context and row.context_ref is None:
        return f"{task.value} needs a context {task.media_kind}"
    return None


def _error(row: PoolRow, stage: str, status: str, reason: str, candidate_id: str | None = None) -> dict[str, Any]:
    return dict(
        unit_id=row.prompt_id, candidate_id=candidate_id, task=row.task, stage=stage, status=status, reason=reason
    )


def _item(row: PoolRow, cands: Sequence[Candidate], tag: str, mode: Mode | None = None) -> JudgeItem:
    return JudgeItem(
        row.task,
        row.prompt,
        [c.source for c in cands],
        context=row.context if Task(row.task).has_context else None,
        mode=mode,
        id=f"{row.prompt_id}:{tag}",
    )


def _compact(kind: str, ids: Sequence[str], j: Judgment) -> dict[str, Any]:
    shown = [o.verdict for o in j.orders] if j.orders else [j.verdict]
    return dict(
        kind=kind,
        ids=list(ids),
        status=j.status.value,
        verdict=j.verdict,
        probs=j.probs,
        score=j.score_norm,
        shown_verdicts=[v for v in shown if v is not None],
        reason=j.reason,
    )


def curate_batch(rows: Sequence[PoolRow], judge: JudgeFn, cfg: Any, swap: bool, seed: int = 0) -> list[PromptResult]:
    """Judges and selects a batch of pool rows; ``cfg`` is a SelectConfig. Judge calls are batched
    across the rows: phase 1 (pairs and points), phase 2 (swapped re-judging), phase 3 (confirm)."""
    results: dict[int, PromptResult] = {}
    valid: dict[int, list[Candidate]] = {}
    pairs: dict[int, list[_Pair]] = {}
    items: list[JudgeItem] = []
    owners: list[tuple[int, str, Any]] = []  # (row index, 'pair'|'point', pair spec or candidate)
    for r, row in enumerate(rows):
        if row.error:
            results[r] = PromptResult(
                row.prompt_id,
                row.task,
                "failed",
                f"generation failed: {row.error}",
                prompt=row.prompt,
                context=row.context_ref,
                errors=[_error(row, "generate", "error", row.error)],
            )
            continue
        problem = row_problem(row)
        if problem:
            results[r] = PromptResult(
                row.prompt_id or "",
                row.task,
                "failed",
                problem,
                prompt=row.prompt,
                context=row.context_ref,
                errors=[_error(row, "input", "invalid_input", problem)],
            )
            continue
        if isinstance(row.context, MediaError):
            why = f"{row.context.code}: {row.context.reason}"
            results[r] = PromptResult(
                row.prompt_id,
                row.task,
                "failed",
                f"context media: {why}",
                prompt=row.prompt,
                context=row.context_ref,
                errors=[_error(row, "decode", "invalid_input", why)],
            )
            continue
        errors = [
            _error(row, "decode", "invalid_input", f"{c.source.code}: {c.source.reason}", c.id)
            for c in row.candidates
            if isinstance(c.source, MediaError)
        ]
        good = [c for c in row.candidates if not isinstance(c.source, MediaError)]
        results[r] = PromptResult(
            row.prompt_id, row.task, "pending", errors=errors, prompt=row.prompt, context=row.context_ref
        )
        if len(good) < 2:
            results[r].status, results[r].reason = "failed", f"only {len(good)} usable candidate(s)"
            continue
        valid[r] = good
        for a, b in plan_pairs(len(good), cfg.strategy, cfg.pairings, row.prompt_id, seed):
            items.append(_item(row, [good[a], good[b]], f"{good[a].id}~{good[b].id}"))
            owners.append((r, "pair", (a, b)))
        if cfg.strategy in ("pair_point", "pointwise"):
            for c in good:
                items.append(_item(row, [c], c.id))
                owners.append((r, "point", c))
    judgments = judge(items, swap) if items else []

    points: dict[int, dict[str, Judgment]] = {r: {} for r in valid}
    for (r, kind, spec), j in zip(owners, judgments):
        cands = valid[r]
        if kind == "pair":
            a, b = spec
            pairs.setdefault(r, []).append(_Pair(a, b, j))
            results[r].judgments.append(_compact("pair", [cands[a].id, cands[b].id], j))
        else:
            points[r][spec.id] = j
            results[r].judgments.append(_compact("point", [spec.id], j))

    # phase 2: re-judge ties / unparsed verdicts in the swapped order (only meaningful without swap)
    redo: list[tuple[int, _Pair]] = []
    for r, plist in pairs.items():
        for p in plist:
            policy = _policy(p.judgment, cfg)
            if policy == REJUDGE and not swap:
                redo.append((r, p))
    if redo:
        again = judge(
            [_item(rows[r], [valid[r][p.b], valid[r][p.a]], f"{valid[r][p.b].id}~{valid[r][p.a].id}") for r, p in redo],
            False,
        )
        for (r, p), j in zip(redo, again):
            p.rejudged = _unswap(j)
            results[r].judgments.append(_compact("pair", [valid[r][p.b].id, valid[r][p.a].id], j))

    # selection
    pending_confirm: list[tuple[int, dict[str, Any]]] = []
    for r in valid:
        res = results[r]
        row = rows[r]
        if cfg.strategy == "pair_point":
            pick = _select_pair_point(row, valid[r], pairs.get(r, []), points[r], cfg, res)
        elif cfg.strategy == "pointwise":
            pick = _select_pointwise(row, valid[r], points[r], cfg, res)
        else:
            pick = _select_bradley_terry(row, valid[r], pairs.get(r, []), cfg, res)
        if pick is None:
            continue
        if cfg.strategy == "pair_point" and cfg.confirm:
            pending_confirm.append((r, pick))
        else:
            _keep(res, pick, cfg)

    # phase 3: confirm pair_point picks head to head: P(chosen better than rejected)
    if pending_confirm:
        confirm_items = [
            _item(rows[r], [pick["_chosen"], pick["_rejected"]], f"confirm:{pick['_chosen'].id}~{pick['_rejected'].id}")
            for r, pick in pending_confirm
        ]
        for (r, pick), j in zip(pending_confirm, judge(confirm_items, swap)):
            res = results[r]
            res.judgments.append(_compact("confirm", [pick["_chosen"].id, pick["_rejected"].id], j))
            p = p_first_better(j)
            if p is None:
                res.status, res.reason = "dropped", f"confirmation judgment {j.status.value}: {j.reason}"
                res.errors.append(_error(rows[r], "judge", j.status.value, f"confirm: {j.reason}"))
                continue
            pick["p_chosen_better"] = p
            pick["provenance_extra"]["confirm"] = dict(verdict=j.verdict, probs=j.probs, agreement=j.agreement)
            _keep(res, pick, cfg)

    out = []
    for r in range(len(rows)):
        res = results[r]
        if res.status == "pending":
            res.status = "dropped"
        res.stats = _stats(res)
        out.append(res)
    return out


def _policy(j: Judgment, cfg: Any) -> str | None:
    if j.status is Status.INVALID_INPUT:
        return DROP
    if j.status is not Status.OK:
        return cfg.on_unparsed
    if j.verdict == "tie":
        return cfg.on_tie
    return None


def _unswap(j: Judgment) -> Judgment:
    """A judgment of (b, a) expressed as one of (a, b)."""
    from ..judge.types import swap_verdict

    probs = None
    if j.probs is not None:
        probs = {k: j.probs[swap_verdict(k)] for k in j.probs}
    return Judgment(
        j.item_id,
        j.task,
        j.mode,
        j.method,
        j.status,
        reason=j.reason,
        verdict=swap_verdict(j.verdict),
        probs=probs,
        mass=j.mass,
        raw_text=j.raw_text,
        agreement=j.agreement,
        provenance=j.provenance,
    )


def _decisive(
    row: PoolRow, cands: list[Candidate], plist: list[_Pair], cfg: Any, res: PromptResult
) -> list[tuple[int, int, Judgment]] | None:
    """The pairs with a first/second verdict after the tie and unparsed policies (a pair that is
    still a tie or unparsed after re-judging is dropped). None: the prompt is excluded."""
    out = []
    for p in plist:
        j = p.final()
        ids = f"{cands[p.a].id} vs {cands[p.b].id}"
        if j.status is not Status.OK:
            res.errors.append(_error(row, "judge", j.status.value, f"pair {ids}: {j.reason}"))
        policy = _policy(j, cfg)
        if policy is None:
            out.append((p.a, p.b, j))
        elif policy == EXCLUDE:
            what = "a tie" if j.status is Status.OK else f"a {j.status.value} verdict"
            res.status, res.reason = "excluded", f"pair {ids} gave {what} (exclude_prompt)"
            return None
    return out


def _select_pair_point(row, cands, plist, points, cfg, res) -> dict[str, Any] | None:
    decisive = _decisive(row, cands, plist, cfg, res)
    if decisive is None:
        return None
    winners = [a if j.verdict == "first" else b for a, b, j in decisive]
    losers = [b if j.verdict == "first" else a for a, b, j in decisive]
    scores: dict[int, float] = {}
    for k, c in enumerate(cands):
        j = points.get(c.id)
        if j is None:
            continue
        if j.status is Status.OK and j.score_norm is not None and math.isfinite(j.score_norm):
            scores[k] = float(j.score_norm)
        elif k in winners or k in losers:
            res.errors.append(_error(row, "judge", j.status.value, f"point {c.id}: {j.reason}", c.id))
    winners = [w for w in winners if w in scores]
    losers = [lo for lo in losers if lo in scores]
    if not winners or not losers:
        res.status, res.reason = "dropped", "no decisive pair with scored candidates"
        return None
    # best-scored winner, worst-scored loser
    return _best_against_worst(
        cands, points, scores, winners, losers, cfg, res, dict(pairs=len(plist), decisive=len(winners))
    )


def _best_against_worst(cands, points, scores, best_of, worst_of, cfg, res, extra) -> dict[str, Any] | None:
    """The best-scored of ``best_of`` against the worst-scored of ``worst_of`` (equal scores: the lower
    candidate index, stable and documented), kept only above the margin."""
    chosen = min(best_of, key=lambda k: (-scores[k], k))
    rejected = min(worst_of, key=lambda k: (scores[k], k))
    margin = scores[chosen] - scores[rejected]
    if chosen == rejected or not margin > cfg.margin:
        res.status, res.reason = "dropped", f"score margin {margin:.4f} is not above {cfg.margin}"
        return None
    j_c = points[cands[chosen].id]
    return dict(
        _chosen=cands[chosen],
        _rejected=cands[rejected],
        chosen_score=scores[chosen],
        rejected_score=scores[rejected],
        margin=margin,
        p_chosen_better=_p_from_distributions(j_c, points[cands[rejected].id]),
        judgment=j_c,
        provenance_extra=extra,
    )


def _select_pointwise(row, cands, points, cfg, res) -> dict[str, Any] | None:
    scores: dict[int, float] = {}
    for k, c in enumerate(cands):
        j = points[c.id]
        if j.status is Status.OK and j.score_norm is not None and math.isfinite(j.score_norm):
            scores[k] = float(j.score_norm)
        else:
            res.errors.append(_error(row, "judge", j.status.value, f"point {c.id}: {j.reason}", c.id))
    if len(scores) < 2:
        res.status, res.reason = "dropped", f"only {len(scores)} candidate(s) with a score"
        return None
    return _best_against_worst(cands, points, scores, list(scores), list(scores), cfg, res, dict(points=len(scores)))


def _p_from_distributions(a: Judgment, b: Judgment) -> float | None:
    """P(score_a > score_b) + half P(equal), from two logit-method score distributions."""
    if not a.distribution or not b.distribution:
        return None
    pa = {float(k): v for k, v in a.distribution.items()}
    pb = {float(k): v for k, v in b.distribution.items()}
    return sum(p * q * (1.0 if x > y else 0.5 if x == y else 0.0) for x, p in pa.items() for y, q in pb.items())


def _select_bradley_terry(row, cands, plist, cfg, res) -> dict[str, Any] | None:
    decisive = _decisive(row, cands, plist, cfg, res)
    if decisive is None:
        return None
    outcomes = [(a, b, p_first_better(j)) for a, b, j in decisive]
    seen = sorted({k for a, b, _ in outcomes for k in (a, b)})
    if len(seen) < 2:
        res.status, res.reason = "dropped", "fewer than two candidates with usable pair judgments"
        return None
    index = {k: i for i, k in enumerate(seen)}
    s = bradley_terry(len(seen), [(index[a], index[b], p) for a, b, p in outcomes])
    best = seen[int(np.argmax(s))]
    worst = seen[int(np.argmin(s))]
    margin = float(s.max() - s.min())
    p = 1.0 / (1.0 + math.exp(-margin))
    if best == worst or not margin > cfg.margin:
        res.status, res.reason = "dropped", f"Bradley-Terry margin {margin:.4f} is not above {cfg.margin}"
        return None
    first = decisive[0][2]
    return dict(
        _chosen=cands[best],
        _rejected=cands[worst],
        chosen_score=float(s.max()),
        rejected_score=float(s.min()),
        margin=margin,
        p_chosen_better=p,
        judgment=first,
        provenance_extra=dict(
            pairs=len(plist), used=len(outcomes), strengths={cands[k].id: round(float(s[index[k]]), 6) for k in seen}
        ),
    )


def _keep(res: PromptResult, pick: dict[str, Any], cfg: Any) -> None:
    p = pick["p_chosen_better"]
    if p is not None and p < cfg.min_confidence:
        res.status, res.reason = "dropped", f"P(chosen better) {p:.3f} is below min_confidence {cfg.min_confidence}"
        return
    j: Judgment = pick["judgment"]
    chosen, rejected = pick["_chosen"], pick["_rejected"]
    prov = dict(
        j.provenance,
        selection=cfg.model_dump() if hasattr(cfg, "model_dump") else dict(cfg),
        **pick["provenance_extra"],
    )
    if chosen.seed is not None or rejected.seed is not None:
        prov["seeds"] = dict(chosen=chosen.seed, rejected=rejected.seed)
    res.preferences.append(
        dict(
            prompt_id=res.prompt_id,
            task=res.task,
            prompt=res.prompt,
            context=res.context,
            chosen_id=chosen.id,
            rejected_id=rejected.id,
            chosen=chosen.ref,
            rejected=rejected.ref,
            chosen_score=pick["chosen_score"],
            rejected_score=pick["rejected_score"],
            margin=pick["margin"],
            p_chosen_better=p,
            strategy=cfg.strategy,
            chosen_gt=chosen.gt,
            rejected_gt=rejected.gt,
            judge=j.provenance.get("model"),
            protocol=j.provenance.get("protocol"),
            method=j.provenance.get("method"),
            provenance=json.dumps(prov, sort_keys=True, default=str),
        )
    )
    res.status, res.reason = "kept", None


def _stats(res: PromptResult) -> dict[str, Any]:
    shown = [v for j in res.judgments if j["kind"] == "pair" for v in j["shown_verdicts"]]
    decisive = [v for v in shown if v in ("first", "second")]
    return dict(
        pairs=sum(j["kind"] == "pair" for j in res.judgments),
        points=sum(j["kind"] == "point" for j in res.judgments),
        decisive_shown=len(decisive),
        first_shown_wins=sum(v == "first" for v in decisive),
        ties=sum(j["kind"] == "pair" and j["verdict"] == "tie" for j in res.judgments),
        not_ok=sum(j["status"] != "ok" for j in res.judgments),
    )
