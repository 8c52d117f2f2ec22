"""What every training loop on Ray Train shares: the worker's setup, the DeepSpeed engine (config,
AdamW, the LR schedule), resuming from Ray Train's checkpoint, the metric log, the step / evaluate /
checkpoint skeleton, and the report's plot.

The loops keep only what differs: judge SFT (``reward.py``) its data plan, batches and per-task
evaluation; Diffusion-DPO (``diffusion.py``) its pairs, loss and implicit-reward evaluation; each
how its trained model is exported. VLM DPO (``vlm_dpo.py``) runs TRL's trainer and takes the setup,
the DeepSpeed config and the metric log from here.
"""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..io import storage

DS_TAG = "deepspeed"  # inside a checkpoint: the DeepSpeed state (model, optimizer, scheduler)
STATE_FILE = "train_state.json"  # inside a checkpoint: step, metrics, run name


# ------------------------------------------------------------------------------------ the worker
@dataclass
class Worker:
    """One Ray Train worker: its validated spec, rank, world size, device and precision."""

    spec: Any
    rank: int
    world: int
    device: Any  # torch.device
    bf16: bool


def worker_setup(config: dict[str, Any], spec_type) -> Worker:
    """What every training worker does first: take the driver's storage settings, read the spec, and
    pick its device, threads, precision and seeds."""
    import ray.train
    import torch

    os.environ.update(config.get("env") or {})  # the driver's storage settings (workers may run elsewhere)
    spec = spec_type.model_validate(config["spec"])
    t = spec.training
    ctx = ray.train.get_context()
    use_gpu = spec.resources.use_gpu
    device = torch.device(f"cuda:{ctx.get_local_rank()}") if use_gpu else torch.device("cpu")
    if use_gpu:
        torch.cuda.set_device(device)
    else:
        torch.set_num_threads(max(1, int(spec.resources.cpus_per_worker)))
    random.seed(t.seed)
    torch.manual_seed(t.seed)
    bf16 = t.precision == "bf16" or (t.precision == "auto" and use_gpu)
    return Worker(spec, ctx.get_world_rank(), ctx.get_world_size(), device, bf16)


# ------------------------------------------------------------------------------------ DeepSpeed
def deepspeed_config(training, world_size: int, bf16: bool) -> dict[str, Any]:
    """The DeepSpeed config of a TrainingConfig: ZeRO stage (0 = plain data parallel), optional CPU
    offload, precision, micro-batch, accumulation and clipping. The optimizer is torch's AdamW
    (DeepSpeed's fused CPU Adam needs a compiler and is only faster on big models)."""
    ds = training.deepspeed
    zero: dict[str, Any] = {"stage": ds.zero_stage}
    if ds.zero_stage >= 2:
        zero.update(overlap_comm=False, contiguous_gradients=True, reduce_scatter=True)
    if ds.zero_stage == 3:
        zero.update(stage3_gather_16bit_weights_on_model_save=True)
    if ds.offload and ds.zero_stage:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
        if ds.zero_stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": False}
    return {
        "train_micro_batch_size_per_gpu": training.batch_size,
        "gradient_accumulation_steps": training.grad_accum,
        "train_batch_size": training.batch_size * training.grad_accum * world_size,
        "gradient_clipping": training.max_grad_norm,
        "zero_optimization": zero,
        "optimizer": {
            "type": "AdamW",
            "params": {
                "lr": training.lr,
                "weight_decay": training.weight_decay,
                "betas": [0.9, 0.999],
                "eps": 1e-8,
                "torch_adam": True,
            },
        },
        "zero_force_ds_cpu_optimizer": False,
        "bf16": {"enabled": bf16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def lr_lambda(schedule: str, warmup: int, total: int) -> Callable[[int], float]:
    """Linear warmup over ``warmup`` steps, then cosine or linear decay to 0, or constant."""

    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress

    return f


def consolidated_state_dict(engine, stage: int) -> dict[str, Any]:
    """The full state dict on rank 0 ({} elsewhere); every rank must call it (ZeRO-3 gathers)."""
    import torch.distributed as dist

    if stage == 3:
        return engine._zero3_consolidated_16bit_state_dict() or {}
    if dist.get_rank() != 0:
        return {}
    return {k: v.detach().cpu().clone() for k, v in engine.module.state_dict().items()}


def peak_memory_mb(device) -> float:
    """CUDA's peak allocation on a GPU; the process's peak resident memory on a CPU."""
    import resource

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ------------------------------------------------------------------------------------ the metric log
class MetricLog:
    """Rank 0's metric log: ``<run>/logs/metrics.jsonl`` (appended across restarts) and TensorBoard
    event files in ``<run>/logs/tensorboard``. Written locally, copied to storage on ``flush``.
    Events and metrics are also printed, prefixed with ``[tag]`` (the spec's kind)."""

    def __init__(self, run_dir: str, rank: int, tag: str = "train"):
        self.rank, self.tag = rank, tag
        self.uri = storage.join(run_dir, "logs")
        if rank:
            return
        from tensorboardX import SummaryWriter

        self.local = tempfile.mkdtemp(prefix="unireward-tb-")
        self.writer = SummaryWriter(os.path.join(self.local, "tensorboard"))
        jsonl = storage.join(self.uri, "metrics.jsonl")
        self.lines = storage.read_bytes(jsonl).decode().splitlines() if storage.exists(jsonl) else []

    def event(self, record: dict[str, Any]) -> None:
        if self.rank == 0:
            self.lines.append(json.dumps(dict(record, time=time.time())))
            print(f"[{self.tag}] {json.dumps(record)}", flush=True)
        elif record.get("event") == "bad_example":
            print(f"[{self.tag}] {json.dumps(record)}", flush=True)

    def metrics(self, step: int, values: dict[str, Any]) -> None:
        if self.rank:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)) and k != "step":
                self.writer.add_scalar(k, v, step)
        self.lines.append(json.dumps(dict(values, step=step, time=time.time())))
        shown = {
            k.split("/", 1)[-1] if k.startswith("train/") else k: round(v, 4)
            for k, v in values.items()
            if isinstance(v, float)
            and (
                k.startswith("train/loss") or k.endswith("acc") or k.endswith("without_ties") or k.endswith("spearman")
            )
        }
        print(f"[{self.tag}] step {step}: {json.dumps(shown)}", flush=True)

    def flush(self, tensorboard: bool = True) -> None:
        if self.rank:
            return
        storage.write_bytes(storage.join(self.uri, "metrics.jsonl"), ("\n".join(self.lines) + "\n").encode())
        if not tensorboard:
            return
        self.writer.flush()
        tb = os.path.join(self.local, "tensorboard")
        for name in os.listdir(tb):
            with open(os.path.join(tb, name), "rb") as f:
                storage.write_bytes(storage.join(self.uri, "tensorboard", name), f.read())


