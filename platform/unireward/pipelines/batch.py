"""Ray Data drivers of the batch kinds: ``kind: curate`` and ``kind: score``. Thin: one driver
skeleton shards, schedules, retries and commits; the row conversions are ``judge.records`` and
``curate.select``, the judging is the judge, the selection ``unireward.curate``.

Pipeline (streaming, no shuffles; a unit is a pool row, i.e. a prompt with all its candidates, or
an item row):

    read_parquet -> [skip committed units] -> [generate candidates: actor pool]
      -> decode media (CPU tasks) -> judge (+ select) + commit a shard (actor pool)
    then, on the driver: compact the shards -> final Parquet tables, report, exporters.
"""

from __future__ import annotations

import json
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from .. import __version__
from ..config import CurateSpec, JudgeConfig, ScoreSpec
from ..curate import export as exporters
from ..curate.report import plot_curation, summarize_curation, summarize_scores, write_json
from ..curate.select import curate_batch, pool_row_from_record
from ..io import media as media_io
from ..io import schema, staging, storage
from ..judge import records
from ..judge.backends import make_judge, media_limits_for
from ..judge.types import Status, Task
from .cluster import init_ray, worker_env

TASKS = {t.value for t in Task}

MEDIA_COLUMN = "_media"  # decoded media travel between the decode tasks and the judge actors here (pickled)
PATH_COLUMN = "path"  # added by read_parquet(include_paths=True): where relative media refs resolve
IO_CPUS = 1.0  # reading, skipping committed units and re-blocking run as one fused task (Ray Data's default 1 CPU)


class JobFailed(RuntimeError):
    """The job ran but its result is not acceptable (e.g. too many failed inputs)."""


# ------------------------------------------------------------------------------------ helpers
def _inputs(uri: str | list[str]) -> list[str]:
    return [uri] if isinstance(uri, str) else list(uri)


def base_of(row: dict[str, Any], inputs: str | list[str]) -> str:
    """The folder relative media references of ``row`` resolve against: its Parquet file's folder."""
    inputs = _inputs(inputs)
    path = row.get(PATH_COLUMN)
    if path:
        if any(storage.is_s3(u) for u in inputs) and not path.startswith("s3://") and not os.path.isabs(path):
            path = "s3://" + path
        return schema.parent(path)
    first = inputs[0]
    return schema.parent(first) if first.endswith(".parquet") else first


def _table(rows: list[dict[str, Any]], base: pa.Schema, extra: dict[str, pa.DataType]) -> pa.Table:
    fields = list(base) + [pa.field(k, t) for k, t in extra.items()]
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


def _set_threads(cpus: float) -> None:
    import torch

    torch.set_num_threads(max(1, int(cpus)))


# ------------------------------------------------------------------------------------ stages
def drop_done(batch: pa.Table, done: list[str], column: str) -> pa.Table:
    import pyarrow.compute as pc

    if not done:
        return batch
    return batch.filter(pc.invert(pc.is_in(batch[column], value_set=pa.array(done, pa.string()))))


def decode_rows(batch: pa.Table, input_uri: str | list[str], judge_json: str, row_schema: pa.Schema) -> pa.Table:
    """CPU stage: resolves a row's media references against its file's folder and decodes every
    media file judging it needs, read as the judge's protocol for the row reads them (a profile's
    sampling and sizing). Failures travel as MediaErrors (``judge.records.decode_row_media``)."""
    judge = JudgeConfig.model_validate_json(judge_json)
    out = []
    for row in batch.to_pylist():
        row = records.resolve_row(row, base_of(row, input_uri))
        row.pop(PATH_COLUMN, None)
        mode = row.get("mode") or (
            "pair_rank" if row_schema is schema.POOL_SCHEMA or len(row.get("candidates") or []) == 2 else "point_score"
        )
        limits = media_limits_for(judge, row.get("task"), mode) if row.get("task") in TASKS else judge.media.limits()
        row[MEDIA_COLUMN] = pickle.dumps(records.decode_row_media(row, limits))
        out.append(row)
    return _table(out, row_schema, {MEDIA_COLUMN: pa.binary()})


def decode_pool_rows(batch: pa.Table, input_uri: str | list[str], judge_json: str) -> pa.Table:
    return decode_rows(batch, input_uri, judge_json, schema.POOL_SCHEMA)


def decode_item_rows(batch: pa.Table, input_uri: str | list[str], judge_json: str) -> pa.Table:
    return decode_rows(batch, input_uri, judge_json, schema.ITEM_SCHEMA)


