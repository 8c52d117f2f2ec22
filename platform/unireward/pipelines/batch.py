"""Ray Data drivers for ``kind: curate`` and ``kind: score``. Thin: they shard, schedule, retry and
commit; the judging is ``RewardModel``, the selection is ``unireward.curate``.

Pipeline (streaming, no shuffles; a pool row holds a prompt with all its candidates):

    read_parquet -> [skip committed units] -> [generate candidates: actor pool]
      -> decode media (CPU tasks) -> judge + select + commit a shard (actor pool, ``ActorPoolStrategy``)
    then, on the driver: compact the shards -> final Parquet tables, report, exporters.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import time
from typing import Any, Callable

import pyarrow as pa

from .. import __version__
from ..config import CurateSpec, ScoreSpec
from ..curate import export as exporters
from ..curate.report import plot_curation, summarize_curation, summarize_scores, write_json
from ..curate.select import Candidate, PoolRow, curate_batch
from ..io import media as media_io
from ..io import schema, staging, storage
from ..judge.records import item_from_record
from ..judge.types import Judgment, Status, Task

log = logging.getLogger(__name__)
MEDIA_COLUMN = "_media"
PATH_COLUMN = "path"  # added by read_parquet(include_paths=True): where relative media refs resolve
IO_CPUS = 1.0  # reading, skipping committed units and re-blocking run as one fused task (Ray Data's default 1 CPU)


class JobFailed(RuntimeError):
    """The job ran but its result is not acceptable (e.g. too many failed inputs)."""


# ------------------------------------------------------------------------------------ helpers
def _inputs(uri: str | list[str]) -> list[str]:
    return [uri] if isinstance(uri, str) else list(uri)


def _base_of(row: dict[str, Any], inputs: str | list[str]) -> str:
    """The folder relative media references of ``row`` resolve against: its Parquet file's folder."""
    inputs = _inputs(inputs)
    path = row.get(PATH_COLUMN)
    if path:
        if any(storage.is_s3(u) for u in inputs) and not path.startswith("s3://") and not os.path.isabs(path):
            path = "s3://" + path
        return schema.parent(path)
    first = inputs[0]
    return schema.parent(first) if first.endswith(".parquet") else first


def _resolve(ref: Any, base: str) -> Any:
    return schema.resolve_media(ref, base) if isinstance(ref, str) else ref


def _table(rows: list[dict[str, Any]], base: pa.Schema, extra: dict[str, pa.DataType]) -> pa.Table:
    fields = list(base) + [pa.field(k, t) for k, t in extra.items()]
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


def _set_threads(cpus: float) -> None:
    import torch

    torch.set_num_threads(max(1, int(cpus)))


def _decode_one(src: Any, kind: str, limits: media_io.MediaLimits) -> Any:
    try:
        return media_io.load_media(src, kind, limits)
    except media_io.MediaError as e:
        return e


# ------------------------------------------------------------------------------------ stages
def drop_done(batch: pa.Table, done: list[str], column: str) -> pa.Table:
    import pyarrow.compute as pc

    if not done:
        return batch
    return batch.filter(pc.invert(pc.is_in(batch[column], value_set=pa.array(done, pa.string()))))


def decode_pool_rows(batch: pa.Table, input_uri: str | list[str], limits: dict[str, Any]) -> pa.Table:
    """CPU stage: resolves and decodes every media file a pool row's judging needs (the candidates
    of generation tasks, the context of understanding tasks). Failures travel as MediaErrors."""
    lim = media_io.MediaLimits(**limits)
    rows = batch.to_pylist()
    for row in rows:
        base = _base_of(row, input_uri)
        decoded: dict[str, Any] = {}
        try:
            task = Task(row.get("task"))
        except ValueError:
            task = None
        if task is not None and task.is_generation:
            for c in row.get("candidates") or []:
                if c and c.get("media"):
                    c["media"] = _resolve(c["media"], base)
                    decoded[c["id"]] = _decode_one(c["media"], task.media_kind, lim)
        elif task is not None and row.get("context"):
            row["context"] = _resolve(row["context"], base)
            decoded["__context__"] = _decode_one(row["context"], task.media_kind, lim)
        row[MEDIA_COLUMN] = pickle.dumps(decoded)
        row.pop(PATH_COLUMN, None)
    return _table(rows, schema.POOL_SCHEMA, {MEDIA_COLUMN: pa.binary()})


