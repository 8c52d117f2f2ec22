"""VLM DPO (``kind: dpo`` with ``policy: vlm``): TRL's DPOTrainer inside a Ray Train worker.

Data: the TRL export of curation (``images``, ``prompt``, ``chosen``, ``rejected``, ``prompt_id``);
videos arrive as their sampled frames, one image part each (TRL has no video input: a frame
sequence is what the judge itself reads). Nothing is truncated (``max_length=None``): pixels are
capped by the processor (``media.max_pixels``), so image tokens are never cut away.

The DeepSpeed config goes through the training arguments; the reference model is the starting
checkpoint (TRL loads it), or, with LoRA, the policy with its adapters disabled. Metrics and
checkpoints reach Ray Train through a callback; a rerun of the spec resumes from the latest one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from typing import Any

from ..io import storage


def _local(uri: str) -> str:
    """A local path for a Parquet file (s3:// objects are copied to a temporary file)."""
    if not storage.is_remote(uri):
        return uri
    fd, path = tempfile.mkstemp(suffix=".parquet")
    with os.fdopen(fd, "wb") as f:
        f.write(storage.read_bytes(uri))
    return path


def train_and_held_out(spec: Any) -> tuple[Any, Any]:
    """The spec's training and held-out pairs as ``datasets`` tables: ``data.eval`` when given, else
    the prompt-seeded ``eval_fraction`` of ``data.train``; at most ``max_eval_pairs`` held out."""
    from datasets import concatenate_datasets, load_dataset

    from .data import held_out

    def read(uris):
        return concatenate_datasets([load_dataset("parquet", data_files=_local(u))["train"] for u in uris])

    data = read(spec.data.train)
    if spec.data.eval:
        train, held = data, read(spec.data.eval)
    else:
        flags = [held_out(p, spec.data.eval_fraction, spec.training.seed) for p in data["prompt_id"]]
        train = data.select([i for i, f in enumerate(flags) if not f])
        held = data.select([i for i, f in enumerate(flags) if f])
    return train, held.select(range(min(len(held), spec.data.max_eval_pairs)))


def vlm_dpo_loop(config: dict[str, Any]) -> None:
    import ray.train
    from transformers import AutoProcessor, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from ..config import DpoSpec
    from .runtime import MetricLog, deepspeed_config, worker_setup

    worker = worker_setup(config, DpoSpec)
    spec, rank, world, bf16 = worker.spec, worker.rank, worker.world, worker.bf16
    t = spec.training
    use_gpu = spec.resources.use_gpu
    log = MetricLog(config["run_dir"], rank, tag=spec.kind)

    train, held = train_and_held_out(spec)
    processor = AutoProcessor.from_pretrained(spec.model)
    ip = getattr(processor, "image_processor", None)
    if ip is not None and hasattr(ip, "max_pixels"):  # cap pixels: long inputs are never truncated instead
        ip.max_pixels = min(ip.max_pixels, spec.media.max_pixels)
        ip.min_pixels = min(ip.min_pixels, ip.max_pixels)
        if getattr(ip, "size", None) and "longest_edge" in ip.size:
            ip.size = {"shortest_edge": ip.min_pixels, "longest_edge": ip.max_pixels}
    ds = None
    if t.deepspeed.zero_stage:
        ds = deepspeed_config(t, world, bf16)
        ds.update(
            train_micro_batch_size_per_gpu="auto",
            gradient_accumulation_steps="auto",
            train_batch_size="auto",
            gradient_clipping="auto",
        )
        ds["optimizer"]["params"].update(lr="auto", weight_decay="auto")
        ds["bf16"] = {"enabled": "auto"}
    out_dir = tempfile.mkdtemp(prefix="unireward-dpo-")
    every = t.eval_every or 50
    args = DPOConfig(
        output_dir=out_dir,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_ratio,
        lr_scheduler_type=t.schedule if t.schedule != "constant" else "constant_with_warmup",
        max_grad_norm=t.max_grad_norm,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        beta=spec.beta,
        loss_type=[spec.loss_type],
        bf16=bf16,
        use_cpu=not use_gpu,
        deepspeed=ds,
        gradient_checkpointing=t.gradient_checkpointing,
        max_length=None,
        report_to=[],
        logging_steps=1,
        eval_strategy="steps" if len(held) else "no",
        eval_steps=every,
        save_strategy="steps",
        save_steps=every,
        save_total_limit=None,
        remove_unused_columns=False,
        seed=t.seed,
        dataloader_num_workers=0,
    )
    peft_config = None
    if t.lora is not None:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=t.lora.r, lora_alpha=t.lora.alpha, lora_dropout=t.lora.dropout, target_modules=list(t.lora.target_modules)
        )

    class Report(TrainerCallback):
        """Our metric log and Ray Train reports: eval metrics at each save, with its checkpoint."""

        last: dict[str, float] = {}

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            if "loss" in logs and "rewards/accuracies" in logs:
                log.metrics(
                    state.global_step,
                    {
                        "train/loss": float(logs["loss"]),
                        "train/implicit_acc": float(logs["rewards/accuracies"]),
                        "train/margin": float(logs["rewards/margins"]),
                        "train/lr": float(logs.get("learning_rate", 0.0)),
                        "train/total_steps": state.max_steps,
                    },
                )
                log.flush(tensorboard=False)

        def on_evaluate(self, args, state, control, metrics=None, **kw):
            m = metrics or {}
            Report.last = {
                "eval/loss": float(m.get("eval_loss", 0.0)),
                "eval/implicit_acc": float(m.get("eval_rewards/accuracies", 0.0)),
                "eval/margin": float(m.get("eval_rewards/margins", 0.0)),
                "eval/pairs": float(len(held)),
                "step": state.global_step,
            }
            log.metrics(state.global_step, Report.last)

        def on_save(self, args, state, control, **kw):
            path = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            log.flush()
            metrics = dict(Report.last or {"step": state.global_step}, step=state.global_step)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(path))

    trainer = DPOTrainer(
        model=spec.model,
        args=args,
        train_dataset=train,
        eval_dataset=held if len(held) else None,
        processing_class=processor,
        peft_config=peft_config,
        callbacks=[Report()],
    )
    ckpt = ray.train.get_checkpoint()
    resume = None
    if ckpt:
        resume = tempfile.mkdtemp(prefix="unireward-resume-")
        ckpt.to_directory(resume)
        with open(os.path.join(resume, "trainer_state.json")) as f:
            log.event(dict(event="resumed", step=int(json.load(f)["global_step"])))
    else:
        log.event(
            dict(
                event="start",
                step=0,
                pairs=len(train),
                held_out=len(held),
                world=world,
                bf16=bf16,
                zero_stage=t.deepspeed.zero_stage,
                lora=t.lora is not None,
            )
        )
        if t.eval_before and len(held) and t.deepspeed.zero_stage in (1, 2):
            # the HF Trainer builds ZeRO-1/2 engines in train(); evaluate() before it needs ZeRO-3
            log.event(
                dict(
                    event="eval_before_skipped",
                    reason="the HF Trainer cannot evaluate a ZeRO-1/2 model "
                    "before training; the policy starts as the reference "
                    "(margin 0, loss ln 2)",
                )
            )
        elif t.eval_before and len(held):
            trainer.evaluate()
            ray.train.report(dict(Report.last, step=0))
    trainer.train(resume_from_checkpoint=resume)
    log.event(dict(event="done", step=trainer.state.global_step))
    log.flush()


