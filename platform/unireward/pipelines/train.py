"""The Ray Train driver of ``kind: train_reward``: writes the data plan, runs the workers
(``unireward.train.reward.train_loop``) in a TorchTrainer, and exports the best checkpoint as the
final judge with a report. Rerunning a spec with the same name and output resumes the run from its
latest checkpoint (Ray Train restores a run by its storage path and name)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ..config import DpoSpec, TrainRewardSpec
from ..io import storage
from ..judge.protocols import default_registry
from ..train import reward
from ..train.data import DataError
from ..train.runtime import plot_training, read_records
from .cluster import init_ray, worker_env


def run_config(spec: TrainRewardSpec | DpoSpec):
    import ray.train

    fs, path = storage.resolve(spec.output)
    return ray.train.RunConfig(
        name=spec.name,
        storage_path=path,
        storage_filesystem=fs,
        failure_config=ray.train.FailureConfig(max_failures=spec.resources.max_failures),
        checkpoint_config=ray.train.CheckpointConfig(
            num_to_keep=spec.training.keep,
            checkpoint_score_attribute=spec.training.metric,
            checkpoint_score_order="max",
        ),
    )


def _fit(spec, loop, run_dir: str, config: dict[str, Any], say):
    """Runs ``loop`` on the spec's Ray Train workers; returns (best checkpoint URI, its metrics, result)."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    init_ray()  # the same embedded-or-cluster Ray as the batch jobs; workers get the storage env with the config
    res = spec.resources
    trainer = TorchTrainer(
        loop,
        train_loop_config=dict(config, spec=spec.model_dump(mode="json"), run_dir=run_dir, env=worker_env()),
        scaling_config=ray.train.ScalingConfig(
            num_workers=res.workers, use_gpu=res.use_gpu, resources_per_worker={"CPU": res.cpus_per_worker}
        ),
        torch_config=TorchConfig(backend="nccl" if res.use_gpu else "gloo"),
        run_config=run_config(spec),
    )
    follower = _Follower(run_dir, say, spec.name)
    follower.start()
    try:
        result = trainer.fit()
    finally:
        follower.stop()
    if result.error:
        raise RuntimeError(f"training failed: {result.error}")
    metric = spec.training.metric

    def rank(c):  # the metric; on a tie (accuracies on few items often tie) the lower eval loss, then the later step
        m = c[1]
        return (m[metric], -m.get("eval/loss", float("inf")), m.get("step", 0))

    ranked = sorted((c for c in result.best_checkpoints if metric in c[1]), key=rank, reverse=True)
    best, best_metrics = ranked[0] if ranked else (result.checkpoint, result.metrics)
    return _checkpoint_uri(best), best_metrics


def _summary(
    spec,
    run_dir: str,
    final: str,
    best_uri: str,
    best_metrics: dict[str, Any],
    stats: dict[str, Any],
    started: float,
    say,
) -> dict[str, Any]:
    records = read_records(run_dir)
    plot_training(records, storage.join(run_dir, "report", "training.png"))
    evals = [r for r in records if spec.training.metric in r]
    summary = dict(
        name=spec.name,
        kind=spec.kind,
        run=run_dir,
        final=final,
        best_checkpoint=best_uri,
        best_step=best_metrics.get("step"),
        metric=spec.training.metric,
        best=best_metrics.get(spec.training.metric),
        before={k: v for k, v in evals[0].items() if k.startswith("eval/")}
        if evals and evals[0].get("step") == 0
        else None,
        after={k: v for k, v in best_metrics.items() if k.startswith("eval/")},
        data=stats,
        restarts=sum(r.get("event") == "resumed" for r in records),
        seconds=round(time.time() - started, 1),
        deepspeed=spec.training.deepspeed.model_dump(),
        workers=spec.resources.workers,
    )
    storage.write_bytes(storage.join(run_dir, "report", "summary.json"), json.dumps(summary, indent=2).encode())
    best = summary["best"]
    say(
        f"[{spec.name}] done in {summary['seconds']:.0f} s: best {spec.training.metric} = "
        f"{best if best is None else round(best, 4)} at step {summary['best_step']}; exported to {final}; "
        f"report {storage.join(run_dir, 'report')}"
    )
    return summary