def read_records(run_dir: str) -> list[dict[str, Any]]:
    """Every line of a run's ``logs/metrics.jsonl`` (events and metrics), or [] before the first."""
    uri = storage.join(run_dir, "logs", "metrics.jsonl")
    return storage.read_jsonl(uri) if storage.exists(uri) else []


# ------------------------------------------------------------------------------------ the skeleton
@dataclass
class MicroStep:
    """What a loop's micro-step returns: the loss to back-propagate, the examples it used, and
    other per-micro-step numbers to average over a logging window (e.g. implicit accuracy)."""

    loss: Any  # a scalar tensor
    examples: int
    metrics: dict[str, float] = field(default_factory=dict)


def run(
    worker: Worker,
    model,
    log: MetricLog,
    *,
    total_steps: int,
    eval_every: int,
    micro_step: Callable[[Any, int], MicroStep],
    evaluate: Callable[[Any], dict[str, float]] | None,
    export: Callable[[dict[str, Any], str], None],
    start_event: dict[str, Any],
    extra_metrics: Callable[[], dict[str, float]] | None = None,
    on_engine: Callable[[Any], None] | None = None,
) -> None:
    """The training skeleton every DeepSpeed loop runs on a Ray Train worker:

    1. wrap ``model`` (its trainable parameters) in DeepSpeed with AdamW and the spec's warmup and
       schedule over ``total_steps``; ``on_engine(engine)`` lets the loop adopt the wrapped model;
    2. resume from Ray Train's latest checkpoint (a rerun of the spec, or a restarted worker), or log
       ``start_event``;
    3. evaluate before training (``evaluate(engine)``; None: nothing is held out);
    4. train: ``micro_step(engine, g)`` for every micro-step g of every optimizer step; every few
       steps the window's means (loss and the micro-step's own metrics, over all workers),
       throughput and peak memory are logged;
    5. every ``eval_every`` steps and at the end: evaluate, save the DeepSpeed state, and on rank 0
       ``export(state_dict, folder)`` the model in its standard format beside it; report the
       metrics and the checkpoint to Ray Train (which keeps the best ones).
    """
    import deepspeed
    import ray.train
    import torch
    import torch.distributed as dist

    t = worker.spec.training
    warmup = math.ceil(t.warmup_ratio * total_steps)
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=deepspeed_config(t, worker.world, worker.bf16),
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(t.schedule, warmup, total_steps)),
    )
    if on_engine is not None:
        on_engine(engine)
    stage = t.deepspeed.zero_stage

    step = 0
    ckpt = ray.train.get_checkpoint()
    if ckpt:
        with ckpt.as_directory() as d:
            _, client = engine.load_checkpoint(d, tag=DS_TAG)
        step = int((client or {}).get("step", 0))
        log.event(dict(event="resumed", step=step))
    else:
        log.event(
            dict(
                event="start",
                step=0,
                **start_event,
                world=worker.world,
                total_steps=total_steps,
                zero_stage=stage,
                bf16=worker.bf16,
                lora=t.lora is not None,
            )
        )

    if step == 0 and t.eval_before and evaluate is not None:
        metrics = evaluate(engine)
        log.metrics(0, metrics)
        ray.train.report(dict(metrics, step=0))

    window: list[MicroStep] = []
    last_report, tick = 0, time.time()
    log_every = max(1, total_steps // 40)
    while step < total_steps:
        for a in range(t.grad_accum):
            out = micro_step(engine, step * t.grad_accum + a)
            engine.backward(out.loss)
            engine.step()
            window.append(MicroStep(float(out.loss.detach()), out.examples, dict(out.metrics)))
        step += 1
        if step % log_every == 0 or step == total_steps:
            keys = sorted({k for w in window for k in w.metrics})
            means = [sum(w.loss for w in window) / len(window)]
            means += [sum(w.metrics.get(k, 0.0) for w in window) / len(window) for k in keys]
            stats = torch.tensor(means + [sum(w.examples for w in window)], dtype=torch.float64)
            dist.all_reduce(stats)
            values = {"train/loss": float(stats[0]) / worker.world}
            values.update({f"train/{k}": float(stats[1 + i]) / worker.world for i, k in enumerate(keys)})
            values.update(
                {
                    "train/lr": engine.get_lr()[0],
                    "train/examples_per_s": float(stats[-1]) / max(time.time() - tick, 1e-9),
                    "train/peak_memory_mb": peak_memory_mb(worker.device),
                    "train/total_steps": total_steps,
                }
            )
            log.metrics(step, values)
            log.flush(tensorboard=False)  # the driver follows metrics.jsonl for its progress lines
            window, tick = [], time.time()
        if step % eval_every == 0 or step == total_steps:
            metrics = evaluate(engine) if evaluate is not None else {}
            metrics.update(extra_metrics() if extra_metrics is not None else {})
            metrics["step"] = step
            log.metrics(step, metrics)
            with tempfile.TemporaryDirectory() as tmp:
                engine.save_checkpoint(tmp, tag=DS_TAG, client_state={"step": step})
                sd = consolidated_state_dict(engine, stage)
                if worker.rank == 0:
                    export(sd, tmp)
                    with open(os.path.join(tmp, STATE_FILE), "w") as f:
                        json.dump(dict(step=step, metrics=metrics, name=worker.spec.name), f, indent=2)
                log.flush()
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
            last_report, tick = step, time.time()  # throughput windows exclude evaluation and checkpointing
    log.event(dict(event="done", step=step, last_report=last_report))
    log.flush()


# ------------------------------------------------------------------------------------ report
def save_png(fig, path: str) -> None:
    """Writes a matplotlib figure as PNG to a local path or s3:// URI and closes it."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    storage.write_bytes(path, buf.getvalue())


def plot_training(records: list[dict[str, Any]], path: str) -> None:
    """Loss and learning rate, and per-task held-out accuracy and Spearman (judge training) or the
    held-out implicit reward accuracy and margin (DPO), against the step (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    loss = [(r["step"], r["train/loss"]) for r in records if "train/loss" in r]
    if loss:
        axes[0].plot(*zip(*loss), label="train loss (target tokens)")
        axes[0].set_yscale("log")
    axes[0].set_title("training loss")
    axes[0].set_xlabel("optimizer step")
    tasks = sorted({k.split("/")[1] for r in records for k in r if k.startswith("eval/") and k.count("/") == 2})
    for task in tasks:
        acc = [(r["step"], r[f"eval/{task}/acc_without_ties"]) for r in records if f"eval/{task}/acc_without_ties" in r]
        rho = [(r["step"], r[f"eval/{task}/spearman"]) for r in records if f"eval/{task}/spearman" in r]
        if acc:
            axes[1].plot(*zip(*acc), marker="o", label=task)
        if rho:
            axes[2].plot(*zip(*rho), marker="o", label=task)
    dpo = [(r["step"], r["eval/implicit_acc"], r["eval/margin"]) for r in records if "eval/implicit_acc" in r]
    if dpo:  # kind: dpo
        axes[1].plot([d[0] for d in dpo], [d[1] for d in dpo], marker="o", label="implicit reward accuracy")
        axes[2].plot([d[0] for d in dpo], [d[2] for d in dpo], marker="o", label="implicit reward margin")
        axes[2].set_ylim(auto=True)
    axes[1].axhline(0.5, color="grey", lw=1, ls="--", label="chance")
    axes[1].set_title("held-out pairwise accuracy (truth not a tie)" if not dpo else "held-out implicit accuracy")
    axes[1].set_ylim(0, 1)
    axes[2].axhline(0.0, color="grey", lw=1)
    axes[2].set_title("held-out pointwise Spearman" if not dpo else "held-out implicit reward margin")
    if not dpo:
        axes[2].set_ylim(-1, 1)
    for ax in axes[1:]:
        ax.set_xlabel("optimizer step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