def decode_item_rows(batch: pa.Table, input_uri: str | list[str], limits: dict[str, Any]) -> pa.Table:
    """CPU stage for ``kind: score``: the same for item rows."""
    lim = media_io.MediaLimits(**limits)
    rows = batch.to_pylist()
    for row in rows:
        base = _base_of(row, input_uri)
        decoded: dict[str, Any] = {}
        try:
            task = Task(row.get("task"))
        except ValueError:
            task = None
        if task is not None and task.is_generation:
            row["candidates"] = [_resolve(c, base) for c in row.get("candidates") or []]
            for k, c in enumerate(row["candidates"]):
                if isinstance(c, str):
                    decoded[str(k)] = _decode_one(c, task.media_kind, lim)
        elif task is not None and row.get("context"):
            row["context"] = _resolve(row["context"], base)
            decoded["__context__"] = _decode_one(row["context"], task.media_kind, lim)
        row[MEDIA_COLUMN] = pickle.dumps(decoded)
        row.pop(PATH_COLUMN, None)
    return _table(rows, schema.ITEM_SCHEMA, {MEDIA_COLUMN: pa.binary()})


def pool_row(row: dict[str, Any]) -> PoolRow:
    """A PoolRow for selection from a decoded pool record."""
    decoded = pickle.loads(row[MEDIA_COLUMN]) if row.get(MEDIA_COLUMN) else {}
    generation = row.get("task") in ("image_generation", "video_generation")
    cands = []
    for k, c in enumerate(row.get("candidates") or []):
        if not c:
            continue
        cid = c.get("id") or f"{row.get('prompt_id')}-c{k}"
        ref = c.get("media") if generation else c.get("text")
        if ref is None:
            source: Any = media_io.MediaError("not_found", f"candidate {cid} has no {'media' if generation else 'text'}")
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
    return PoolRow(row.get("prompt_id") or "", row.get("task") or "", row.get("prompt") or "", cands,
                   context_ref=row.get("context"), context=decoded.get("__context__", row.get("context")),
                   error=error or meta.get("generate_error"))


def staged_prompt_row(res) -> dict[str, Any]:
    return dict(prompt_id=res.prompt_id, task=res.task, prompt=res.prompt, context=res.context, status=res.status,
                reason=res.reason, preferences=json.dumps(res.preferences), errors=json.dumps(res.errors),
                judgments=json.dumps(res.judgments), stats=json.dumps(res.stats))


def _worker_id() -> str:
    """``node_id/actor_id`` of the judge actor: the driver counts the actors and nodes that did the work."""
    import ray

    ctx = ray.get_runtime_context()
    return f"{ctx.get_node_id()}/{ctx.get_actor_id()}"


def _progress_rows(units: list[str], statuses: list[str], worker: str) -> pa.Table:
    """What a judge actor streams back to the driver: one row per unit, for progress and counts."""
    return pa.table({"unit": units, "status": statuses, "worker": [worker] * len(units)})


class CurateStage:
    """Judge actor: one RewardModel per actor; judges, selects and commits a shard per batch."""

    def __init__(self, spec_json: str):
        self.spec = CurateSpec.model_validate_json(spec_json)
        _set_threads(self.spec.resources.cpus_per_actor)
        self.rm = self.spec.judge.build()
        self.worker = _worker_id()

    def __call__(self, batch: pa.Table) -> pa.Table:
        spec = self.spec
        rows = [pool_row(r) for r in batch.to_pylist()]
        results = curate_batch(rows, lambda items, swap: self.rm.judge(items, spec.judge.method, swap),
                               spec.select, spec.judge.swap, spec.seed)
        staging.write_shard(spec.output, [staged_prompt_row(r) for r in results], schema.STAGED_PROMPT_SCHEMA,
                            "prompt_id")
        return _progress_rows([r.prompt_id for r in results], [r.status for r in results], self.worker)


