"""Running the endpoint from a Serve config file on the embedded (or a given) Ray: what
`unireward serve`, the demo, the tests and the load benchmark use. ``serve deploy`` and KubeRay's
RayService (cluster/rayservice.yaml embeds it verbatim) read the same file on a cluster.

serve/reward.yaml is written for a cluster (all interfaces, bearer tokens, one GPU per replica). A
local run applies two local defaults on top, and says so: it binds to loopback unless a host is
given, and it gives replicas no more CPUs or GPUs than the local Ray has."""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

from ..config import ConfigError, ServeConfig
from ..io import storage

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "serve" / "reward.yaml"
DEPLOYMENT_OPTIONS = (
    "max_ongoing_requests",
    "max_queued_requests",
    "autoscaling_config",
    "num_replicas",
    "ray_actor_options",
    "graceful_shutdown_timeout_s",
    "health_check_period_s",
)


def read_config(path: str | Path | None = None) -> dict[str, Any]:
    path = Path(path) if path else DEFAULT_CONFIG
    data = storage.read_yaml(path, ConfigError, "Serve config")
    apps = (data or {}).get("applications") or []
    if not apps:
        raise ConfigError(f"{path}: no applications")
    return data


def app_and_options(
    config: dict[str, Any], args: dict[str, Any] | None = None, deployment: dict[str, Any] | None = None
) -> tuple[ServeConfig, dict[str, Any], dict[str, Any]]:
    """(ServeConfig, deployment options, http options) of the first application, with overrides."""
    app = config["applications"][0]
    merged = copy.deepcopy(app.get("args") or {})
    for k, v in (args or {}).items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = {**merged[k], **v}
        else:
            merged[k] = v
    http = dict(config.get("http_options") or {})
    merged.setdefault("host", http.get("host", "127.0.0.1"))
    merged.setdefault("port", http.get("port", 8000))
    from ..config import parse_config

    cfg = parse_config(merged, ServeConfig, "serve config args")
    opts: dict[str, Any] = {}
    actor: dict[str, Any] = {}  # ray_actor_options merge key by key, like args
    for d in [*(app.get("deployments") or []), deployment or {}]:
        opts.update({k: v for k, v in d.items() if k in DEPLOYMENT_OPTIONS})
        actor.update(d.get("ray_actor_options") or {})
    if actor:
        opts["ray_actor_options"] = actor
    if opts.get("autoscaling_config") is None:
        opts.pop("autoscaling_config", None)  # fixed num_replicas instead
    return cfg, opts, dict(host=cfg.host, port=cfg.port)


def ensure_ray() -> None:
    """Connects to Ray (RAY_ADDRESS) or starts the embedded one."""
    import ray

    if not ray.is_initialized():
        ray.init(include_dashboard=False, logging_level=logging.WARNING, ignore_reinit_error=True)


def local_options(
    config: dict[str, Any], args: dict[str, Any] | None, deployment: dict[str, Any] | None, available: dict[str, float]
) -> tuple[ServeConfig, dict[str, Any], dict[str, Any]]:
    """``app_and_options`` with the local defaults: loopback unless a host is given, and replicas
    that ask for more CPUs or GPUs than the local Ray has (``available``) get what there is (a
    replica waiting for a GPU that does not exist would never start)."""
    cfg, opts, http = app_and_options(config, {"host": "127.0.0.1", **(args or {})}, deployment)
    actor = dict(opts.get("ray_actor_options") or {})
    for key, resource in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
        have = available.get(resource, 0.0)
        if actor.get(key, 0) > have:
            log.warning(
                "the replicas ask for %g %s each, the local Ray has %g: using %g", actor[key], resource, have, have
            )
            actor[key] = have
    if actor:
        opts["ray_actor_options"] = actor
    return cfg, opts, http


def check(
    config: dict[str, Any], args: dict[str, Any] | None = None, deployment: dict[str, Any] | None = None
) -> ServeConfig:
    """What can be checked before Ray starts: the config's values, and that the judge checkpoint
    of a local run is on this machine."""
    cfg, _, _ = app_and_options(config, args, deployment)
    if not storage.is_remote(cfg.judge.model) and not Path(cfg.judge.model).exists():
        raise ConfigError(
            f"judge checkpoint {cfg.judge.model} not found on this machine: pass --model PATH "
            "(serve/reward.yaml names the path on the cluster's nodes)"
        )
    return cfg


def start(
    config: dict[str, Any] | None = None,
    args: dict[str, Any] | None = None,
    deployment: dict[str, Any] | None = None,
    name: str = "reward",
    wait_s: float = 180.0,
    log_level: str = "INFO",
) -> str:
    """Deploys the endpoint (with the local defaults) and returns its base URL once /readyz answers.
    ``log_level``: Serve's own logs and access logs (WARNING keeps a demo's output readable)."""
    import httpx
    import ray
    from ray import serve

    from .app import check_auth_config, make_deployment

    config = config or read_config()
    check(config, args, deployment)
    ensure_ray()
    cfg, opts, http = local_options(config, args, deployment, ray.cluster_resources())
    check_auth_config(cfg)
    logging_config = {"log_level": log_level, "enable_access_log": log_level in ("DEBUG", "INFO")}
    logging.getLogger("ray.serve").setLevel(log_level)  # this process's Serve client messages too
    serve.start(http_options=http, logging_config=logging_config)
    app = make_deployment(cfg).options(**opts).bind(cfg.model_dump_json())
    try:
        serve.run(
            app,
            name=name,
            route_prefix="/" if name == "reward" else f"/{name}",
            blocking=False,
            logging_config=logging_config,
        )
    except RuntimeError as e:  # the replicas could not be constructed (Serve has retried them)
        raise _start_failure(serve, name, str(e)) from None
    url = f"http://{'127.0.0.1' if cfg.host in ('0.0.0.0', '::') else cfg.host}:{cfg.port}"
    if name != "reward":
        url += f"/{name}"
    deadline = time.time() + wait_s
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        status = serve.status().applications.get(name)
        if status is not None and status.status in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise _start_failure(serve, name, status.message)
        time.sleep(0.5)
    raise TimeoutError(f"the endpoint at {url} did not become ready within {wait_s:.0f} s")


def _start_failure(serve, name: str, fallback: str) -> RuntimeError:
    """The reason a deployment failed (the replica's own exception, not Serve's summary); the
    failed application is deleted."""
    import re

    text = fallback
    app = serve.status().applications.get(name)
    if app is not None:
        text = "\n".join([app.message or ""] + [d.message or "" for d in app.deployments.values()])
    errors = re.findall(r"^\s*(?:[\w.]+\.)?(\w*(?:Error|Exception): .+)$", text, re.M)
    serve.delete(name)
    return RuntimeError(f"the endpoint failed to start: {errors[-1] if errors else fallback}")


def stop(name: str | None = "reward", shutdown: bool = False) -> None:
    from ray import serve

    if name:
        serve.delete(name)
    if shutdown:
        serve.shutdown()
