"""The `unireward` command."""

from __future__ import annotations

import json
import logging
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(
    name="unireward",
    help="One multimodal judge for image/video generation and understanding: judge, curate, train, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="Checkpoint utilities.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks (side by side against a baseline in the same process).", no_args_is_help=True)
app.add_typer(models_app, name="models")
jobs_app = typer.Typer(help="Jobs on a Ray cluster (the Ray Jobs API): list, status, logs, stop.",
                       no_args_is_help=True)
app.add_typer(bench_app, name="bench")
experiment_app = typer.Typer(help="Experiments that train several judges and compare them.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")
app.add_typer(jobs_app, name="jobs")


def _quiet_libraries() -> None:
    """Keep library chatter (DeepSpeed's accelerator probe, HF progress bars) off our output."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # "Creating parquet from Arrow format"
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "DS_ACCELERATOR" not in os.environ:
        import torch

        if not torch.cuda.is_available():
            # DeepSpeed (imported by transformers) would otherwise print its CPU fallback warning on stdout
            os.environ["DS_ACCELERATOR"] = "cpu"
    for name in ("DeepSpeed", "deepspeed", "transformers", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


class TinyKind(str, Enum):
    judge = "judge"
    t2i = "t2i"
    t2v = "t2v"


class Method(str, Enum):
    logits = "logits"
    generate = "generate"


@app.command()
def version() -> None:
    """Print the package version."""
    from . import __version__

    typer.echo(__version__)


@models_app.command("build-tiny")
def build_tiny(
    kind: TinyKind = typer.Option(..., help="judge (Qwen-VL VLM), t2i (Stable Diffusion layout) or t2v (UNet3D)"),
    out: Path = typer.Option(..., help="folder to write the checkpoint to"),
    arch: str = typer.Option("qwen2_5_vl", help="judge only: qwen2_5_vl, qwen2_vl or qwen3_vl"),
    size: str = typer.Option("small", help="judge only: nano, small, mini or base"),
    seed: int = typer.Option(0, help="weight initialisation seed"),
) -> None:
    """Build a tiny, real checkpoint folder (random weights) that from_pretrained loads."""
    _quiet_libraries()
    from .models.tiny import build_tiny as _build

    kwargs = dict(arch=arch, size=size) if kind is TinyKind.judge else {}
    try:
        path = _build(kind.value, out, seed=seed, **kwargs)
    except ValueError as e:
        _fail(str(e))
    info = json.loads((Path(path) / "unireward_tiny.json").read_text())
    typer.echo(json.dumps(dict(path=str(path), **info)))


@models_app.command("pretrain-tiny")
def pretrain_tiny(
    base: Path = typer.Argument(..., help="a tiny judge folder (from `models build-tiny --kind judge`)"),
    out: Path = typer.Option(..., help="folder to write the pretrained checkpoint to"),
    steps: int = typer.Option(3000, min=1),
    batch_size: int = typer.Option(32, min=1),
    lr: float = typer.Option(2e-3, min=0.0),
    workers: int = typer.Option(0, min=0, help="DataLoader processes rendering examples"),
    eval_every: int = typer.Option(250, min=1),
    max_seconds: Optional[float] = typer.Option(None, help="stop early (and save) after this long"),
    device: Optional[str] = typer.Option(None, help="cuda or cpu (default: cuda when available)"),
    seed: int = typer.Option(0),
    mix: str = typer.Option("grounded", help="grounded: captions, answers, describe-k, caption matching; see: "
                                             "descriptions in the world's fixed slot order, captions, answers; slots: "
                                             "descriptions and slot-by-slot checks in that order"),
    eval_examples: int = typer.Option(32, min=1, help="held-out examples per kind"),
    stop_at: Optional[int] = typer.Option(None, min=1, help="stop (and save) after this many steps; the learning-rate "
                                                           "schedule is still the one of --steps"),
) -> None:
    """Grounded pretraining of a tiny VLM on the synthetic world (no judging protocol): the tiny
    stand-in for a pretrained base VLM."""
    _quiet_libraries()
    from .models.pretrain import KINDS, SEE_KINDS, SLOT_KINDS, PretrainConfig, pretrain

    if not (base / "config.json").exists():
        _fail(f"{base}: not a checkpoint folder (no config.json)")
    mixes = {"grounded": KINDS, "see": SEE_KINDS, "slots": SLOT_KINDS}
    if mix not in mixes:
        _fail(f"--mix must be one of {sorted(mixes)}, got {mix!r}")
    cfg = PretrainConfig(steps=steps, batch_size=batch_size, lr=lr, workers=workers, eval_every=eval_every,
                         max_seconds=max_seconds, seed=seed, warmup_steps=min(100, max(1, steps // 10)),
                         kinds=dict(mixes[mix]), eval_examples=eval_examples, stop_at=stop_at)

    def log(rec: dict) -> None:
        keys = ("step", "train_loss", "loss/caption", "grounding/caption", "grounding/video_caption", "elapsed_s")
        keys += tuple(k for k in rec if k.startswith("token_acc/") and "/" not in k[len("token_acc/"):])
        typer.echo(" ".join(f"{k}={rec[k]}" for k in keys if k in rec), err=True)

    try:
        summary = pretrain(base, out, cfg, device=device, log=log)
    except (OSError, ValueError) as e:  # not a VLM folder, an unusable device, ...
        _fail(f"{base}: cannot pretrain: {e}")
    typer.echo(json.dumps(dict(path=str(out), final=summary["pretrained"]["final"])))


@app.command()
def synth(
    out: str = typer.Option(..., help="output folder or s3:// prefix"),
    n: int = typer.Option(8, help="prompts per task"),
    seed: int = typer.Option(0),
    candidates: int = typer.Option(4, help="candidates per prompt"),
    corrupt: int = typer.Option(0, help="per task, damage this many media files (robustness testing)"),
    task: Optional[list[str]] = typer.Option(None, help="tasks to generate (default: all four)"),
    pairs: str = typer.Option("adjacent", help="item pairs per pool row: adjacent or all"),
) -> None:
    """Write the synthetic world: pools and items (Parquet) plus media, with ground truth."""
    from .synth.world import TASKS, generate_world

    try:
        s = generate_world(out, n=n, seed=seed, n_candidates=candidates, corrupt=corrupt,
                           tasks=tuple(task) if task else TASKS, pairs=pairs)
    except ValueError as e:
        _fail(str(e))
    typer.echo(json.dumps(dict(root=s.root, pools=s.pools, items=s.items, corrupted=len(s.corrupted)), indent=2))


@app.command()
def judge(
    model: str = typer.Option(..., help="judge checkpoint folder"),
    task: str = typer.Option(..., help="image_generation, image_understanding, video_generation or video_understanding"),
    prompt: str = typer.Option(..., help="the caption (generation) or the question (understanding)"),
    a: Optional[str] = typer.Option(None, "--a", help="pair: first candidate (media path/URI, or answer text)"),
    b: Optional[str] = typer.Option(None, "--b", help="pair: second candidate"),
    candidate: Optional[str] = typer.Option(None, help="point: the one candidate"),
    context: Optional[str] = typer.Option(None, help="understanding tasks: the image or video"),
    method: Method = typer.Option(Method.logits),
    swap: bool = typer.Option(False, help="judge the pair in both orders and combine"),
    multi: bool = typer.Option(False, help="point: multi-dimension scores (generation tasks)"),
    family: str = typer.Option("qwen", help="protocol family (phrasing): qwen or llava"),
    protocols: Optional[Path] = typer.Option(None, help="YAML file overriding protocol templates"),
    device: Optional[str] = typer.Option(None),
    dtype: Optional[str] = typer.Option(None, help="bfloat16, float16 or float32 (default: bf16 on GPU)"),
    max_new_tokens: int = typer.Option(256, help="generate method: new-token limit"),
) -> None:
    """Judge one pair (--a/--b) or one point (--candidate); prints the judgment as JSON.
    Exit status 0 when judged (ok or unparsed), 2 for invalid input or errors."""
    _quiet_libraries()
    from .judge.model import RewardModel
    from .judge.types import JudgeItem, Mode, Status

    if (a is None) != (b is None):
        _fail("a pair needs both --a and --b")
    if (a is None) == (candidate is None):
        _fail("give either --a and --b (pair) or --candidate (point)")
    cands = [a, b] if a is not None else [candidate]
    mode = Mode.POINT_MULTI if multi else None
    try:
        rm = RewardModel(model, device=device, dtype=dtype, family=family, protocols=protocols,
                         max_new_tokens=max_new_tokens)
    except (OSError, ValueError) as e:
        _fail(f"cannot load judge {model!r}: {e}")
    j = rm.judge([JudgeItem(task, prompt, cands, context=context, mode=mode)], method=method.value, swap=swap)[0]
    typer.echo(json.dumps(j.to_dict(), indent=2))
    if j.status in (Status.INVALID_INPUT, Status.ERROR):
        raise typer.Exit(2)


@app.command("protocols")
def protocols_cmd(
    family: Optional[str] = typer.Option(None, help="only this family"),
    show: Optional[str] = typer.Option(None, help="print one protocol in full, e.g. qwen/image_generation/pair_rank"),
    overrides: Optional[Path] = typer.Option(None, help="YAML file overriding protocol templates"),
) -> None:
    """List the protocol registry (prompt templates, verdict phrases, score scales)."""
    from .judge.protocols import ProtocolError, default_registry

    try:
        reg = default_registry().with_overrides(overrides)
    except ProtocolError as e:
        _fail(str(e))
    if show and show not in {p.id for p in reg}:
        _fail(f"no protocol {show!r}; `unireward protocols` lists them")
    for p in reg:
        if family and p.family != family:
            continue
        if show and p.id != show:
            continue
        answer = dict(p.verdicts) if p.verdicts else [f"{s.marker} {s.low}-{s.high}" for s in p.scales]
        if show:
            typer.echo(json.dumps(dict(id=p.id, digest=p.digest, template=p.template, answers=answer,
                                       answer_prefix=p.answer_prefix), indent=2))
        else:
            typer.echo(f"{p.id:48s} {p.digest}  {answer}")


@app.command()
def demo(
    workdir: str = typer.Option("runs/demo", help="where the demo writes its checkpoint, data and report"),
    n: int = typer.Option(6, help="prompts per task"),
    seed: int = typer.Option(0),
) -> None:
    """Run the main job end to end on the embedded default (CPU, tiny models, synthetic data)."""
    _quiet_libraries()
    from .demo import run_demo

    run_demo(workdir, n=n, seed=seed)


def _apply_overrides(data: dict, overrides: list[str]) -> dict:
    """``key.sub=value`` overrides (values parsed as YAML: numbers, booleans, lists)."""
    import yaml

    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            _fail(f"--set takes key=value, got {item!r}")
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                _fail(f"--set {key}: {p} is not a mapping")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def _spec_data(spec_path: Path, overrides: list[str] | None) -> dict:
    """A spec file's mapping (local or s3://) with ``--set`` overrides applied, not yet validated."""
    from .config import ConfigError
    from .io import storage

    return _apply_overrides(storage.read_yaml(spec_path, ConfigError, "spec file") or {}, overrides or [])


@app.command()
def run(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="job spec (YAML): kind curate, score, train_reward or dpo"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override a spec field: --set judge.model=/m"),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: RAY_ADDRESS or a local Ray)"),
) -> None:
    """Run a job spec on Ray (the embedded local Ray by default). Rerunning a spec with the same
    output resumes it: only the units not yet committed are processed."""
    _quiet_libraries()
    from rich.console import Console

    from .config import ConfigError, SPEC_KINDS, parse_spec
    from .io import staging, storage

    console = Console(stderr=True)
    try:
        spec = parse_spec(_spec_data(spec_path, set_), str(spec_path))
    except ConfigError as e:
        _fail(str(e))
    if spec.kind not in SPEC_KINDS:  # pragma: no cover - load_spec already checks
        _fail(f"unknown kind {spec.kind!r}")
    if address:
        os.environ["RAY_ADDRESS"] = address
    if spec.kind in ("train_reward", "dpo"):
        from .pipelines.train import run_dpo, run_train_reward
        from .train.data import DataError

        fit = run_train_reward if spec.kind == "train_reward" else run_dpo
        try:
            summary = fit(spec, lambda m: console.print(m, markup=False, highlight=False))
        except DataError as e:
            _fail(str(e))
        except RuntimeError as e:
            _fail(str(e), code=1)
        typer.echo(json.dumps(dict(name=spec.name, kind=spec.kind, final=summary["final"], best=summary["best"],
                                   summary=storage.join(summary["run"], "report", "summary.json")), indent=2))
        return
    from .pipelines.batch import JobFailed, run_spec

    state = {"last": 0.0}
    import time

    started = time.time()

    def progress(done: int, total: int, counts: dict) -> None:
        now = time.time()
        if now - state["last"] < 2 and done < total:
            return
        state["last"] = now
        rate = done / max(now - started, 1e-9)
        eta = (total - done) / rate if rate > 0 else float("inf")
        summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        console.print(f"[{spec.name}] {done}/{total} ({done / max(total, 1):.0%}) {rate:.2f}/s "
                      f"ETA {eta:.0f}s  {summary}", markup=False, highlight=False)

    try:
        summary = run_spec(spec, progress)
    except staging.SpecMismatch as e:
        _fail(str(e))
    except JobFailed as e:
        _fail(str(e), code=1)
    typer.echo(json.dumps(dict(name=spec.name, kind=spec.kind, output=spec.output, run=summary["run"],
                               summary=storage.join(spec.output, "report", "summary.json")), indent=2))