def judgment_row(item_row: dict[str, Any], unit: str, j: Judgment) -> dict[str, Any]:
    probs = j.probs or {}
    return dict(item_id=unit, task=j.task, mode=j.mode, method=j.method, status=j.status.value, reason=j.reason,
                verdict=j.verdict, p_first=probs.get("first"), p_second=probs.get("second"), p_tie=probs.get("tie"),
                score=j.score, score_norm=j.score_norm, dims=json.dumps(j.dims) if j.dims else None,
                agreement=j.agreement, mass=j.mass, raw_text=j.raw_text if j.raw_text is not None else (
                    json.dumps([o.raw_text for o in j.orders]) if j.orders and j.orders[0].raw_text is not None else None),
                label=item_row.get("label"), gt_scores=item_row.get("gt_scores"),
                provenance=json.dumps(j.provenance, sort_keys=True, default=str))


def item_unit(row: dict[str, Any]) -> str:
    if row.get("item_id"):
        return str(row["item_id"])
    import hashlib

    payload = json.dumps({k: v for k, v in row.items() if k not in (MEDIA_COLUMN, PATH_COLUMN)}, sort_keys=True,
                         default=str)
    return "row-" + hashlib.sha256(payload.encode()).hexdigest()[:16]


class ScoreStage:
    """Judge actor for ``kind: score``: judges every item and commits a shard per batch."""

    def __init__(self, spec_json: str):
        self.spec = ScoreSpec.model_validate_json(spec_json)
        _set_threads(self.spec.resources.cpus_per_actor)
        self.rm = self.spec.judge.build()
        self.worker = _worker_id()

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        items = []
        for row in rows:
            decoded = pickle.loads(row[MEDIA_COLUMN]) if row.get(MEDIA_COLUMN) else {}
            item = item_from_record(row)
            if isinstance(item.candidates, list):
                item.candidates = [decoded.get(str(k), c) for k, c in enumerate(item.candidates)]
            if "__context__" in decoded:
                item.context = decoded["__context__"]
            item.id = item_unit(row)
            items.append(item)
        judgments = self.rm.judge(items, self.spec.judge.method, self.spec.judge.swap)
        out = [judgment_row(r, it.id, j) for r, it, j in zip(rows, items, judgments)]
        staging.write_shard(self.spec.output, out, schema.JUDGMENT_SCHEMA, "item_id")
        return _progress_rows([o["item_id"] for o in out], [o["status"] for o in out], self.worker)


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
        rows = batch.to_pylist()
        for row in rows:
            pid, task = row.get("prompt_id"), row.get("task")
            base = _base_of(row, self.spec.input)
            context = _resolve(row.get("context"), base) if row.get("context") else None
            meta = dict(generator=g.model, generator_kind=self.kind)
            cands = []
            try:
                generation = Task(task).is_generation
                if generation != (self.kind == "diffusion"):
                    raise ValueError(f"{task} needs a {'diffusers pipeline' if generation else 'VLM'} generator, "
                                     f"but {g.model} is a {self.kind} model")
                if generation:
                    seeds = [candidate_seed(g.seed, pid, j) for j in range(g.n)]
                    blobs = self.sampler.sample(row["prompt"], seeds, g.steps, g.guidance_scale, g.height, g.width,
                                                g.num_frames, g.fps)
                    ext = "mp4" if task == "video_generation" else "png"
                    for j, (seed, data) in enumerate(zip(seeds, blobs)):
                        uri = storage.join(self.spec.output, "candidates", task, pid, f"c{j}.{ext}")
                        storage.write_bytes(uri, data)
                        cands.append(dict(id=f"{pid}-c{j}", text=None, media=uri, gt_score=None, seed=seed))
                else:
                    seed = candidate_seed(g.seed, pid)
                    texts = self.sampler.sample(task, row["prompt"], context, g.n, seed, g.temperature, g.top_p,
                                                g.max_new_tokens)
                    cands = [dict(id=f"{pid}-c{j}", text=t, media=None, gt_score=None, seed=seed)
                             for j, t in enumerate(texts)]
                    meta["sample_index_is_candidate_index"] = True
            except media_io.MediaError as e:
                meta["generate_error"] = f"{e.code}: {e.reason}"
            except Exception as e:  # noqa: BLE001 - one prompt's failure becomes its error record
                meta["generate_error"] = f"{type(e).__name__}: {e}"
            out.append(dict(prompt_id=pid, task=task, prompt=row.get("prompt"), context=context, candidates=cands,
                            meta=json.dumps(meta)))
        return _table(out, schema.POOL_SCHEMA, {})


