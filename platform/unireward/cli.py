"""The `unireward` command."""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from .console import fail, progress_printer, quiet_libraries, storage_errors

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

app = typer.Typer(
    name="unireward",
    help="One multimodal judge for image/video generation and understanding: judge, curate, train, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="Checkpoint utilities.", no_args_is_help=True)
app.add_typer(models_app, name="models")
jobs_app = typer.Typer(help="Jobs on a Ray cluster (the Ray Jobs API): list, status, logs, stop.", no_args_is_help=True)
experiment_app = typer.Typer(help="Experiments that train several judges and compare them.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")
app.add_typer(jobs_app, name="jobs")


def _add_subcommands() -> None:
    from .cli_bench import app as bench_app
    from .cli_eval import eval_command
    from .cli_protocols import app as protocols_app

    app.add_typer(bench_app, name="bench")
    app.add_typer(protocols_app, name="protocols")
    app.command("eval")(eval_command)


_add_subcommands()


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
    quiet_libraries()
    from .models.tiny import build_tiny as _build

    kwargs = dict(arch=arch, size=size) if kind is TinyKind.judge else {}
    try:
        path = _build(kind.value, out, seed=seed, **kwargs)
    except ValueError as e:
        fail(str(e))
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
    mix: str = typer.Option(
        "grounded",
        help="grounded: captions, answers, describe-k, caption matching; see: "
        "descriptions in the world's fixed slot order, captions, answers; slots: "
        "descriptions and slot-by-slot checks in that order",
    ),
    eval_examples: int = typer.Option(32, min=1, help="held-out examples per kind"),
    stop_at: Optional[int] = typer.Option(
        None,
        min=1,
        help="stop (and save) after this many steps; the learning-rate schedule is still the one of --steps",
    ),
) -> None:
    """Grounded pretraining of a tiny VLM on the synthetic world (no judging protocol): the tiny
    stand-in for a pretrained base VLM."""
    quiet_libraries()
    from .models.pretrain import KINDS, SEE_KINDS, SLOT_KINDS, PretrainConfig, pretrain

    if not (base / "config.json").exists():
        fail(f"{base}: not a checkpoint folder (no config.json)")
    mixes = {"grounded": KINDS, "see": SEE_KINDS, "slots": SLOT_KINDS}
    if mix not in mixes:
        fail(f"--mix must be one of {sorted(mixes)}, got {mix!r}")
    cfg = PretrainConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        workers=workers,
        eval_every=eval_every,
        max_seconds=max_seconds,
        seed=seed,
        warmup_steps=min(100, max(1, steps // 10)),
        kinds=dict(mixes[mix]),
        eval_examples=eval_examples,
        stop_at=stop_at,
    )

    def log(rec: dict) -> None:
        keys = ("step", "train_loss", "loss/caption", "grounding/caption", "grounding/video_caption", "elapsed_s")
        keys += tuple(k for k in rec if k.startswith("token_acc/") and "/" not in k[len("token_acc/") :])
        typer.echo(" ".join(f"{k}={rec[k]}" for k in keys if k in rec), err=True)

    try:
        summary = pretrain(base, out, cfg, device=device, log=log)
    except (OSError, ValueError) as e:  # not a VLM folder, an unusable device, ...
        fail(f"{base}: cannot pretrain: {e}")
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
        with storage_errors():
            s = generate_world(
                out,
                n=n,
                seed=seed,
                n_candidates=candidates,
                corrupt=corrupt,
                tasks=tuple(task) if task else TASKS,
                pairs=pairs,
            )
    except ValueError as e:
        fail(str(e))
    typer.echo(json.dumps(dict(root=s.root, pools=s.pools, items=s.items, corrupted=len(s.corrupted)), indent=2))


@app.command()
def judge(
    model: str = typer.Option(..., help="judge checkpoint folder"),
    task: str = typer.Option(
        ..., help="image_generation, image_understanding, video_generation or video_understanding"
    ),
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
    quiet_libraries()
    from .judge.model import RewardModel
    from .judge.types import JudgeItem, Mode, Status

    if (a is None) != (b is None):
        fail("a pair needs both --a and --b")
    if (a is None) == (candidate is None):
        fail("give either --a and --b (pair) or --candidate (point)")
    cands = [a, b] if a is not None else [candidate]
    mode = Mode.POINT_MULTI if multi else None
    try:
        rm = RewardModel(
            model, device=device, dtype=dtype, family=family, protocols=protocols, max_new_tokens=max_new_tokens
        )
    except (OSError, ValueError) as e:
        fail(f"cannot load judge {model!r}: {e}")
    j = rm.judge([JudgeItem(task, prompt, cands, context=context, mode=mode)], method=method.value, swap=swap)[0]
    typer.echo(json.dumps(j.to_dict(), indent=2))
    if j.status in (Status.INVALID_INPUT, Status.ERROR):
        raise typer.Exit(2)


@app.command()
def demo(
    workdir: str = typer.Option("runs/demo", help="where the demo writes its checkpoint, data and report"),
    n: int = typer.Option(6, help="prompts per task"),
    seed: int = typer.Option(0),
) -> None:
    """Run the main job end to end on the embedded default (CPU, tiny models, synthetic data)."""
    quiet_libraries()
    from .demo import run_demo

    run_demo(workdir, n=n, seed=seed)


def _apply_overrides(data: dict, overrides: list[str]) -> dict:
    """``key.sub=value`` overrides (values parsed as YAML: numbers, booleans, lists)."""
    import yaml

    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            fail(f"--set takes key=value, got {item!r}")
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                fail(f"--set {key}: {p} is not a mapping")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def _spec_data(spec_path: Path, overrides: list[str] | None) -> dict:
    """A spec file's mapping (local or s3://) with ``--set`` overrides applied, not yet validated."""
    from .config import ConfigError
    from .io import storage

    return _apply_overrides(storage.read_yaml(spec_path, ConfigError, "spec file") or {}, overrides or [])


@app.command()
def run(
    spec_path: Path = typer.Argument(
        ..., metavar="SPEC", help="job spec (YAML): kind curate, score, train_reward or dpo"
    ),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override a spec field: --set judge.model=/m"),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: RAY_ADDRESS or a local Ray)"),
) -> None:
    """Run a job spec on Ray (the embedded local Ray by default). Rerunning a spec with the same
    output resumes it: only the units not yet committed are processed."""
    quiet_libraries()
    from rich.console import Console

    console = Console(stderr=True)
    with storage_errors():  # an object-store failure anywhere in the job: one error line
        _run(spec_path, set_, address, console)


def _run(spec_path: Path, set_: Optional[list[str]], address: Optional[str], console) -> None:
    from .config import SPEC_KINDS, ConfigError, parse_spec
    from .io import staging, storage

    try:
        spec = parse_spec(_spec_data(spec_path, set_), str(spec_path))
    except ConfigError as e:
        fail(str(e))
    if spec.kind not in SPEC_KINDS:  # pragma: no cover - load_spec already checks
        fail(f"unknown kind {spec.kind!r}")
    if address:
        os.environ["RAY_ADDRESS"] = address
    if spec.kind in ("train_reward", "dpo"):
        from .pipelines.train import run_dpo, run_train_reward
        from .train.data import DataError

        fit = run_train_reward if spec.kind == "train_reward" else run_dpo
        try:
            summary = fit(spec, lambda m: console.print(m, markup=False, highlight=False))
        except DataError as e:
            fail(str(e))
        except RuntimeError as e:
            if storage.describe_error(e):
                raise  # storage_errors() says it in one line
            fail(str(e), code=1)
        typer.echo(
            json.dumps(
                dict(
                    name=spec.name,
                    kind=spec.kind,
                    final=summary["final"],
                    best=summary["best"],
                    summary=storage.join(summary["run"], "report", "summary.json"),
                ),
                indent=2,
            )
        )
        return
    from .eval.core import BenchmarkError
    from .pipelines.batch import JobFailed, run_spec

    if spec.kind == "eval":
        from .pipelines.eval import run_eval as run_spec
    try:
        summary = run_spec(spec, progress_printer(console, spec.name))
    except (staging.SpecMismatch, BenchmarkError) as e:
        fail(str(e))
    except JobFailed as e:
        fail(str(e), code=1)
    typer.echo(
        json.dumps(
            dict(
                name=spec.name,
                kind=spec.kind,
                output=spec.output,
                run=summary["run"],
                summary=storage.join(spec.output, "report", "summary.json"),
            ),
            indent=2,
        )
    )


ADDRESS_HELP = "Ray Jobs API (dashboard) address; default: RAY_API_SERVER_ADDRESS, RAY_ADDRESS, http://127.0.0.1:8265"


def _jobs_call(fn, *args, **kwargs):
    """Cluster errors (unreachable head, unknown submission id) as one clear line, not a traceback."""
    from .config import ConfigError

    try:
        return fn(*args, **kwargs)
    except ConfigError as e:
        fail(str(e))
    except (ConnectionError, RuntimeError, ValueError) as e:
        fail(str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__, code=1)


@app.command()
def submit(
    spec_path: Path = typer.Argument(..., metavar="SPEC", help="job spec (YAML), checked here before it is sent"),
    address: Optional[str] = typer.Option(None, help=ADDRESS_HELP),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override a spec field: --set judge.model=/m"),
    env: Optional[list[str]] = typer.Option(None, "--env", help="pass NAME (from here) or NAME=VALUE to the job"),
    pip: Optional[list[str]] = typer.Option(None, "--pip", help="extra pip requirement for the job's runtime env"),
    ship: bool = typer.Option(
        True, "--ship/--no-ship", help="upload this unireward package (--no-ship: the cluster's image has it)"
    ),
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
        with storage_errors():
            data = _spec_data(spec_path, set_)
    except ConfigError as e:
        fail(str(e))
    sid = _jobs_call(
        jobs.submit,
        data,
        str(spec_path),
        address,
        sid=submission_id,
        env=env or [],
        ship_package=ship,
        pip=pip or [],
        entrypoint_num_cpus=entrypoint_num_cpus,
    )
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
        typer.echo(
            f"{r['submission_id'] or '-':52s} {r['status']:10s} {r['kind'] or '-':8s} {r['spec'] or r['entrypoint']}"
        )


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
    set_: Optional[list[str]] = typer.Option(
        None, "--set", help="override an application arg: --set max_batch_size=16"
    ),
) -> None:
    """Run the reward endpoint on the embedded Ray (`serve deploy serve/reward.yaml` on a cluster)."""
    quiet_libraries()
    import signal
    import time

    from .config import ConfigError
    from .serve import local

    try:
        cfg = local.read_config(config)
    except ConfigError as e:
        fail(str(e))
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
        fail(str(e))
    local.ensure_ray()
    # after ray.init (which installs its own SIGTERM handler) and before the endpoint answers:
    # a SIGTERM from then on (`kill`, a container stop) is a clean shutdown
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *a: stop.update(now=True))
    try:
        url = local.start(cfg, args)
    except (ConfigError, ValueError) as e:
        fail(str(e))
    except (RuntimeError, TimeoutError) as e:
        local.stop(None, shutdown=True)
        fail(str(e), code=1)
    typer.echo(f"reward endpoint ready at {url}  (docs: {url}/docs; Ctrl-C stops it)")
    try:
        while not stop["now"]:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    local.stop(shutdown=True)


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
    quiet_libraries()
    from .experiment import markdown, synergy

    r = synergy(
        workdir,
        prompts=prompts,
        eval_prompts=eval_prompts,
        steps=steps,
        size=size,
        lr=lr,
        seed=seed,
        say=lambda m: typer.echo(m, err=True),
    )
    typer.echo(markdown(r))
    typer.echo(f"written: {workdir}/synergy.json, synergy.md, synergy.png ({r['setup']['seconds']:.0f} s)")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
