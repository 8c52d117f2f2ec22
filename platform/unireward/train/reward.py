"""Judge training (``kind: train_reward``): the data plan the driver writes, per-task evaluation,
and the loop every Ray Train worker runs (over the shared runtime of ``train/runtime.py``).

Data plan: the driver turns the spec's sources into ``<run>/data/examples.jsonl`` (SFT examples:
chat, media references, target, task), ``eval.jsonl`` (held-out item rows with ground truth) and
``errors.jsonl`` (records that could not be used, each with its reason). Workers read the plan
from storage and take their own shard (``rank::world``): nothing large travels through Ray.

The loop: load the judge (the same loader as judging), optionally freeze the vision tower or the
projector and add LoRA, train on the targets only, evaluate per task with the judge's own logit
method, and report metrics and a checkpoint (DeepSpeed state for resuming + an HF folder).
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict
from typing import Any

from ..io import schema, storage
from ..judge.records import resolve_row
from ..judge.types import Mode, Task
from .data import DataError, SFTExample, example_from_item_row, from_conversation, mix, sample, split_by_prompt
from .runtime import MetricLog, MicroStep, consolidated_state_dict, run, worker_setup

HF_DIR = "hf"  # inside a checkpoint: the judge as an HF folder


# ------------------------------------------------------------------------------------ data plan
def _read_conversations(uri: str) -> list[dict[str, Any]]:
    text = storage.read_bytes(uri).decode()
    if uri.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    if not isinstance(data, list):
        raise DataError(f"{uri}: expected a JSON list of conversation records")
    return data


def _resolve_conversation_media(record: dict[str, Any], base: str) -> dict[str, Any]:
    out = dict(record)
    for key in ("image", "images", "video"):
        if key in out:
            v = out[key]
            out[key] = (
                [schema.resolve_media(x, base) for x in v] if isinstance(v, list) else schema.resolve_media(v, base)
            )
    return out


def build_plan(spec, registry) -> dict[str, Any]:
    """The training examples, the held-out items and the error records of a TrainRewardSpec.
    ``registry``: the protocol registry (for the targets). Pure: no Ray, no model."""
    t = spec.training
    data = spec.data
    protocol_for = lambda task, mode: registry.get(spec.family, task, mode)  # noqa: E731
    errors: list[dict[str, Any]] = []
    by_task: dict[str, list[SFTExample]] = {}
    held_rows: list[dict[str, Any]] = []
    per_source: dict[str, int] = {}

    def add(ex: SFTExample | None) -> None:
        if ex is not None:
            by_task.setdefault(ex.task, []).append(ex)

    for k, src in enumerate(data.train):
        name = src.name or os.path.basename(src.path.rstrip("/")) or f"source{k}"
        try:
            if src.format == "conversation":
                rows = sample(_read_conversations(src.path), src.sampling, t.seed + k)
                base = schema.parent(src.path)
                for i, rec in enumerate(rows):
                    try:
                        add(from_conversation(_resolve_conversation_media(rec, base), src.task, name))
                    except (DataError, AttributeError, TypeError) as e:
                        errors.append(dict(source=name, record=i, reason=str(e)))
                per_source[name] = len(rows)
                continue
            rows = schema.read_parquet(src.path)
        except (OSError, ValueError) as e:
            errors.append(dict(source=name, record=None, reason=f"unreadable source: {e}"))
            continue
        if not data.eval:  # split on the stored references: the split does not depend on where the data lives
            rows, held = split_by_prompt(rows, data.eval_fraction, t.seed)
            held_rows += [resolve_row(r, schema.parent(src.path)) for r in held]
        rows = [resolve_row(r, schema.parent(src.path)) for r in rows]
        rows = sample(rows, src.sampling, t.seed + k)
        per_source[name] = len(rows)
        for r in rows:
            if r.get("mode") == "point_score" and not data.points:
                continue
            try:
                add(example_from_item_row(r, protocol_for, name, think=data.think))
                if data.both_orders and r.get("mode") == "pair_rank" and r.get("label") is not None:
                    add(example_from_item_row(r, protocol_for, name, swap=True, think=data.think))
            except (DataError, KeyError) as e:
                errors.append(dict(source=name, record=r.get("item_id"), reason=str(e)))
    for src in data.eval:
        try:
            held_rows += [
                resolve_row(r, schema.parent(src.path))
                for r in sample(schema.read_parquet(src.path), src.sampling, t.seed)
            ]
        except (OSError, ValueError) as e:
            errors.append(dict(source=src.name or src.path, record=None, reason=f"unreadable eval source: {e}"))
    if data.weights:
        unknown = set(data.weights) - {x.value for x in Task}
        if unknown:
            raise DataError(f"mixing weights for unknown tasks {sorted(unknown)}")
        weights = {task: data.weights.get(task, 0.0) for task in by_task}
        examples = mix(by_task, weights, data.total or sum(len(v) for v in by_task.values()), t.seed)
    else:
        examples = [ex for v in by_task.values() for ex in v]
        random.Random(t.seed).shuffle(examples)
    held_rows = [r for r in held_rows if r.get("label") is not None or (r.get("gt_scores") or [None])[0] is not None]
    if len(held_rows) > data.max_eval_items:
        held_rows = random.Random(t.seed).sample(held_rows, data.max_eval_items)
    if not examples:
        raise DataError(
            "no training examples: every record was unusable or unlabelled (see the errors)"
            + (f"; first: {errors[0]['reason']}" if errors else "")
        )
    counts: dict[str, int] = {}
    for ex in examples:
        counts[ex.task] = counts.get(ex.task, 0) + 1
    return dict(
        examples=[asdict(ex) for ex in examples],
        eval=held_rows,
        errors=errors,
        stats=dict(
            examples=len(examples),
            per_task=counts,
            per_source=per_source,
            eval_items=len(held_rows),
            errors=len(errors),
        ),
    )


def write_plan(plan: dict[str, Any], run_dir: str) -> dict[str, str]:
    """Writes the plan's three JSONL files under ``<run_dir>/data``; returns their URIs."""
    uris = {}
    for key in ("examples", "eval", "errors"):
        uris[key] = storage.join(run_dir, "data", f"{key}.jsonl")
        storage.write_jsonl(uris[key], plan[key])
    storage.write_bytes(storage.join(run_dir, "data", "stats.json"), json.dumps(plan["stats"], indent=2).encode())
    return uris