# ------------------------------------------------------------------------------------ driver
def _ray_init() -> None:
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=True, ignore_reinit_error=True)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver reports progress itself (units done, rate, ETA)
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


def _read(uri: str | list[str]):
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


def fingerprint(spec: CurateSpec | ScoreSpec) -> dict[str, Any]:
    """The parts of a spec that change results (not names, resources, batch sizes or devices)."""
    judge = spec.judge.model_dump(exclude={"device", "token_budget", "max_batch_size", "attn_implementation",
                                           "endpoint", "token_env"})
    fp: dict[str, Any] = dict(kind=spec.kind, input=spec.input, judge=judge)
    if isinstance(spec, CurateSpec):
        fp.update(select=spec.select.model_dump(), seed=spec.seed,
                  generate=spec.generate.model_dump(exclude={"resources", "device"}) if spec.generate else None)
    return fp


def _runtime_env(spec: CurateSpec | ScoreSpec) -> dict[str, Any]:
    """The driver's storage settings (and a served judge's token), for every worker of the job: they
    may run on other nodes, or in a Ray cluster started before these variables were set."""
    names = storage.ENV_VARS + ((spec.judge.token_env,) if spec.judge.endpoint else ())
    return {"env_vars": {k: os.environ[k] for k in names if k in os.environ}}


def _pool(resources, spec: CurateSpec | ScoreSpec):
    from ray.data import ActorPoolStrategy

    extra = dict(resources=dict(resources.custom_resources)) if resources.custom_resources else {}
    return dict(compute=ActorPoolStrategy(min_size=resources.min_actors, max_size=resources.max_actors),
                num_gpus=resources.gpus_per_actor or None, num_cpus=resources.cpus_per_actor, **extra,
                batch_size=resources.batch_size, batch_format="pyarrow", runtime_env=_runtime_env(spec),
                fn_constructor_kwargs=dict(spec_json=spec.model_dump_json()))


def _decode_args(spec: CurateSpec | ScoreSpec) -> dict[str, Any]:
    # CPU tasks with their own memory request. Their resources differ from the judge actors', which
    # also keeps Ray Data from fusing the decoding into the actors: it must not stall a GPU actor.
    resources = spec.resources
    return dict(num_cpus=resources.decode_cpus, memory=resources.decode_memory_mb * 2**20,
                batch_size=resources.decode_batch_size, batch_format="pyarrow", runtime_env=_runtime_env(spec))


