"""MMRB2, Multimodal RewardBench 2 (facebookresearch/MMRB2: ``compute_accuracy.py``).

Layout: ``t2i.json``, ``edit.json``, ``interleaved.json`` and ``reasoning.json`` (``{"pairs": [...]}``:
id, prompt_content and response_a / response_b ``response_content`` as lists of [type, value]
parts, images relative to the benchmark folder, chosen A or B), with ``images/`` and
``input_images/``.

Judged: ``t2i`` (a text prompt, one image per response: image_generation) and ``edit`` (a text
instruction and the input image, one edited image per response: image_editing). ``interleaved`` and
``reasoning`` (answers that mix text and images) are not judged: the report names them and counts
their pairs as unsupported.

Metrics, as ``compute_accuracy.py``: every pair is judged in both orders (the reverse judgment's A is
the original B) and both count; a tie counts wrong; a judgment with no verdict (unparsed, failed) is
left out of the denominator. ``t2i_accuracy`` and ``edit_accuracy``; the same with
``_unparsed_as_wrong`` counting those as wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..io import storage
from .core import BenchmarkError, Counts, LoadError, Metric, Prediction, Unit, finish

NAME = "mmrb2"
TASKS = {"t2i": "image_generation", "edit": "image_editing"}
UNSUPPORTED = ("interleaved", "reasoning")


def load(data: str, options: dict[str, Any]) -> Iterator[Unit | LoadError]:
    found = [t for t in (*TASKS, *UNSUPPORTED) if storage.exists(storage.join(data, f"{t}.json"))]
    if not found:
        raise BenchmarkError(
            f"{data}: none of t2i.json, edit.json, interleaved.json, reasoning.json (the MMRB2 "
            "benchmark folder, e.g. after its build_from_hf.py)"
        )
    for task in found:
        uri = storage.join(data, f"{task}.json")
        try:
            pairs = json.loads(storage.read_bytes(uri)).get("pairs")
        except (ValueError, AttributeError) as e:
            yield LoadError(f"{task}:*", task, f"{task}.json is not a JSON object with 'pairs': {e}")
            continue
        if not isinstance(pairs, list):
            yield LoadError(f"{task}:*", task, f"{task}.json has no 'pairs' list")
            continue
        for n, pair in enumerate(pairs[: options.get("limit") or None]):
            yield _unit(task, pair, n, data)


def _parts(content: Any, kind: str) -> list[str]:
    return [v for t, v in content if t == kind] if isinstance(content, list) else []


def _unit(task: str, pair: Any, n: int, data: str) -> Unit | LoadError:
    key = f"{task}:{pair.get('id') if isinstance(pair, dict) else n}"
    if not isinstance(pair, dict):
        return LoadError(key, task, "a pair entry is not a JSON object")
    chosen = pair.get("chosen")
    extra = dict(task=task, id=pair.get("id"))
    if task in UNSUPPORTED:
        return LoadError(key, task, f"unsupported: {task} pairs mix text and images in their answers", chosen, extra)
    try:
        prompt = "\n".join(_parts(pair["prompt_content"], "text")).strip()
        inputs = _parts(pair["prompt_content"], "image")
        answers = [_parts(pair[k]["response_content"], "image") for k in ("response_a", "response_b")]
    except (KeyError, TypeError, ValueError) as e:
        return LoadError(key, task, f"malformed pair entry: {type(e).__name__}: {e}", chosen, extra)
    if chosen not in ("A", "B"):
        return LoadError(key, task, f"chosen {chosen!r} is not A or B", chosen, extra)
    if any(len(a) != 1 for a in answers):
        return LoadError(
            key, task, f"responses with {[len(a) for a in answers]} images: one each is judged", chosen, extra
        )
    if task == "edit" and len(inputs) != 1:
        return LoadError(key, task, f"an edit with {len(inputs)} input images: one is judged", chosen, extra)
    if not prompt:
        return LoadError(key, task, "no text in the prompt", chosen, extra)
    cands = [storage.join(data, a[0]) for a in answers]
    context = storage.join(data, inputs[0]) if task == "edit" else None
    return Unit(key, task, TASKS[task], "pair_rank", prompt, cands, context, chosen, extra)


def judgements(p: Prediction) -> list[str | None]:
    """The forward and reverse judgements in MMRB2's terms (each in its own frame: in the reverse
    one, A is the original B); None where the judge gave no verdict."""
    if not p.ok:
        return [None, None]
    verdicts = p.order_verdicts or [p.verdict]
    return [{"first": "A", "second": "B", "tie": "tie"}.get(v) if v else None for v in verdicts]


def _flip(j: str) -> str:
    return {"A": "B", "B": "A"}.get(j, j)


def counts(predictions: list[Prediction]) -> Counts:
    out: Counts = {}
    for task in TASKS:
        rows = [p for p in predictions if p.group == task]
        if not rows:
            continue
        right = judged = total = 0
        for p in rows:
            for k, j in enumerate(judgements(p)[:2]):
                total += 1
                if j is None:
                    continue
                judged += 1
                right += (j if k == 0 else _flip(j)) == p.label
            if len(judgements(p)) == 1:  # judged in one order only: the other is missing, as officially
                total += 1
        out[f"{task}_accuracy"] = (right, judged)
        out[f"{task}_accuracy_unparsed_as_wrong"] = (right, total)
    return out


def metrics(predictions: list[Prediction]) -> dict[str, Metric]:
    return finish(counts(predictions))


def unsupported(predictions: list[Prediction]) -> dict[str, int]:
    return {t: sum(p.group == t for p in predictions) for t in UNSUPPORTED if any(p.group == t for p in predictions)}


# ------------------------------------------------------------------------------------ upstream format
def write_upstream(predictions: list[Prediction], folder: str, model: str = "unireward") -> list[str]:
    """One judgement JSON per judged task, keyed by pair id, as compute_accuracy.py reads them; a
    missing verdict is an empty judgement (which it leaves out)."""
    written = []
    for task in TASKS:
        rows = [p for p in predictions if p.group == task]
        if not rows:
            continue
        data = {}
        for p in rows:
            js = judgements(p) + [None]
            data[str(p.extra.get("id"))] = {
                d: [dict(judgement=js[k] or "", evaluator=model, metadata={})]
                for k, d in enumerate(("forward", "reverse"))
                if k < max(1, len(js) - 1)
            }
        uri = storage.join(folder, f"{task}_judgements.json")
        storage.write_bytes(uri, json.dumps(data, indent=1).encode())
        written.append(uri)
    return written


def read_upstream(path: str, data: str) -> list[Prediction]:
    """Predictions from a judgement JSON (the task from the file name, else from the benchmark's
    files by pair id); labels come from the benchmark at ``data``."""
    task = next((t for t in TASKS if path.rsplit("/", 1)[-1].startswith(t)), None)
    judged = json.loads(storage.read_bytes(path))
    labels: dict[str, tuple[str, Any]] = {}
    for t in TASKS:
        uri = storage.join(data, f"{t}.json")
        if storage.exists(uri):
            for pair in json.loads(storage.read_bytes(uri)).get("pairs", []):
                labels[str(pair.get("id"))] = (t, pair.get("chosen"))
    out = []
    for pid, entry in judged.items():
        t, chosen = labels.get(str(pid), (task, None))
        if t is None:
            raise BenchmarkError(f"{path}: pair {pid} is in none of the benchmark's t2i.json, edit.json")
        js = [((entry.get(d) or [{}])[0].get("judgement") or None) for d in ("forward", "reverse")]
        verdicts = [{"A": "first", "B": "second"}.get(j, "tie") if j else None for j in js]
        status = "ok" if any(verdicts) else "unparsed"
        out.append(
            Prediction(
                key=f"{t}:{pid}",
                group=t,
                task=TASKS[t],
                mode="pair_rank",
                status=status,
                verdict=verdicts[0],
                order_verdicts=verdicts,
                label=chosen,
                extra=dict(task=t, id=pid),
            )
        )
    return out