def _worker_id() -> str:
    """``node_id/actor_id`` of the judge actor: the driver counts the actors and nodes that did the work."""
    import ray

    ctx = ray.get_runtime_context()
    return f"{ctx.get_node_id()}/{ctx.get_actor_id()}"


class JudgeStage:
    """A judge actor: one judge per actor; ``process`` turns a batch of decoded rows into committed
    records, and the actor streams one progress row per unit back to the driver."""

    spec_type: type = ScoreSpec
    unit: str = "item_id"  # the records' unit id column
    record_schema: pa.Schema = schema.JUDGMENT_SCHEMA  # the committed records' schema

    def __init__(self, spec_json: str):
        self.spec = self.spec_type.model_validate_json(spec_json)
        _set_threads(self.spec.resources.cpus_per_actor)
        self.rm = make_judge(self.spec.judge)
        self.worker = _worker_id()

    def process(self, rows: list[dict[str, Any]], decoded: list[dict[str, Any]]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        decoded = [pickle.loads(r.pop(MEDIA_COLUMN)) if r.get(MEDIA_COLUMN) else {} for r in rows]
        out = self.process(rows, decoded)
        staging.write_shard(self.spec.output, out, self.record_schema, self.unit)
        return pa.table(
            {
                "unit": [o[self.unit] for o in out],
                "status": [o["status"] for o in out],
                "worker": [self.worker] * len(out),
            }
        )


class CurateStage(JudgeStage):
    """Judges, selects and commits a shard of prompt results per batch of pool rows."""

    spec_type, unit, record_schema = CurateSpec, "prompt_id", schema.STAGED_PROMPT_SCHEMA

    def process(self, rows, decoded):
        spec = self.spec
        pools = [pool_row_from_record(r, d) for r, d in zip(rows, decoded)]
        results = curate_batch(
            pools,
            lambda items, swap: self.rm.judge(items, spec.judge.method, swap),
            spec.select,
            spec.judge.swap,
            spec.seed,
        )
        return [r.record() for r in results]


class ScoreStage(JudgeStage):
    """Judges every item of a batch and commits their judgment rows."""

    def process(self, rows, decoded):
        items = []
        for row, d in zip(rows, decoded):
            item = records.item_from_record(row, decoded=d)
            item.id = records.unit_id(row, skip=(PATH_COLUMN,))
            items.append(item)
        judgments = self.rm.judge(items, self.spec.judge.method, self.spec.judge.swap)
        return [records.judgment_record(r, it.id, j) for r, it, j in zip(rows, items, judgments)]


class GenerateStage:
    """Generator actor: N candidates per prompt row, written under deterministic names."""

    def __init__(self, spec_json: str):
        from ..generate.samplers import DiffusionSampler, VLMSampler

        self.spec = CurateSpec.model_validate_json(spec_json)
        g = self.spec.generate
        _set_threads(g.resources.cpus_per_actor)
        dtype = None if g.dtype == "auto" else g.dtype
        if storage.exists(storage.join(g.model, "model_index.json")):
            self.sampler: Any = DiffusionSampler(g.model, g.device, dtype)
            self.kind = "diffusion"
        else:
            self.sampler = VLMSampler(g.model, g.device, dtype, self.spec.judge.media.limits())
            self.kind = "vlm"

    def __call__(self, batch: pa.Table) -> pa.Table:
        from ..generate.samplers import candidate_seed

        g, out = self.spec.generate, []
        for row in batch.to_pylist():
            pid, task = row.get("prompt_id"), row.get("task")
            context = records.resolve_row(row, base_of(row, self.spec.input)).get("context")
            meta = dict(generator=g.model, generator_kind=self.kind)
            cands = []
            try:
                if task == Task.IMAGE_EDITING.value:
                    raise ValueError(
                        "generating edited images is not supported: give pools whose candidates are the edits"
                    )
                generation = Task(task).is_generation
                if generation != (self.kind == "diffusion"):
                    raise ValueError(
                        f"{task} needs a {'diffusers pipeline' if generation else 'VLM'} generator, "
                        f"but {g.model} is a {self.kind} model"
                    )
                if generation:
                    seeds = [candidate_seed(g.seed, pid, j) for j in range(g.n)]
                    blobs = self.sampler.sample(
                        row["prompt"], seeds, g.steps, g.guidance_scale, g.height, g.width, g.num_frames, g.fps
                    )
                    ext = "mp4" if task == "video_generation" else "png"
                    for j, (seed, data) in enumerate(zip(seeds, blobs)):
                        uri = storage.join(self.spec.output, "candidates", task, pid, f"c{j}.{ext}")
                        storage.write_bytes(uri, data)
                        cands.append(dict(id=f"{pid}-c{j}", text=None, media=uri, gt_score=None, seed=seed))
                else:
                    seed = candidate_seed(g.seed, pid)
                    texts = self.sampler.sample(
                        task, row["prompt"], context, g.n, seed, g.temperature, g.top_p, g.max_new_tokens
                    )
                    cands = [
                        dict(id=f"{pid}-c{j}", text=t, media=None, gt_score=None, seed=seed)
                        for j, t in enumerate(texts)
                    ]
                    meta["sample_index_is_candidate_index"] = True
            except media_io.MediaError as e:
                meta["generate_error"] = f"{e.code}: {e.reason}"
            except Exception as e:
                meta["generate_error"] = f"{type(e).__name__}: {e}"
            out.append(
                dict(
                    prompt_id=pid,
                    task=task,
                    prompt=row.get("prompt"),
                    context=context,
                    candidates=cands,
                    meta=json.dumps(meta),
                )
            )
        return _table(out, schema.POOL_SCHEMA, {})


# ------------------------------------------------------------------------------------ the driver skeleton
def read_inputs(uri: str | list[str]):
    """The input dataset and its row count (from the Parquet footers, without reading the data)."""
    import pyarrow.parquet as pq
    import ray

    resolved = [storage.resolve(u) for u in _inputs(uri)]
    fs = resolved[0][0]
    if any(type(f) is not type(fs) for f, _ in resolved):
        raise ValueError("all inputs of a job must be on the same storage (local or s3://)")
    paths = [p for _, p in resolved]
    total = sum(f.metadata.num_rows for p in paths for f in pq.ParquetDataset(p, filesystem=fs).fragments)
    return ray.data.read_parquet(paths, filesystem=fs, include_paths=True), total


def fingerprint(spec) -> dict[str, Any]:
    """The parts of a spec that change results (not names, resources, batch sizes or devices)."""
    judge = spec.judge.model_dump(
        exclude={"device", "token_budget", "max_batch_size", "attn_implementation", "endpoint", "token_env"}
    )
    fp: dict[str, Any] = dict(kind=spec.kind, judge=judge)
    if spec.kind == "eval":
        fp.update(benchmark=spec.benchmark, data=spec.data, options=spec.options.model_dump())
        return fp
    fp["input"] = spec.input
    if isinstance(spec, CurateSpec):
        fp.update(
            select=spec.select.model_dump(),
            seed=spec.seed,
            generate=spec.generate.model_dump(exclude={"resources", "device"}) if spec.generate else None,
        )
    return fp


def _runtime_env(spec) -> dict[str, Any]:
    """Every worker of the job gets the driver's storage settings (and a served judge's token)."""
    return {"env_vars": worker_env(*((spec.judge.token_env,) if spec.judge.endpoint else ()))}


def _pool(resources, spec):
    from ray.data import ActorPoolStrategy

    extra = dict(resources=dict(resources.custom_resources)) if resources.custom_resources else {}
    return dict(
        compute=ActorPoolStrategy(min_size=resources.min_actors, max_size=resources.max_actors),
        num_gpus=resources.gpus_per_actor or None,
        num_cpus=resources.cpus_per_actor,
        **extra,
        batch_size=resources.batch_size,
        batch_format="pyarrow",
        runtime_env=_runtime_env(spec),
        fn_constructor_kwargs=dict(spec_json=spec.model_dump_json()),
    )


def _decode_args(spec) -> dict[str, Any]:
    # CPU tasks with their own memory request. Their resources differ from the judge actors', which
    # also keeps Ray Data from fusing the decoding into the actors: it must not stall a GPU actor.
    resources = spec.resources
    return dict(
        num_cpus=resources.decode_cpus,
        memory=resources.decode_memory_mb * 2**20,
        batch_size=resources.decode_batch_size,
        batch_format="pyarrow",
        runtime_env=_runtime_env(spec),
    )


def check_capacity(spec) -> None:
    """Actors hold their CPUs/GPUs for the whole job: if the smallest pools plus one decoding task
    do not fit what the cluster has free, the job would wait forever. Say so instead (on an autoscaling cluster,
    where RAY_ADDRESS is set, only warn: nodes may still come)."""
    import logging

    import ray

    have = ray.available_resources()
    generate = getattr(spec, "generate", None)
    pools = [spec.resources] + ([generate.resources] if generate else [])
    cpus = sum(p.min_actors * p.cpus_per_actor for p in pools) + max(spec.resources.decode_cpus, IO_CPUS)
    # (the reading task and a decoding task need not run at once: the larger of the two must fit)
    gpus = sum(p.min_actors * p.gpus_per_actor for p in pools)
    problems = []
    if cpus > have.get("CPU", 0) + 1e-9:
        problems.append(
            f"{cpus:g} CPUs (actors' cpus_per_actor x min_actors, plus 1 for reading or decode_cpus "
            f"for decoding) but the cluster has {have.get('CPU', 0):g} available"
        )
    if gpus > have.get("GPU", 0) + 1e-9:
        problems.append(
            f"{gpus:g} GPUs (gpus_per_actor x min_actors) but the cluster has {have.get('GPU', 0):g} available"
        )
    for name in sorted({k for p in pools for k in p.custom_resources}):
        need = sum(p.min_actors * p.custom_resources.get(name, 0.0) for p in pools)
        if need > have.get(name, 0) + 1e-9:
            problems.append(
                f"{need:g} of the custom resource {name!r} (custom_resources x min_actors) but the "
                f"cluster has {have.get(name, 0):g} available"
            )
    if problems:
        message = (
            "the job cannot start: it needs "
            + "; and ".join(problems)
            + ". Lower the resources in the spec, or add nodes."
        )
        if os.environ.get("RAY_ADDRESS"):
            logging.getLogger(__name__).warning("%s (waiting for the autoscaler)", message)
        else:
            raise JobFailed(message)


def _stream(ds, total: int, progress: Callable[[int, int, dict], None] | None) -> tuple[dict[str, int], dict]:
    """Consumes the pipeline's output: status counts, and the judge actors (and nodes) that did the
    work with how many units each, which shows how far the actor pool grew."""
    counts: dict[str, int] = {}
    workers: dict[str, int] = {}
    done = 0
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        for s in batch.column("status").to_pylist():
            counts[s] = counts.get(s, 0) + 1
        for w in batch.column("worker").to_pylist():
            workers[w] = workers.get(w, 0) + 1
        done += batch.num_rows
        if progress:
            progress(done, total, counts)
    pool = dict(
        judge_actors=len(workers),
        judge_nodes=len({w.split("/")[0] for w in workers}),
        units_per_actor=sorted(workers.values(), reverse=True),
    )
    return counts, pool


@dataclass(frozen=True)
class BatchKind:
    """What differs between the batch kinds: the unit id column, the rows' schema, the judge stage,
    and the driver-side finish (compaction, report, exports) over the committed shards."""

    unit: str
    row_schema: pa.Schema
    stage: type
    finish: Callable[[Any, dict[str, Any]], dict[str, Any]]


def run_batch(
    spec,
    kind: BatchKind,
    progress: Callable[[int, int, dict], None] | None = None,
    inputs: str | list[str] | None = None,
) -> dict[str, Any]:
    """The driver skeleton of every batch kind: resume (skip committed units), stream the inputs
    (``inputs``, default the spec's) through [generation,] decoding and the judge actor pool, then
    ``kind.finish`` on the driver."""
    t0 = time.time()
    inputs = inputs or spec.input
    init_ray()
    check_capacity(spec)
    resumed = staging.check_fingerprint(spec.output, fingerprint(spec))
    done = sorted(staging.done_units(spec.output, kind.unit))
    ds, total = read_inputs(inputs)
    ds = ds.map_batches(drop_done, fn_kwargs=dict(done=done, column=kind.unit), batch_format="pyarrow")
    # streaming (no shuffle) re-blocking into judge-batch-sized blocks: several actors get work, and
    # results (and progress) stream out batch by batch instead of one input file at a time
    ds = ds.repartition(target_num_rows_per_block=spec.resources.batch_size)
    if getattr(spec, "generate", None) is not None:
        ds = ds.map_batches(GenerateStage, **_pool(spec.generate.resources, spec))
    ds = ds.map_batches(
        decode_rows,
        fn_kwargs=dict(input_uri=inputs, judge_json=spec.judge.model_dump_json(), row_schema=kind.row_schema),
        **_decode_args(spec),
    )
    ds = ds.map_batches(kind.stage, **_pool(spec.resources, spec))
    remaining = max(0, total - len(done))
    counts, pool = _stream(ds, remaining, progress) if remaining else ({}, {})
    return kind.finish(
        spec,
        dict(
            total=total,
            already_done=len(done),
            processed=sum(counts.values()),
            resumed=resumed,
            run_seconds=round(time.time() - t0, 2),
            **pool,
        ),
    )


# ------------------------------------------------------------------------------------ finishes
def finish_curate(spec: CurateSpec, run: dict[str, Any]) -> dict[str, Any]:
    """Compaction, report and exports (driver side, from the committed shards)."""
    staged = staging.read_staged(spec.output, "prompt_id")
    prompts, prefs, errors = [], [], []
    for row in staged:
        stats = json.loads(row["stats"])
        prompts.append(
            dict(prompt_id=row["prompt_id"], task=row["task"], status=row["status"], reason=row["reason"], stats=stats)
        )
        prefs.extend(json.loads(row["preferences"]))
        errors.extend(json.loads(row["errors"]))
    for sub in ("preferences", "errors", "prompts", "report", "exports"):
        staging.clear(storage.join(spec.output, sub))
    for task in sorted({p["task"] for p in prefs}):
        staging.write_parts(
            [p for p in prefs if p["task"] == task],
            schema.PREFERENCE_SCHEMA,
            storage.join(spec.output, "preferences", f"task={task}"),
        )
    staging.write_parts(errors, schema.ERROR_SCHEMA, storage.join(spec.output, "errors"))
    staging.write_parts(
        [dict(p, stats=json.dumps(p["stats"])) for p in prompts],
        schema.PROMPT_STATUS_SCHEMA,
        storage.join(spec.output, "prompts"),
    )
    summary = summarize_curation(prompts, prefs, errors)
    names = spec.export if spec.export is not None else exporters.applicable(prefs)
    summary["exports"] = {
        n: exporters.export(n, prefs, storage.join(spec.output, "exports"), spec.judge.media.limits()) for n in names
    }
    failed = summary["failed_prompts"]
    summary.update(
        name=spec.name,
        kind="curate",
        output=spec.output,
        unireward=__version__,
        run=run,
        error_fraction=failed / len(prompts) if prompts else 0.0,
        max_error_fraction=spec.max_error_fraction,
    )
    write_json(summary, storage.join(spec.output, "report", "summary.json"))
    plot_curation(summary, prefs, storage.join(spec.output, "report", "curation.png"))
    check_errors(summary, "prompts")
    return summary


def finish_score(spec: ScoreSpec, run: dict[str, Any]) -> dict[str, Any]:
    judgments = staging.read_staged(spec.output, "item_id")
    for sub in ("judgments", "errors", "report"):
        staging.clear(storage.join(spec.output, sub))
    staging.write_parts(judgments, schema.JUDGMENT_SCHEMA, storage.join(spec.output, "judgments"))
    errors = [
        dict(
            unit_id=j["item_id"],
            candidate_id=None,
            task=j["task"],
            stage="judge",
            status=j["status"],
            reason=j["reason"],
        )
        for j in judgments
        if j["status"] != Status.OK.value
    ]
    staging.write_parts(errors, schema.ERROR_SCHEMA, storage.join(spec.output, "errors"))
    summary = summarize_scores(judgments)
    failed = sum(j["status"] in (Status.INVALID_INPUT.value, Status.ERROR.value) for j in judgments)
    summary.update(
        name=spec.name,
        kind="score",
        output=spec.output,
        unireward=__version__,
        run=run,
        errors=dict(total=len(errors), failed_inputs=failed),
        error_fraction=failed / len(judgments) if judgments else 0.0,
        max_error_fraction=spec.max_error_fraction,
    )
    write_json(summary, storage.join(spec.output, "report", "summary.json"))
    check_errors(summary, "items")
    return summary


def check_errors(summary: dict[str, Any], unit: str) -> None:
    frac, limit = summary["error_fraction"], summary["max_error_fraction"]
    if frac > limit:
        raise JobFailed(
            f"{frac:.1%} of the {unit} failed, above max_error_fraction={limit:.1%}. The results are written to "
            f"{summary['output']} (see errors/ and report/summary.json for the reasons)."
        )


CURATE = BatchKind("prompt_id", schema.POOL_SCHEMA, CurateStage, finish_curate)
SCORE = BatchKind("item_id", schema.ITEM_SCHEMA, ScoreStage, finish_score)


def run_curate(spec: CurateSpec, progress=None) -> dict[str, Any]:
    return run_batch(spec, CURATE, progress)


def run_score(spec: ScoreSpec, progress=None) -> dict[str, Any]:
    return run_batch(spec, SCORE, progress)


def run_spec(spec: CurateSpec | ScoreSpec, progress=None) -> dict[str, Any]:
    return run_curate(spec, progress) if isinstance(spec, CurateSpec) else run_score(spec, progress)


__all__ = [
    "CurateStage",
    "GenerateStage",
    "JobFailed",
    "ScoreStage",
    "run_batch",
    "run_curate",
    "run_score",
    "run_spec",
]