def check_capacity(spec: CurateSpec | ScoreSpec) -> None:
    """Actors hold their CPUs/GPUs for the whole job: if the smallest pools plus one decoding task
    do not fit what the cluster has free, the job would wait forever. Say so instead (on an autoscaling cluster,
    where RAY_ADDRESS is set, only warn: nodes may still come)."""
    import ray

    have = ray.available_resources()
    pools = [spec.resources] + ([spec.generate.resources] if isinstance(spec, CurateSpec) and spec.generate else [])
    cpus = sum(p.min_actors * p.cpus_per_actor for p in pools) + max(spec.resources.decode_cpus, IO_CPUS)
    # (the reading task and a decoding task need not run at once: the larger of the two must fit)
    gpus = sum(p.min_actors * p.gpus_per_actor for p in pools)
    problems = []
    if cpus > have.get("CPU", 0) + 1e-9:
        problems.append(f"{cpus:g} CPUs (actors' cpus_per_actor x min_actors, plus 1 for reading or decode_cpus "
                        f"for decoding) but the cluster has {have.get('CPU', 0):g} available")
    if gpus > have.get("GPU", 0) + 1e-9:
        problems.append(f"{gpus:g} GPUs (gpus_per_actor x min_actors) but the cluster has {have.get('GPU', 0):g} "
                        "available")
    for name in sorted({k for p in pools for k in p.custom_resources}):
        need = sum(p.min_actors * p.custom_resources.get(name, 0.0) for p in pools)
        if need > have.get(name, 0) + 1e-9:
            problems.append(f"{need:g} of the custom resource {name!r} (custom_resources x min_actors) but the "
                            f"cluster has {have.get(name, 0):g} available")
    if problems:
        message = "the job cannot start: it needs " + "; and ".join(problems) + \
            ". Lower the resources in the spec, or add nodes."
        if os.environ.get("RAY_ADDRESS"):
            log.warning("%s (waiting for the autoscaler)", message)
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
    pool = dict(judge_actors=len(workers), judge_nodes=len({w.split("/")[0] for w in workers}),
                units_per_actor=sorted(workers.values(), reverse=True))
    return counts, pool


def run_curate(spec: CurateSpec, progress: Callable[[int, int, dict], None] | None = None) -> dict[str, Any]:
    t0 = time.time()
    _ray_init()
    check_capacity(spec)
    resumed = staging.check_fingerprint(spec.output, fingerprint(spec))
    done = sorted(staging.done_units(spec.output, "prompt_id"))
    ds, total = _read(spec.input)
    ds = ds.map_batches(drop_done, fn_kwargs=dict(done=done, column="prompt_id"), batch_format="pyarrow")
    # streaming (no shuffle) re-blocking into judge-batch-sized blocks: several actors get work, and
    # results (and progress) stream out batch by batch instead of one input file at a time
    ds = ds.repartition(target_num_rows_per_block=spec.resources.batch_size)
    if spec.generate is not None:
        ds = ds.map_batches(GenerateStage, **_pool(spec.generate.resources, spec))
    limits = spec.judge.media.model_dump()
    ds = ds.map_batches(decode_pool_rows, fn_kwargs=dict(input_uri=spec.input, limits=limits),
                        **_decode_args(spec))
    ds = ds.map_batches(CurateStage, **_pool(spec.resources, spec))
    remaining = max(0, total - len(done))
    counts, pool = _stream(ds, remaining, progress) if remaining else ({}, {})
    run_seconds = time.time() - t0
    return finish_curate(spec, dict(total=total, already_done=len(done), processed=sum(counts.values()),
                                    resumed=resumed, run_seconds=round(run_seconds, 2), **pool))


def finish_curate(spec: CurateSpec, run: dict[str, Any]) -> dict[str, Any]:
    """Compaction, report and exports (driver side, from the committed shards)."""
    staged = staging.read_staged(spec.output, "prompt_id")
    prompts, prefs, errors = [], [], []
    for row in staged:
        stats = json.loads(row["stats"])
        prompts.append(dict(prompt_id=row["prompt_id"], task=row["task"], status=row["status"], reason=row["reason"],
                            stats=stats))
        prefs.extend(json.loads(row["preferences"]))
        errors.extend(json.loads(row["errors"]))
    for sub in ("preferences", "errors", "prompts", "report", "exports"):
        staging.clear(storage.join(spec.output, sub))
    for task in sorted({p["task"] for p in prefs}):
        staging.write_parts([p for p in prefs if p["task"] == task], schema.PREFERENCE_SCHEMA,
                            storage.join(spec.output, "preferences", f"task={task}"))
    staging.write_parts(errors, schema.ERROR_SCHEMA, storage.join(spec.output, "errors"))
    staging.write_parts([dict(p, stats=json.dumps(p["stats"])) for p in prompts], schema.PROMPT_STATUS_SCHEMA,
                        storage.join(spec.output, "prompts"))
    summary = summarize_curation(prompts, prefs, errors)
    names = spec.export if spec.export is not None else exporters.applicable(prefs)
    summary["exports"] = {n: exporters.export(n, prefs, storage.join(spec.output, "exports"),
                                              spec.judge.media.limits()) for n in names}
    failed = summary["failed_prompts"]
    summary.update(name=spec.name, kind="curate", output=spec.output, unireward=__version__, run=run,
                   error_fraction=failed / len(prompts) if prompts else 0.0,
                   max_error_fraction=spec.max_error_fraction)
    write_json(summary, storage.join(spec.output, "report", "summary.json"))
    plot_curation(summary, prefs, storage.join(spec.output, "report", "curation.png"))
    _check_errors(summary, "prompts")
    return summary