ADDRESS_HELP = "Ray Jobs API (dashboard) address; default: RAY_API_SERVER_ADDRESS, RAY_ADDRESS, http://127.0.0.1:8265"


def _jobs_call(fn, *args, **kwargs):
    """Cluster errors (unreachable head, unknown submission id) as one clear line, not a traceback."""
    from .config import ConfigError

    try:
        return fn(*args, **kwargs)
    except ConfigError as e:
        _fail(str(e))
    except (ConnectionError, RuntimeError, ValueError) as e:
        _fail(str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__, code=1)


@app.command()
def submit(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="job spec (YAML), checked here before it is sent"),
    address: Optional[str] = typer.Option(None, help=ADDRESS_HELP),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override a spec field: --set judge.model=/m"),
    env: Optional[list[str]] = typer.Option(None, "--env", help="pass NAME (from here) or NAME=VALUE to the job"),
    pip: Optional[list[str]] = typer.Option(None, "--pip", help="extra pip requirement for the job's runtime env"),
    ship: bool = typer.Option(True, "--ship/--no-ship",
                              help="upload this unireward package (--no-ship: the cluster's image has it)"),
    submission_id: Optional[str] = typer.Option(None, "--submission-id", help="default: unireward-NAME-TIME-XXXX"),
    entrypoint_num_cpus: Optional[float] = typer.Option(None, help="CPUs reserved for the job's driver"),
    wait: bool = typer.Option(False, "--wait", help="wait for the job to end; exit 1 unless it succeeded"),
    follow: bool = typer.Option(False, "--follow", help="stream the job's log until it ends (implies --wait)"),
) -> None:
    """Submit a spec to a Ray cluster as a Ray job; prints the submission id. The job runs
    `unireward run spec.yaml` there: paths in the spec are read on the cluster (use s3:// or shared storage)."""
    from .config import ConfigError
    from .pipelines import jobs

    try:
        data = _spec_data(spec_path, set_)
    except ConfigError as e:
        _fail(str(e))
    sid = _jobs_call(jobs.submit, data, str(spec_path), address, sid=submission_id, env=env or [],
                     ship_package=ship, pip=pip or [], entrypoint_num_cpus=entrypoint_num_cpus)
    typer.echo(sid)
    if follow:
        for chunk in jobs.follow(sid, address):
            typer.echo(chunk, nl=False)
    if wait or follow:
        final = _jobs_call(jobs.wait, sid, address)
        typer.echo(f"job {sid}: {final}", err=True)
        if final != "SUCCEEDED":
            raise typer.Exit(1)


