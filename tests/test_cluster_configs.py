"""The files under cluster/: valid YAML with what KubeRay and the cluster launcher require, one Ray
version everywhere, the RayService's Serve config equal to serve/reward.yaml, and entrypoints that
the CLI accepts with specs that validate."""

import copy
import json
import os
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from unireward.config import ConfigError, parse_spec
from unireward.serve import local

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
IMAGE_ROOT = "/app/"  # where cluster/Dockerfile puts the repository


def load(name):
    return yaml.safe_load((CLUSTER / name).read_text())


def manifests():
    return sorted(p.name for p in CLUSTER.glob("*.yaml") if p.name != "aws.yaml")


def test_every_manifest_is_a_kuberay_resource():
    names = manifests()
    assert {"raycluster.yaml", "rayservice.yaml", "rayjob-score.yaml", "rayjob-curate.yaml"} <= set(names)
    for name in names:
        doc = load(name)
        assert doc["apiVersion"] == "ray.io/v1", name
        assert doc["kind"] in ("RayCluster", "RayJob", "RayService"), name
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), name


def _check_cluster_spec(spec, where):
    assert spec["rayVersion"] == ray.__version__, f"{where}: rayVersion {spec['rayVersion']} != ray {ray.__version__}"
    head = spec["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict), where
    containers = head["template"]["spec"]["containers"]
    assert containers and all(c["name"] and c["image"] for c in containers), where
    for g in spec.get("workerGroupSpecs", []):
        assert g["groupName"] and isinstance(g["rayStartParams"], dict), where
        assert 0 <= g["minReplicas"] <= g.get("replicas", g["minReplicas"]) <= g["maxReplicas"], (where, g["groupName"])
        assert all(c["name"] and c["image"] for c in g["template"]["spec"]["containers"]), where
    return spec


def test_raycluster_autoscales_cpu_and_gpu_workers():
    spec = _check_cluster_spec(load("raycluster.yaml")["spec"], "raycluster.yaml")
    assert spec["enableInTreeAutoscaling"] is True
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    for g in groups.values():
        assert g["minReplicas"] < g["maxReplicas"]  # room to autoscale
    gpu_limits = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu_limits["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in groups["cpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]


def test_rayservice_embeds_serve_config_verbatim():
    doc = load("rayservice.yaml")
    _check_cluster_spec(doc["spec"]["rayClusterConfig"], "rayservice.yaml")
    embedded = yaml.safe_load(doc["spec"]["serveConfigV2"])
    assert embedded == yaml.safe_load((ROOT / "serve" / "reward.yaml").read_text()), (
        "cluster/rayservice.yaml's serveConfigV2 differs from serve/reward.yaml: copy the file in again"
    )
    cfg, opts, http = local.app_and_options(embedded)  # the same validation as a local run
    assert http["host"] == "0.0.0.0" and opts["ray_actor_options"]["num_gpus"] == 1
    assert embedded["applications"][0]["import_path"] == "unireward.serve.app:build_app"
    # the replicas' tokens come from a secret, as the endpoint requires off loopback
    worker = doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "unireward-api"}} in worker["envFrom"]
    assert cfg.tokens_env == "UNIREWARD_API_TOKENS"


def _entrypoint_spec(entrypoint):
    """The spec an entrypoint runs, as the CLI would build it (image paths mapped to this checkout)."""
    from typer.main import get_command

    from unireward.cli import _apply_overrides, app

    argv = shlex.split(entrypoint)
    assert argv[:2] == ["unireward", "run"], entrypoint
    cmd = get_command(app)
    ctx = cmd.make_context("unireward", argv[1:], resilient_parsing=False)  # the CLI accepts the arguments
    sub = cmd.get_command(ctx, "run")
    sub_ctx = sub.make_context("run", argv[2:], parent=ctx)
    spec_path = sub_ctx.params["spec_path"]
    assert str(spec_path).startswith(IMAGE_ROOT), f"{spec_path}: use the image's copy of the recipes under /app"
    local_path = ROOT / str(spec_path)[len(IMAGE_ROOT) :]
    assert local_path.exists(), f"{spec_path}: no such recipe in the repository"
    data = yaml.safe_load(local_path.read_text())
    return parse_spec(_apply_overrides(data, list(sub_ctx.params["set_"] or [])), str(local_path))


@pytest.mark.parametrize("name", ["rayjob-score.yaml", "rayjob-curate.yaml"])
def test_rayjob_entrypoints_run_valid_specs_on_gpus(name):
    doc = load(name)
    spec = doc["spec"]
    assert spec["clusterSelector"] == {"ray.io/cluster": load("raycluster.yaml")["metadata"]["name"]}
    assert spec["submissionMode"] in ("K8sJobMode", "HTTPMode", "SidecarMode")
    yaml.safe_load(spec["runtimeEnvYAML"])
    job = _entrypoint_spec(spec["entrypoint"])
    assert job.kind == name.removeprefix("rayjob-").removesuffix(".yaml")
    assert job.input.startswith("s3://") and job.output.startswith("s3://")
    r = job.resources
    assert r.gpus_per_actor == 1 and r.min_actors < r.max_actors  # an autoscaled pool of GPU judges


def test_entrypoint_check_can_fail():
    with pytest.raises(ConfigError, match="resources.max_actors"):
        _entrypoint_spec("unireward run /app/pipelines/score-items.yaml --set resources.max_actors=0")
    with pytest.raises(Exception):
        _entrypoint_spec("unireward run /app/pipelines/score-items.yaml --no-such-flag")


def test_cluster_launcher_config_is_valid_for_ray():
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    cfg = load("aws.yaml")
    jsonschema.validate(cfg, schema)
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    assert any(
        t["node_config"]["InstanceType"].startswith(("p", "g")) and t["max_workers"] > t["min_workers"]
        for n, t in types.items()
        if n != cfg["head_node_type"]
    )
    assert cfg["docker"]["image"].endswith(":0.1.0-gpu")
    broken = copy.deepcopy(cfg)
    broken["available_node_types"]["gpu_worker"]["max_wrokers"] = 8
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_dockerfile_builds_the_package_on_the_clusters_ray():
    text = (CLUSTER / "Dockerfile").read_text()
    base = re.search(r"^ARG BASE=(\S+)", text, re.M).group(1)
    assert base.startswith(f"rayproject/ray:{ray.__version__}-py"), base
    for src in re.findall(r"^COPY(?: --\S+)* (.+) \S+$", text, re.M):
        for path in src.split():
            assert (ROOT / path).exists(), f"Dockerfile copies {path}, which does not exist"
    assert "pip install" in text and "WORKDIR /app" in text
    images = {c["image"] for name in manifests() for c in _containers(load(name))}
    assert images == {"unireward:0.1.0-gpu"}


def _containers(doc):
    spec = doc["spec"].get("rayClusterConfig", doc["spec"]) if doc["kind"] != "RayJob" else None
    if spec is None:
        return []
    groups = [spec["headGroupSpec"]] + spec.get("workerGroupSpecs", [])
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_readme_documents_the_cluster_commands():
    readme = (ROOT / "README.md").read_text()
    assert "## Running on a cluster" in readme
    for needle in (
        "kubectl apply -f cluster/raycluster.yaml",
        "ray up cluster/aws.yaml",
        "unireward submit",
        "unireward jobs logs",
        "docker build -f cluster/Dockerfile",
    ):
        assert needle in readme, needle
    assert os.path.exists(ROOT / "cluster" / "README.md")