def export(base: str, checkpoint_dir: str, out: str, lora: bool) -> None:
    """The policy from a DPO checkpoint as a plain HF folder (LoRA merged in) with its processor."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if lora:
        from peft import PeftModel

        model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(base), checkpoint_dir)
        model = model.merge_and_unload()
    else:
        model = AutoModelForImageTextToText.from_pretrained(checkpoint_dir)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        AutoProcessor.from_pretrained(base).save_pretrained(tmp)
        storage.copy_tree(tmp, out)


def answer_logps(rm: Any, messages: list, images: list, answers: Sequence[str]) -> list[float]:
    """Summed log-probabilities of each answer as the assistant turn after ``messages`` with
    ``images``, encoded as training encodes them (one batch, no gradient)."""
    import torch

    from . import sft
    from .data import SFTExample
    from .losses import sequence_logps

    batch = sft.collate(rm, [sft.encode(rm, SFTExample(messages, images, "image", a, "")) for a in answers])
    with torch.no_grad():
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return sequence_logps(rm.model(**inputs).logits, batch["labels"]).tolist()


def answer_accuracy(
    model_dir: str, items_uri: str, limits: Any = None, device: str | None = None, max_questions: int | None = None
) -> dict[str, Any]:
    """How often a VLM policy gets understanding questions right, with the synthetic world's ground
    truth: per question (an understanding task's point items grouped by question and context), the
    answer the policy gives the highest log-likelihood (summed over the answer's tokens, with the
    chat and the visuals as DPO training encodes them: videos as their frames) must be a best one.

    Returns ``accuracy``, ``questions``, ``chance`` (expected accuracy of a uniform pick) and the
    ``errors`` (questions whose media failed, each with its reason; not counted)."""
    from ..curate.export import trl_prompt
    from ..io import media as media_io
    from ..judge.model import RewardModel
    from ..judge.records import read_items

    limits = limits or media_io.MediaLimits()
    rm = RewardModel(model_dir, device=device)
    items, rows = read_items(items_uri)
    questions: dict[tuple[str, str, Any], list[tuple[str, float]]] = {}
    for it, r in zip(items, rows):
        gt = (r.get("gt_scores") or [None])[0]
        if r["mode"] != "point_score" or gt is None or str(it.task).endswith("generation"):
            continue
        questions.setdefault((str(it.task), it.prompt, it.context), []).append((it.candidates[0], float(gt)))
    keys = list(questions)[:max_questions]
    right, chance, errors = 0, 0.0, []
    for task, prompt, context in keys:
        answers = questions[(task, prompt, context)]
        try:
            visuals, messages = trl_prompt(task, prompt, context, limits)
        except media_io.MediaError as e:
            errors.append(dict(question=prompt, context=str(context), reason=f"{e.code}: {e.reason}"))
            continue
        logps = answer_logps(rm, messages, visuals, [a for a, _ in answers])
        best = max(g for _, g in answers)
        right += int(answers[logps.index(max(logps))][1] == best)
        chance += sum(g == best for _, g in answers) / len(answers)
    n = len(keys) - len(errors)
    return dict(accuracy=right / n if n else None, questions=n, chance=chance / n if n else None, errors=errors)


def held_out_implicit_accuracy(spec: Any, policy_dir: str, device: str | None = None) -> dict[str, Any]:
    """The exact implicit reward accuracy of a trained policy on the spec's held-out pairs: the share
    of pairs whose chosen answer gains more log-likelihood over the reference (``spec.model``) than
    the rejected one, ``(log pi(c) - log ref(c)) - (log pi(r) - log ref(r)) > 0``, with summed
    log-probabilities of each answer given the chat and its images as training encodes them.

    TRL's ``eval_rewards/accuracies`` is the mean of per-batch means gathered from every worker,
    and the last batch is padded with repeated pairs; this counts each held-out pair once. Returns
    ``pairs``, ``correct``, ``accuracy``, its Wilson 95% ``interval`` and the mean ``margin`` (times beta)."""
    from ..eval.core import wilson
    from ..judge.model import RewardModel

    _, held = train_and_held_out(spec)
    if not len(held):
        return dict(pairs=0, correct=0, accuracy=None, interval=None, margin=None)

    # (chat, images, [chosen, rejected]) read once, scored under the policy and the reference
    pairs = [
        (row["prompt"], list(row["images"]), [row[k][0]["content"][0]["text"] for k in ("chosen", "rejected")])
        for row in held
    ]

    def logps(model_dir: str) -> list[list[float]]:
        rm = RewardModel(model_dir, device=device)
        return [answer_logps(rm, chat, images, answers) for chat, images, answers in pairs]

    margins = [(pc - rc) - (pr - rr) for (pc, pr), (rc, rr) in zip(logps(policy_dir), logps(spec.model))]
    correct = sum(m > 0 for m in margins)
    n = len(margins)
    return dict(
        pairs=n,
        correct=correct,
        accuracy=correct / n,
        interval=wilson(correct, n),
        margin=spec.beta * sum(margins) / n,
    )
