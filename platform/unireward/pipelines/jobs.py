"""Submitting specs to a Ray cluster through the Ray Jobs SDK, and the job lifecycle (list, status,
logs, stop) behind ``unireward submit`` and ``unireward jobs``.

A submission ships a working directory holding the validated spec (overrides applied) as
``spec.yaml``, the unireward package itself (``py_modules``; ``ship_package=False`` when the cluster's
image has it installed), and the environment variables the job needs (storage credentials, a served
judge's token, anything named with ``--env``). The entrypoint is ``python -m unireward.cli run
spec.yaml``: the same command, the same spec and the same code as a local run.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from .. import __version__
from ..config import ConfigError, parse_spec
from ..io import storage

PACKAGE_DIR = Path(__file__).resolve().parents[1]
DEFAULT_ADDRESS = "http://127.0.0.1:8265"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def address(explicit: str | None = None) -> str:
    """The Jobs API address, as Ray's own CLI resolves it: the flag, RAY_API_SERVER_ADDRESS,
    RAY_ADDRESS when it is an http(s) URL, else the local head's dashboard."""
    if explicit:
        return explicit
    for name in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS"):
        value = os.environ.get(name, "")
        if value.startswith(("http://", "https://")):
            return value
    return DEFAULT_ADDRESS


def client(addr: str | None = None):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address(addr))
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ConnectionError(f"cannot reach the Ray Jobs API at {address(addr)}: {e}") from None


def _env_vars(spec: Any, env: Iterable[str]) -> dict[str, str]:
    names = list(storage.ENV_VARS)
    if getattr(spec.judge, "endpoint", None):
        names.append(spec.judge.token_env)
    out = {k: os.environ[k] for k in names if k in os.environ}
    for e in env:
        if "=" in e:
            k, v = e.split("=", 1)
        elif e in os.environ:
            k, v = e, os.environ[e]
        else:
            raise ConfigError(f"--env {e}: not set here; pass NAME=VALUE or export {e} first")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
            raise ConfigError(f"--env {e}: {k!r} is not an environment variable name")
        out[k] = v
    return out


def submission_id(spec_name: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", spec_name.lower()).strip("-")[:40] or "job"
    return f"unireward-{slug}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def prepare(
    data: dict[str, Any], source: str, *, env: Iterable[str] = (), ship_package: bool = True, pip: Iterable[str] = ()
) -> dict[str, Any]:
    """Validates the spec and builds the submission: entrypoint, runtime_env, metadata. The spec is
    written, overrides applied, to ``spec.yaml`` in a new temporary folder (the job's working
    directory, ``workdir``; the caller removes it once it is uploaded)."""
    spec = parse_spec(data, source)
    workdir = Path(tempfile.mkdtemp(prefix="unireward-submit-"))
    (workdir / "spec.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    runtime_env: dict[str, Any] = {"working_dir": str(workdir), "env_vars": _env_vars(spec, env)}
    if ship_package:
        runtime_env["py_modules"] = [str(PACKAGE_DIR)]
    if pip:
        runtime_env["pip"] = list(pip)
    return dict(
        entrypoint="python -m unireward.cli run spec.yaml",
        runtime_env=runtime_env,
        metadata={
            "unireward_spec": spec.name,
            "unireward_kind": spec.kind,
            "unireward_version": __version__,
            "source": os.path.basename(source),
        },
        spec=spec,
        workdir=workdir,
    )


def submit(
    data: dict[str, Any],
    source: str,
    addr: str | None = None,
    *,
    sid: str | None = None,
    env: Iterable[str] = (),
    ship_package: bool = True,
    pip: Iterable[str] = (),
    entrypoint_num_cpus: float | None = None,
) -> str:
    """Submits a spec; returns the submission id."""
    job = prepare(data, source, env=env, ship_package=ship_package, pip=pip)
    try:
        c = client(addr)
        return c.submit_job(
            entrypoint=job["entrypoint"],
            runtime_env=job["runtime_env"],
            submission_id=sid or submission_id(job["spec"].name),
            metadata=job["metadata"],
            entrypoint_num_cpus=entrypoint_num_cpus,
        )
    finally:
        shutil.rmtree(job["workdir"], ignore_errors=True)  # uploaded by then


def _status(value: Any) -> str:
    return str(getattr(value, "value", value))


def list_jobs(addr: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for j in client(addr).list_jobs():
        meta = j.metadata or {}
        rows.append(
            dict(
                submission_id=j.submission_id,
                status=_status(j.status),
                spec=meta.get("unireward_spec", ""),
                kind=meta.get("unireward_kind", ""),
                start_time=j.start_time,
                end_time=j.end_time,
                message=j.message or "",
                entrypoint=j.entrypoint,
            )
        )
    return sorted(rows, key=lambda r: r["start_time"] or 0, reverse=True)


def status(sid: str, addr: str | None = None) -> dict[str, Any]:
    info = client(addr).get_job_info(sid)
    return dict(
        submission_id=sid,
        status=_status(info.status),
        message=info.message or "",
        start_time=info.start_time,
        end_time=info.end_time,
        metadata=info.metadata or {},
        entrypoint=info.entrypoint,
    )


def logs(sid: str, addr: str | None = None) -> str:
    return client(addr).get_job_logs(sid)


def follow(sid: str, addr: str | None = None) -> Iterator[str]:
    """The job's log as it is written, until the job ends."""
    import asyncio

    c = client(addr)
    loop = asyncio.new_event_loop()
    agen = c.tail_job_logs(sid)
    try:
        while True:
            try:
                yield loop.run_until_complete(agen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(agen.aclose())
        loop.close()


def _poll(c: Any, sid: str, timeout_s: float | None, poll_s: float) -> tuple[str, bool]:
    """(status, ended): polls one client until the job ends or ``timeout_s`` passes."""
    deadline = time.time() + timeout_s if timeout_s else None
    while True:
        st = _status(c.get_job_status(sid))
        if st in TERMINAL:
            return st, True
        if deadline and time.time() > deadline:
            return st, False
        time.sleep(poll_s)


def stop(sid: str, addr: str | None = None, wait_s: float = 60.0) -> str:
    """Asks the job to stop and waits (up to ``wait_s``) until it has; returns its status."""
    c = client(addr)
    c.stop_job(sid)
    return _poll(c, sid, wait_s, 0.5)[0]


def wait(sid: str, addr: str | None = None, timeout_s: float | None = None, poll_s: float = 1.0) -> str:
    st, ended = _poll(client(addr), sid, timeout_s, poll_s)
    if not ended:
        raise TimeoutError(f"job {sid} still {st} after {timeout_s:.0f} s")
    return st