def _absolute(spec):
    """The spec with its local relative paths made absolute: Ray Train workers do not run in the
    driver's working directory."""

    def fix(p: str) -> str:
        return p if storage.is_remote(p) or os.path.isabs(p) or not os.path.exists(p) else os.path.abspath(p)

    update: dict[str, Any] = dict(model=fix(spec.model))
    if not storage.is_remote(spec.output):
        update["output"] = os.path.abspath(spec.output)
    if isinstance(spec, DpoSpec):
        update["data"] = spec.data.model_copy(
            update=dict(train=[fix(u) for u in spec.data.train], eval=[fix(u) for u in spec.data.eval])
        )
    else:  # media references are resolved against the item files' locations
        update["data"] = spec.data.model_copy(
            update={
                k: [s.model_copy(update=dict(path=fix(s.path))) for s in getattr(spec.data, k)]
                for k in ("train", "eval")
            }
        )
    return spec.model_copy(update=update)


def run_train_reward(spec: TrainRewardSpec, say=print) -> dict[str, Any]:
    """Trains the judge; returns the run's summary (also written to ``<run>/report/summary.json``).
    ``say`` prints the driver's progress lines (the workers print theirs through Ray's log)."""
    started = time.time()
    spec = _absolute(spec)
    run_dir = storage.join(spec.output, spec.name)
    plan = reward.build_plan(spec, default_registry())
    uris = reward.write_plan(plan, run_dir)
    stats = plan["stats"]
    say(
        f"[{spec.name}] {stats['examples']} training examples {stats['per_task']}, {stats['eval_items']} held-out "
        f"items, {stats['errors']} unusable records (written to {uris['errors']})"
    )
    best_uri, best_metrics = _fit(spec, reward.train_loop, run_dir, dict(data=uris), say)
    final = storage.join(run_dir, "final")
    storage.copy_tree(storage.join(best_uri, reward.HF_DIR), final)
    return _summary(spec, run_dir, final, best_uri, best_metrics, stats, started, say)


def run_dpo(spec: DpoSpec, say=print) -> dict[str, Any]:
    """Diffusion-DPO of a diffusers pipeline; returns the run's summary. The aligned pipeline (the
    best checkpoint's) is exported to ``<output>/<name>/final``."""
    from ..train import diffusion

    started = time.time()
    spec = _absolute(spec)
    run_dir = storage.join(spec.output, spec.name)
    if spec.policy == "vlm":
        return _run_vlm_dpo(spec, run_dir, started, say)
    pairs, errors = diffusion.read_pairs(spec.data.train, spec.policy)
    if not pairs:
        raise DataError(
            f"no usable preference pair in {spec.data.train}"
            + (f"; first problem: {errors[0]['reason']}" if errors else "")
        )
    storage.write_bytes(
        storage.join(run_dir, "data", "errors.jsonl"), "".join(json.dumps(e) + "\n" for e in errors).encode()
    )
    stats = dict(pairs=len(pairs), errors=len(errors))
    say(
        f"[{spec.name}] {len(pairs)} preference pairs ({spec.policy}), {len(errors)} unusable rows "
        f"(written to {storage.join(run_dir, 'data', 'errors.jsonl')})"
    )
    best_uri, best_metrics = _fit(spec, diffusion.dpo_loop, run_dir, {}, say)
    final = storage.join(run_dir, "final")
    storage.copy_tree(storage.join(best_uri, "diffusers"), final)
    return _summary(spec, run_dir, final, best_uri, best_metrics, stats, started, say)