# ------------------------------------------------------------------------------------ evaluation
def judge_eval_rows(rm, rows: list[dict[str, Any]], method: str = "logits") -> list[dict[str, Any]]:
    """Judges held-out item rows (with the logit method by default); one compact result per row."""
    from ..judge.records import item_from_record

    items = [item_from_record(r) for r in rows]
    judgments = rm.judge(items, method=method)
    return [
        dict(
            task=r["task"],
            mode=r.get("mode") or items[k].resolved_mode().value,
            label=r.get("label"),
            gt=(r.get("gt_scores") or [None])[0],
            status=j.status.value,
            verdict=j.verdict,
            score_norm=j.score_norm,
            mass=j.mass,
            axis=r.get("axis"),
        )
        for k, (r, j) in enumerate(zip(rows, judgments))
    ]


QUALITY_AXES = ("coherence", "physics", "style")


def _axis_groups(pairs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Pairs by what decides them (the items' ``axis``), plus ``quality``: any quality axis."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in pairs:
        axis = r.get("axis")
        if axis:
            out.setdefault(axis, []).append(r)
            if axis in QUALITY_AXES:
                out.setdefault("quality", []).append(r)
    return out


def eval_metrics(results: list[dict[str, Any]]) -> dict[str, float]:
    """Per-task metrics from judged held-out rows: ``eval/<task>/acc`` (3-way, a tie must be called
    a tie), ``eval/<task>/acc_without_ties`` (pairs whose truth is not a tie; also per deciding axis
    where the items name it, ``eval/<task>/<axis>/acc_without_ties``, with ``quality`` for any
    quality axis), ``eval/<task>/spearman``
    (point scores vs ground truth), ``eval/<task>/failed`` (judgments that were not ok), and the
    mean pairwise accuracy without ties over the tasks with pairs, ``eval/mean_acc``."""
    from ..judge.metrics import pair_metrics, point_metrics
    from ..judge.types import Judgment, Status

    out: dict[str, float] = {}
    accs = []
    for task in sorted({r["task"] for r in results}):
        rows = [r for r in results if r["task"] == task]
        pairs = [r for r in rows if r["mode"] == Mode.PAIR_RANK.value]
        points = [r for r in rows if r["mode"] == Mode.POINT_SCORE.value]
        js = {
            id(r): Judgment(
                None,
                task,
                r["mode"],
                "logits",
                Status(r["status"]),
                verdict=r["verdict"],
                score_norm=r["score_norm"],
                mass=r["mass"],
            )
            for r in rows
        }
        out[f"eval/{task}/failed"] = float(sum(not js[id(r)].ok for r in rows))
        if pairs:
            m = pair_metrics([js[id(r)] for r in pairs], [r["label"] for r in pairs])
            for key in ("acc", "acc_without_ties"):
                if m[key] is not None:
                    out[f"eval/{task}/{key}"] = float(m[key])
            if m["acc_without_ties"] is not None:
                accs.append(float(m["acc_without_ties"]))
            for axis, grp in _axis_groups(pairs).items():
                am = pair_metrics([js[id(r)] for r in grp], [r["label"] for r in grp])
                if am["acc_without_ties"] is not None:
                    out[f"eval/{task}/{axis}/acc_without_ties"] = float(am["acc_without_ties"])
        if points:
            m = point_metrics([js[id(r)] for r in points], [r["gt"] for r in points])
            out[f"eval/{task}/spearman"] = float(m["spearman"]) if m["spearman"] is not None else 0.0
    out["eval/mean_acc"] = sum(accs) / len(accs) if accs else 0.0
    return out


# ------------------------------------------------------------------------------------ the model
_VISION_PATTERNS = ("visual.", "vision_tower.", "vision_model.")
_PROJECTOR_PATTERNS = ("visual.merger", "visual.deepstack_merger", "multi_modal_projector", "mm_projector")


def prepare_model(model, training):
    """Freezing (vision tower, projector), gradient checkpointing and LoRA, in place or wrapped:
    returns the model to train."""
    for name, p in model.named_parameters():
        projector = any(k in name for k in _PROJECTOR_PATTERNS)
        vision = not projector and any(k in name for k in _VISION_PATTERNS)
        if (vision and training.freeze_vision) or (projector and training.freeze_projector):
            p.requires_grad_(False)
    if training.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if training.lora is not None:
        from peft import LoraConfig, get_peft_model

        lora = training.lora  # peft freezes every base weight: only the adapters train
        model = get_peft_model(
            model,
            LoraConfig(
                r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.target_modules)
            ),
        )
    return model


def plain_model(base_path: str, training, state_dict: dict[str, Any]):
    """The trained judge as a plain HF model (LoRA merged in) from a consolidated state dict."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(base_path)
    if training.lora is not None:
        from peft import LoraConfig, get_peft_model

        lora = training.lora
        model = get_peft_model(
            model,
            LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=0.0, target_modules=list(lora.target_modules)),
        )
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=False)
    missing = [k for k in missing if "lm_head" not in k]  # tied to the embeddings when absent
    if missing or unexpected:
        raise RuntimeError(
            f"the trained state does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    if training.lora is not None:
        model = model.merge_and_unload()
    return model.eval()


# ------------------------------------------------------------------------------------ the worker loop
def train_loop(config: dict[str, Any]) -> None:
    """What every Ray Train worker runs (see the module docstring)."""
    import torch
    import torch.distributed as dist

    from ..config import TrainRewardSpec
    from ..judge.model import RewardModel
    from . import sft

    worker = worker_setup(config, TrainRewardSpec)
    spec, rank, world, device = worker.spec, worker.rank, worker.world, worker.device
    t = spec.training
    rm = RewardModel(
        spec.model,
        device=str(device),
        dtype="float32",
        family=spec.family,
        media=spec.media.limits(),
        max_batch_size=16,
    )
    model = prepare_model(rm.model, t)
    model.train()
    rows = storage.read_jsonl(config["data"]["examples"])
    shard = [SFTExample(**r) for r in rows[rank::world]]
    eval_rows = storage.read_jsonl(config["data"]["eval"])
    micro_per_epoch = max(1, len(rows) // world // t.batch_size)
    total_steps = t.max_steps or max(1, t.epochs * micro_per_epoch // t.grad_accum)  # max_steps overrides epochs
    log = MetricLog(config["run_dir"], rank, tag=spec.kind)

    def adopt(engine) -> None:  # the judge reads with the wrapped model (and its precision) from now on
        rm.model = engine.module
        if worker.bf16:
            rm.dtype = torch.bfloat16

    def evaluate(engine) -> dict[str, float]:
        engine.module.eval()
        started = time.time()
        if t.deepspeed.zero_stage == 3:  # parameters are partitioned: rank 0 judges with a consolidated copy
            sd = consolidated_state_dict(engine, 3)
            results = []
            if rank == 0:
                plain = plain_model(spec.model, t, sd).to(device, torch.bfloat16 if worker.bf16 else torch.float32)
                copy = RewardModel(
                    spec.model,
                    model=plain,
                    processor=rm.processor,
                    device=str(device),
                    family=spec.family,
                    media=spec.media.limits(),
                    max_batch_size=16,
                )
                results = judge_eval_rows(copy, eval_rows, t.eval_method)
                del copy
        else:
            results = judge_eval_rows(rm, eval_rows[rank::world], t.eval_method)
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, results)
        metrics = eval_metrics([r for part in gathered for r in (part or [])])
        metrics["eval/seconds"] = time.time() - started
        engine.module.train()
        return metrics

    cache: dict[int, dict[str, Any]] = {}
    media_cache: dict = {}
    bad: set[int] = set()

    def encoded(i: int) -> dict[str, Any] | None:
        if i in bad:
            return None
        if i not in cache:
            if len(media_cache) > 4096:  # decoded media shared by nearby examples (a pair's two orders), bounded
                media_cache.clear()
            try:
                enc = sft.encode(rm, shard[i], media_cache)
            except Exception as e:
                bad.add(i)
                log.event(
                    dict(event="bad_example", rank=rank, index=i, task=shard[i].task, reason=f"{type(e).__name__}: {e}")
                )
                return None
            if len(cache) < 50_000:
                cache[i] = enc
            return enc
        return cache[i]

    # Every micro-batch holds one media kind, the same kind on every rank at the same step: with
    # ZeRO-3 each rank must call the same modules in the same order (the vision tower runs once per
    # kind in a batch), or the parameter gathers of the ranks no longer match.
    mine = {k: [i for i, ex in enumerate(shard) if ex.media_kind == k] for k in ("image", "video")}
    present: list[Any] = [None] * world
    dist.all_gather_object(present, {k for k, v in mine.items() if v})
    kinds = sorted(set.intersection(*present))
    if not kinds:
        raise RuntimeError("no media kind has training examples on every worker: use fewer workers or more data")
    counts = {k: sum(r["media_kind"] == k for r in rows) for k in kinds}
    dropped = sorted({r["media_kind"] for r in rows} - set(kinds))
    if dropped:
        log.event(dict(event="kinds_dropped", kinds=dropped, reason="some worker's shard has none of them"))

    def schedule(epoch: int) -> list[str]:
        """The kind of each micro-step of an epoch, in proportion to the kinds' examples (shared seed)."""
        total = sum(counts.values())
        n = {k: round(micro_per_epoch * c / total) for k, c in counts.items()}
        n[kinds[0]] += micro_per_epoch - sum(n.values())
        out = [k for k in kinds for _ in range(max(0, n[k]))][:micro_per_epoch]
        out += [kinds[-1]] * (micro_per_epoch - len(out))
        random.Random(t.seed * 7919 + epoch).shuffle(out)
        return out

    def micro_step(engine, g: int) -> MicroStep:
        epoch, m = divmod(g, micro_per_epoch)
        plan = schedule(epoch)
        kind = plan[m]
        order = list(mine[kind])
        random.Random(f"{t.seed}:{epoch}:{rank}:{kind}").shuffle(order)
        encs, k = [], plan[:m].count(kind) * t.batch_size
        for _ in range(len(order)):
            if len(encs) == t.batch_size:
                break
            enc = encoded(order[k % len(order)])
            if enc is not None:
                encs.append(enc)
            k += 1
        if not encs:
            raise RuntimeError(f"rank {rank}: no usable {kind} example in its shard (see the bad_example events)")
        batch = sft.collate(rm, encs)
        return MicroStep(sft.loss(engine, batch), int(batch["input_ids"].shape[0]))

    def export(state_dict: dict[str, Any], folder: str) -> None:
        hf = os.path.join(folder, HF_DIR)
        plain_model(spec.model, t, state_dict).save_pretrained(hf)
        rm.processor.save_pretrained(hf)

    run(
        worker,
        model,
        log,
        total_steps=total_steps,
        eval_every=t.eval_every or max(1, micro_per_epoch // t.grad_accum),
        micro_step=micro_step,
        evaluate=evaluate if eval_rows else None,
        export=export,
        on_engine=adopt,
        extra_metrics=lambda: {"train/bad_examples": float(len(bad))},
        start_event=dict(examples=len(rows), shard=len(shard)),
    )