def run_score(spec: ScoreSpec, progress: Callable[[int, int, dict], None] | None = None) -> dict[str, Any]:
    t0 = time.time()
    _ray_init()
    check_capacity(spec)
    resumed = staging.check_fingerprint(spec.output, fingerprint(spec))
    done = sorted(staging.done_units(spec.output, "item_id"))
    ds, total = _read(spec.input)
    ds = ds.map_batches(drop_done, fn_kwargs=dict(done=done, column="item_id"), batch_format="pyarrow")
    ds = ds.repartition(target_num_rows_per_block=spec.resources.batch_size)
    ds = ds.map_batches(decode_item_rows, fn_kwargs=dict(input_uri=spec.input, limits=spec.judge.media.model_dump()),
                        **_decode_args(spec))
    ds = ds.map_batches(ScoreStage, **_pool(spec.resources, spec))
    remaining = max(0, total - len(done))
    counts, pool = _stream(ds, remaining, progress) if remaining else ({}, {})
    judgments = staging.read_staged(spec.output, "item_id")
    for sub in ("judgments", "errors", "report"):
        staging.clear(storage.join(spec.output, sub))
    staging.write_parts(judgments, schema.JUDGMENT_SCHEMA, storage.join(spec.output, "judgments"))
    errors = [dict(unit_id=j["item_id"], candidate_id=None, task=j["task"], stage="judge", status=j["status"],
                   reason=j["reason"]) for j in judgments if j["status"] != Status.OK.value]
    staging.write_parts(errors, schema.ERROR_SCHEMA, storage.join(spec.output, "errors"))
    summary = summarize_scores(judgments)
    failed = sum(j["status"] in (Status.INVALID_INPUT.value, Status.ERROR.value) for j in judgments)
    summary.update(name=spec.name, kind="score", output=spec.output, unireward=__version__,
                   run=dict(total=total, already_done=len(done), processed=sum(counts.values()), resumed=resumed,
                            run_seconds=round(time.time() - t0, 2), **pool),
                   errors=dict(total=len(errors), failed_inputs=failed),
                   error_fraction=failed / len(judgments) if judgments else 0.0,
                   max_error_fraction=spec.max_error_fraction)
    write_json(summary, storage.join(spec.output, "report", "summary.json"))
    _check_errors(summary, "items")
    return summary


def _check_errors(summary: dict[str, Any], unit: str) -> None:
    frac, limit = summary["error_fraction"], summary["max_error_fraction"]
    if frac > limit:
        raise JobFailed(
            f"{frac:.1%} of the {unit} failed, above max_error_fraction={limit:.1%}. The results are written to "
            f"{summary['output']} (see errors/ and report/summary.json for the reasons)."
        )


def run_spec(spec: CurateSpec | ScoreSpec, progress=None) -> dict[str, Any]:
    if isinstance(spec, CurateSpec):
        return run_curate(spec, progress)
    return run_score(spec, progress)


__all__ = ["CurateStage", "GenerateStage", "JobFailed", "ScoreStage", "run_curate", "run_score", "run_spec"]