def _run_vlm_dpo(spec: DpoSpec, run_dir: str, started: float, say) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from ..train import vlm_dpo

    n = 0
    for u in spec.data.train:  # the row count from the footer: the images are read by the workers
        fs, path = storage.resolve(u)
        with fs.open_input_file(path) as f:
            n += pq.ParquetFile(f).metadata.num_rows
    if not n:
        raise DataError(f"no preference pair in {spec.data.train}")
    say(f"[{spec.name}] {n} preference pairs (vlm, TRL DPOTrainer, loss {spec.loss_type}, beta {spec.beta})")
    best_uri, best_metrics = _fit(spec, vlm_dpo.vlm_dpo_loop, run_dir, {}, say)
    final = storage.join(run_dir, "final")
    vlm_dpo.export(
        spec.model,
        best_uri if not storage.is_remote(best_uri) else _download(best_uri),
        final,
        lora=spec.training.lora is not None,
    )
    return _summary(spec, run_dir, final, best_uri, best_metrics, dict(pairs=n), started, say)


def _download(uri: str) -> str:
    import tempfile

    local = tempfile.mkdtemp(prefix="unireward-ckpt-")
    storage.copy_tree(uri, local)
    return local


class _Follower:
    """Prints the run's progress from ``<run>/logs/metrics.jsonl`` (written by rank 0) while the
    workers train: one line per logged step or evaluation, wherever the workers run."""

    def __init__(self, run_dir: str, say, name: str, every_s: float = 2.0):
        import threading

        self.uri, self.say, self.name, self.every_s = storage.join(run_dir, "logs", "metrics.jsonl"), say, name, every_s
        self.seen = len(read_records(run_dir))  # a resumed run's earlier lines are not news
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=5)
        self._poll()

    def _run(self) -> None:
        while not self.done.wait(self.every_s):
            self._poll()

    def _poll(self) -> None:
        try:
            records = storage.read_jsonl(self.uri) if storage.exists(self.uri) else []
        except (OSError, ValueError):
            return  # being rewritten; next poll
        for r in records[self.seen :]:
            line = _progress_line(r)
            if line:
                self.say(f"[{self.name}] {line}")
        self.seen = max(self.seen, len(records))


def _progress_line(r: dict[str, Any]) -> str | None:
    if r.get("event") in (
        "start",
        "resumed",
        "bad_example",
        "kinds_dropped",
        "eval_before_skipped",
        "no_gradient_checkpointing",
    ):
        detail = {k: v for k, v in r.items() if k not in ("event", "time")}
        return f"{r['event']}: {json.dumps(detail)}"
    if "train/loss" in r:
        acc = f"  implicit acc {r['train/implicit_acc']:.2f}" if "train/implicit_acc" in r else ""
        rate = f"  {r['train/examples_per_s']:.1f} examples/s" if "train/examples_per_s" in r else ""
        return (
            f"step {r['step']}/{r.get('train/total_steps', '?')}  loss {r['train/loss']:.4f}{acc}  "
            f"lr {r['train/lr']:.2e}{rate}"
        )
    if "eval/implicit_acc" in r:
        return (
            f"eval at step {r['step']}: implicit reward accuracy {r['eval/implicit_acc']:.3f}, "
            f"margin {r['eval/margin']:.4g}, loss {r['eval/loss']:.4f} ({int(r['eval/pairs'])} held-out pairs)"
        )
    if "eval/mean_acc" in r:
        # eval/<task>/acc_without_ties, and eval/<task>/<axis>/acc_without_ties where items name the deciding axis
        overall: dict[str, float] = {}
        axes: dict[str, list[str]] = {}
        for k, v in r.items():
            if k.startswith("eval/") and k.endswith("/acc_without_ties"):
                task, _, axis = k[len("eval/") : -len("/acc_without_ties")].partition("/")
                if axis:
                    axes.setdefault(task, []).append(f"{axis} {v:.2f}")
                else:
                    overall[task] = v
        accs = "  ".join(
            f"{task} {v:.2f}" + (f" [{', '.join(axes[task])}]" if task in axes else "") for task, v in overall.items()
        )
        return f"eval at step {r['step']}: mean pair acc {r['eval/mean_acc']:.3f} ({accs})"
    return None


def _checkpoint_uri(checkpoint) -> str:
    import pyarrow.fs as pafs

    if isinstance(checkpoint.filesystem, pafs.S3FileSystem):
        return "s3://" + checkpoint.path
    return checkpoint.path


__all__ = ["run_dpo", "run_train_reward"]
