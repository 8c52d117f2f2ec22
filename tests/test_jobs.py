"""Job submission on a real local multi-node Ray cluster: `ray start --head` plus a second node
started with `ray start --address` (on this machine, with its own custom resource), with Ray's
token authentication on. Jobs go through the `unireward` CLI (submit, jobs list/status/logs/stop),
outputs are checked on disk, a running job is stopped and resumed, an actor pool grows from its
minimum to its maximum on the second node, and the cluster is shut down cleanly afterwards."""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from unireward.synth.world import generate_world

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_pids(marker: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if marker in (p / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


class Cluster:
    def __init__(self, root: Path):
        self.root = root
        self.gcs, self.dash = _port(), _port()
        self.address = f"http://127.0.0.1:{self.dash}"
        self.env = dict(
            os.environ,
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN=secrets.token_hex(32),
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            PYTHONUNBUFFERED="1",
        )
        for k in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
            self.env.pop(k, None)
        self.procs: list[subprocess.Popen] = []

    def start_node(self, *args: str, log: str) -> None:
        out = open(self.root / log, "w")
        self.procs.append(
            subprocess.Popen(
                [
                    str(BIN / "ray"),
                    "start",
                    "--block",
                    "--num-cpus=2",
                    f"--dashboard-agent-listen-port={_port()}",
                    *args,
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def cli(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run(
            [str(BIN / "unireward"), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check:
            assert r.returncode == 0, (
                f"unireward {' '.join(args)} -> {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
            )
        return r

    def alive_nodes(self) -> int:
        code = (
            "import ray; ray.init(address='auto', logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
        )
        r = subprocess.run(
            [sys.executable, "-c", code],
            env=dict(self.env, RAY_ADDRESS=f"127.0.0.1:{self.gcs}"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        return int(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 and r.stdout.strip() else 0

    def wait_for(self, what, check, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if check():
                return
            time.sleep(1)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in self.root.glob("*.log"))
        raise TimeoutError(f"{what} within {timeout:.0f} s\n{logs}")

    def stop(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + 30
        while time.time() < deadline and _cluster_pids(str(self.root)):
            time.sleep(0.5)
        for pid in _cluster_pids(str(self.root)):  # whatever ignored SIGTERM
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.procs:
            p.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster():
    root = Path(tempfile.mkdtemp(prefix="urc-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    c = Cluster(root)
    try:
        c.start_node(
            "--head",
            f"--port={c.gcs}",
            f"--dashboard-port={c.dash}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            f"--ray-client-server-port={_port()}",
            f"--temp-dir={root / 'ray'}",
            '--resources={"head_node": 1}',
            log="head.log",
        )
        c.wait_for(
            "the head's Jobs API", lambda: c.cli("jobs", "list", "--address", c.address, check=False).returncode == 0
        )
        c.start_node(f"--address=127.0.0.1:{c.gcs}", '--resources={"judge_node": 2}', log="worker.log")
        c.wait_for("two alive nodes", lambda: c.alive_nodes() == 2)
        yield c
    finally:
        c.stop()
        left = _cluster_pids(str(root))
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"cluster processes left running: {left}"


def _spec(tmp_path: Path, name: str, **fields) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(dict(kind="score", name=name, max_error_fraction=0.5, **fields)))
    return path


def test_submit_follow_list_status_logs(cluster, tiny_judge_dir, world, tmp_path):
    out = tmp_path / "scores"
    spec = _spec(
        tmp_path,
        "cluster-score",
        input=world.items["image_generation"],
        output=str(out),
        judge=dict(model=str(tiny_judge_dir), method="logits"),
        resources=dict(batch_size=4, cpus_per_actor=1, decode_cpus=1),
    )
    r = cluster.cli("submit", str(spec), "--address", cluster.address, "--follow", "--set", "judge.swap=true")
    sid = r.stdout.splitlines()[0].strip()
    assert re.fullmatch(r"unireward-cluster-score-\d{8}-\d{6}-[0-9a-f]{4}", sid), r.stdout[:500]
    assert "SUCCEEDED" in r.stderr
    n_items = pq.read_metadata(world.items["image_generation"]).num_rows
    assert f"{n_items}/{n_items} (100%)" in r.stdout  # the job's progress, streamed by --follow
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["run"]["processed"] == n_items and summary["run"]["judge_actors"] == 1
    assert summary["kind"] == "score"

    rows = json.loads(cluster.cli("jobs", "list", "--address", cluster.address, "--json").stdout)
    mine = next(j for j in rows if j["submission_id"] == sid)
    assert mine["status"] == "SUCCEEDED" and mine["kind"] == "score" and mine["spec"] == "cluster-score"
    table = cluster.cli("jobs", "list", "--address", cluster.address).stdout
    assert sid in table and "SUCCEEDED" in table
    status = json.loads(cluster.cli("jobs", "status", sid, "--address", cluster.address).stdout)
    assert status["status"] == "SUCCEEDED" and status["metadata"]["unireward_spec"] == "cluster-score"
    assert status["entrypoint"] == "python -m unireward.cli run spec.yaml"
    logs = cluster.cli("jobs", "logs", sid, "--address", cluster.address).stdout
    assert f'"processed": {n_items}' in logs  # the job's own summary, printed by `unireward run`


def test_errors_are_one_clear_line(cluster, tmp_path):
    before = len(json.loads(cluster.cli("jobs", "list", "--address", cluster.address, "--json").stdout))
    bad = _spec(
        tmp_path,
        "bad",
        input="x.parquet",
        output=str(tmp_path / "o"),
        judge=dict(model="m"),
        resources=dict(min_actors=3, max_actors=2),
    )
    r = cluster.cli("submit", str(bad), "--address", cluster.address, check=False)
    assert r.returncode == 2 and "max_actors (2) must be >= min_actors (3)" in r.stderr
    r = cluster.cli("submit", str(bad), "--address", cluster.address, "--env", "NOT_SET_ANYWHERE_42", check=False)
    assert r.returncode == 2
    after = len(json.loads(cluster.cli("jobs", "list", "--address", cluster.address, "--json").stdout))
    assert after == before  # nothing was submitted
    r = cluster.cli("jobs", "status", "no-such-job", "--address", cluster.address, check=False)
    assert r.returncode == 1 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    r = cluster.cli("jobs", "list", "--address", f"http://127.0.0.1:{_port()}", check=False)
    assert r.returncode == 1 and "cannot reach the Ray Jobs API" in r.stderr


@pytest.fixture(scope="module")
def big_world(tmp_path_factory):
    return generate_world(str(tmp_path_factory.mktemp("big-world")), n=40, seed=1, tasks=("image_generation",))


def test_stop_a_running_job_then_resume_it(cluster, tiny_judge_dir, big_world, tmp_path):
    out = tmp_path / "scores"
    # generate method and batches of 2: long enough to be stopped while it runs
    spec = _spec(
        tmp_path,
        "stoppable",
        input=big_world.items["image_generation"],
        output=str(out),
        judge=dict(model=str(tiny_judge_dir), method="generate", max_new_tokens=16),
        resources=dict(batch_size=2, cpus_per_actor=1, decode_cpus=1, decode_batch_size=2),
    )
    sid = cluster.cli("submit", str(spec), "--address", cluster.address).stdout.splitlines()[0].strip()

    def progressed():
        return re.search(r"\] \d+/240", cluster.cli("jobs", "logs", sid, "--address", cluster.address).stdout)

    cluster.wait_for("the job's first committed batches", progressed, timeout=240)
    r = cluster.cli("jobs", "stop", sid, "--address", cluster.address)
    assert r.stdout.strip() == f"job {sid}: STOPPED"
    assert json.loads(cluster.cli("jobs", "status", sid, "--address", cluster.address).stdout)["status"] == "STOPPED"
    assert not (out / "report" / "summary.json").exists()  # it did not finish

    # the same spec again: committed items are not judged twice
    r = cluster.cli("submit", str(spec), "--address", cluster.address, "--wait", timeout=600)
    run = json.loads((out / "report" / "summary.json").read_text())["run"]
    assert run["resumed"] is True and run["already_done"] > 0
    assert run["already_done"] + run["processed"] == run["total"] == 240


def test_judge_pool_grows_from_min_to_max_on_the_second_node(cluster, tiny_judge_dir, big_world, tmp_path):
    out = tmp_path / "scores"
    spec = _spec(
        tmp_path,
        "autoscaled",
        input=big_world.items["image_generation"],
        output=str(out),
        judge=dict(model=str(tiny_judge_dir), method="generate", max_new_tokens=16),
        resources=dict(
            min_actors=1,
            max_actors=2,
            cpus_per_actor=1,
            custom_resources={"judge_node": 1},
            batch_size=2,
            decode_cpus=1,
            decode_batch_size=2,
        ),
    )
    cluster.cli("submit", str(spec), "--address", cluster.address, "--wait", timeout=600)
    run = json.loads((out / "report" / "summary.json").read_text())["run"]
    # started with one actor; under the backlog Ray Data added the second, which judged too. Both
    # ran where `judge_node` is: the second node only
    assert run["judge_actors"] == 2 and run["judge_nodes"] == 1
    assert len(run["units_per_actor"]) == 2 and min(run["units_per_actor"]) > 0
    assert sum(run["units_per_actor"]) == run["processed"] == 240