@jobs_app.command("list")
def jobs_list(
    address: Optional[str] = typer.Option(None, help=ADDRESS_HELP),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Jobs on the cluster, newest first."""
    from .pipelines import jobs

    rows = _jobs_call(jobs.list_jobs, address)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"{'SUBMISSION ID':52s} {'STATUS':10s} {'KIND':8s} SPEC")
    for r in rows:
        typer.echo(f"{r['submission_id'] or '-':52s} {r['status']:10s} {r['kind'] or '-':8s} {r['spec'] or r['entrypoint']}")


@jobs_app.command("status")
def jobs_status(
    submission_id: str = typer.Argument(..., metavar="ID"),
    address: Optional[str] = typer.Option(None, help=ADDRESS_HELP),
) -> None:
    """A job's status (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED) and details, as JSON."""
    from .pipelines import jobs

    typer.echo(json.dumps(_jobs_call(jobs.status, submission_id, address), indent=2))


@jobs_app.command("logs")
def jobs_logs(
    submission_id: str = typer.Argument(..., metavar="ID"),
    address: Optional[str] = typer.Option(None, help=ADDRESS_HELP),
    follow: bool = typer.Option(False, "--follow", "-f", help="stream the log until the job ends"),
) -> None:
    """A job's driver log."""
    from .pipelines import jobs

    if not follow:
        typer.echo(_jobs_call(jobs.logs, submission_id, address), nl=False)
        return
    _jobs_call(jobs.status, submission_id, address)  # an unknown id: one clear error line
    for chunk in jobs.follow(submission_id, address):
        typer.echo(chunk, nl=False)


@jobs_app.command("stop")
def jobs_stop(
    submission_id: str = typer.Argument(..., metavar="ID"),
    address: Optional[str] = typer.Option(None, help=ADDRESS_HELP),
) -> None:
    """Stop a running job and wait until it has stopped."""
    from .pipelines import jobs

    typer.echo(f"job {submission_id}: {_jobs_call(jobs.stop, submission_id, address)}")


@app.command("serve")
def serve_cmd(
    config: Optional[Path] = typer.Option(None, help="Serve config (default: serve/reward.yaml)"),
    model: Optional[str] = typer.Option(None, help="judge checkpoint folder (overrides the config)"),
    host: Optional[str] = typer.Option(None, help="bind address (0.0.0.0 requires bearer tokens)"),
    port: Optional[int] = typer.Option(None),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override an application arg: --set max_batch_size=16"),
) -> None:
    """Run the reward endpoint on the embedded Ray (`serve deploy serve/reward.yaml` on a cluster)."""
    _quiet_libraries()
    import signal
    import time

    from .config import ConfigError
    from .serve import local

    try:
        cfg = local.read_config(config)
    except ConfigError as e:
        _fail(str(e))
    args: dict = _apply_overrides({}, set_ or [])
    if model:
        args.setdefault("judge", {})["model"] = model
    if host:
        args["host"] = host
    if port:
        args["port"] = port
    try:
        local.check(cfg, args)
    except ConfigError as e:
        _fail(str(e))
    local.ensure_ray()
    # after ray.init (which installs its own SIGTERM handler) and before the endpoint answers:
    # a SIGTERM from then on (`kill`, a container stop) is a clean shutdown
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    try:
        url = local.start(cfg, args)
    except (ConfigError, ValueError) as e:
        _fail(str(e))
    except (RuntimeError, TimeoutError) as e:
        local.stop(None, shutdown=True)
        _fail(str(e), code=1)
    typer.echo(f"reward endpoint ready at {url}  (docs: {url}/docs; Ctrl-C stops it)")
    try:
        while not stop["now"]:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    local.stop(shutdown=True)


@bench_app.command("judge")
def bench_judge_cmd(
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    model: Optional[str] = typer.Option(None, help="an existing judge checkpoint (default: build one)"),
    shape: str = typer.Option("tiny", help="tiny, or 7b: a Qwen2.5-VL-7B-shaped random model (needs a GPU)"),
    size: str = typer.Option("mini", help="tiny judge size: nano, small, mini or base"),
    pairs: int = typer.Option(16, help="pairs per timed run"),
    batch_size: int = typer.Option(8, help="batch size of the batched methods"),
    repeats: int = typer.Option(3, help="timed runs per method (median)"),
    device: Optional[str] = typer.Option(None),
    dtype: Optional[str] = typer.Option(None),
) -> None:
    """Seed-style judging (batch 1, generate, parse) vs batched generate vs the logit method."""
    _quiet_libraries()
    from .bench import bench_judge

    log = (lambda s: typer.echo(s, err=True)) if as_json else typer.echo
    r = bench_judge(model=model, n_pairs=pairs, size=size, shape=shape, device=device, dtype=dtype,
                    batch_size=batch_size, repeats=repeats, log=log)
    if as_json:
        typer.echo(json.dumps(r, indent=2))
        return
    typer.echo(f"\n{'method':28s} {'pairs/s':>10s} {'vs seed-style':>14s}")
    for k, v in r["pairs_per_s"].items():
        typer.echo(f"{k:28s} {v:10.2f} {r['speedup_vs_seed'][k]:13.2f}x")
    typer.echo(json.dumps(r["setup"]))


@bench_app.command("curate")
def bench_curate_cmd(
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    prompts: int = typer.Option(48, help="pool rows (prompts with 4 candidates each)"),
    batch_size: int = typer.Option(4, help="prompts per judge call"),
    size: str = typer.Option("small", help="tiny judge size: nano, small, mini or base"),
) -> None:
    """Curation throughput: Ray Data (1 and 2 judge actors) against a plain in-process loop."""
    _quiet_libraries()
    from .bench import bench_curate

    log = (lambda s: typer.echo(s, err=True)) if as_json else typer.echo
    r = bench_curate(n_prompts=prompts, batch_size=batch_size, size=size, log=log)
    if as_json:
        typer.echo(json.dumps(r, indent=2))
        return
    typer.echo(f"\n{'pipeline':18s} {'prompts/s':>10s} {'seconds':>9s}")
    for k, v in r["results"].items():
        typer.echo(f"{k:18s} {v['prompts_per_s']:10.2f} {v['seconds']:9.1f}")
    typer.echo(f"ray (1 actor) / loop: {r['ray_1_actor_vs_loop']:.2f}   ray 2 actors / 1: {r['ray_2_actors_vs_1']:.2f}")
    typer.echo(json.dumps(r["setup"]))


@experiment_app.command("synergy")
def experiment_synergy(
    workdir: str = typer.Option("runs/synergy", help="where the judges, worlds and the table go"),
    prompts: int = typer.Option(48, help="training prompts per task"),
    eval_prompts: int = typer.Option(12, help="held-out prompts per task"),
    steps: int = typer.Option(60, help="optimizer steps per task (the joint run takes 4x)"),
    size: str = typer.Option("small", help="tiny judge size"),
    lr: float = typer.Option(2e-3),
    seed: int = typer.Option(0),
) -> None:
    """Joint training vs single-task training (the paper's ablation, in miniature): a table per task."""
    _quiet_libraries()
    from .experiment import markdown, synergy

    r = synergy(workdir, prompts=prompts, eval_prompts=eval_prompts, steps=steps, size=size, lr=lr, seed=seed,
                say=lambda m: typer.echo(m, err=True))
    typer.echo(markdown(r))
    typer.echo(f"written: {workdir}/synergy.json, synergy.md, synergy.png ({r['setup']['seconds']:.0f} s)")


@bench_app.command("train")
def bench_train_cmd(
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    size: str = typer.Option("base", help="tiny judge size: nano, small, mini or base"),
    steps: int = typer.Option(12, help="optimizer steps per run"),
    batch_size: int = typer.Option(4, help="examples per worker per step"),
    workers: int = typer.Option(2, help="Ray Train workers"),
) -> None:
    """Judge training: ZeRO-3 and ZeRO-2 against plain data parallel (same model, data, steps)."""
    _quiet_libraries()
    from .bench import bench_train

    log = (lambda s: typer.echo(s, err=True)) if as_json else typer.echo
    r = bench_train(size=size, steps=steps, batch_size=batch_size, workers=workers, log=log)
    if as_json:
        typer.echo(json.dumps(r, indent=2))
        return
    typer.echo(f"\n{'run':8s} {'examples/s':>11s} {'peak MB/worker':>15s} {'final loss':>11s}")
    for k, v in r["results"].items():
        typer.echo(f"{k:8s} {v['examples_per_s']:11.2f} {v['peak_memory_mb']:15.0f} {v['final_loss']:11.4f}")
    for k, v in r["ratios"].items():
        typer.echo(f"{k}: throughput {v['throughput']:.2f}x, peak memory {v['peak_memory']:.2f}x")
    typer.echo(json.dumps(r["setup"]))


@bench_app.command("batching")
def bench_batching_cmd(
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    model: Optional[str] = typer.Option(None, help="an existing judge checkpoint (default: build one)"),
    shape: str = typer.Option("tiny", help="tiny, or 7b: a Qwen2.5-VL-7B-shaped random model (needs a GPU)"),
    size: str = typer.Option("small", help="tiny judge size"),
    batch_size: Optional[list[int]] = typer.Option(None, help="batch sizes (default 1 4 16 32)"),
    items: int = typer.Option(64, help="pairs per timed run"),
    repeats: int = typer.Option(3),
    device: Optional[str] = typer.Option(None),
    dtype: Optional[str] = typer.Option(None),
) -> None:
    """In-process judge throughput by batch size: the ceiling of the endpoint's dynamic batching."""
    _quiet_libraries()
    from .bench import bench_batching

    log = (lambda s: typer.echo(s, err=True)) if as_json else typer.echo
    r = bench_batching(model=model, size=size, shape=shape, batch_sizes=tuple(batch_size or (1, 4, 16, 32)),
                       n_items=items, repeats=repeats, device=device, dtype=dtype, log=log)
    if as_json:
        typer.echo(json.dumps(r, indent=2))
        return
    typer.echo("speed-up over the first batch size: " +
               ", ".join(f"{b}: {v:.2f}x" for b, v in r["speedup_vs_first"].items()))


@bench_app.command("serve")
def bench_serve_cmd(
    as_json: bool = typer.Option(False, "--json", help="print the results as JSON"),
    seconds: float = typer.Option(6.0, help="seconds of load per concurrency level"),
    size: str = typer.Option("small", help="tiny judge size"),
    concurrency: Optional[list[int]] = typer.Option(None, help="levels (default 1 4 16 32 64)"),
) -> None:
    """Closed-loop load on the reward endpoint: dynamic batching against batch size 1."""
    _quiet_libraries()
    from .bench import bench_serve

    log = (lambda s: typer.echo(s, err=True)) if as_json else typer.echo
    r = bench_serve(concurrencies=tuple(concurrency or (1, 4, 16, 32, 64)), seconds=seconds, size=size, log=log)
    if as_json:
        typer.echo(json.dumps(r, indent=2))
        return
    typer.echo("speed-up of dynamic batching by concurrency: " +
               ", ".join(f"{c}: {v:.2f}x" for c, v in r["speedup_batched_vs_bs1"].items()))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
