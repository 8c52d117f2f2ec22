"""Running the endpoint from a Serve config file on the embedded (or a given) Ray: what
`unireward serve`, the demo, the tests and the load benchmark use. ``serve deploy`` reads the same
file on a cluster."""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

from ..config import ConfigError, ServeConfig
from ..io import storage

DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "serve" / "reward.yaml"
DEPLOYMENT_OPTIONS = ("max_ongoing_requests", "max_queued_requests", "autoscaling_config", "num_replicas",
                      "ray_actor_options", "graceful_shutdown_timeout_s", "health_check_period_s")


def read_config(path: str | Path | None = None) -> dict[str, Any]:
    path = Path(path) if path else DEFAULT_CONFIG
    data = storage.read_yaml(path, ConfigError, "Serve config")
    apps = (data or {}).get("applications") or []
    if not apps:
        raise ConfigError(f"{path}: no applications")
    return data


def app_and_options(config: dict[str, Any], args: dict[str, Any] | None = None,
                    deployment: dict[str, Any] | None = None) -> tuple[ServeConfig, dict[str, Any], dict[str, Any]]:
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
    opts = {}
    for d in app.get("deployments") or []:
        opts.update({k: v for k, v in d.items() if k in DEPLOYMENT_OPTIONS})
    opts.update(deployment or {})
    if opts.get("autoscaling_config") is None:
        opts.pop("autoscaling_config", None)  # fixed num_replicas instead
    return cfg, opts, dict(host=cfg.host, port=cfg.port)


def ensure_ray() -> None:
    """Connects to Ray (RAY_ADDRESS) or starts the embedded one."""
    import ray

    if not ray.is_initialized():
        ray.init(include_dashboard=False, logging_level=logging.WARNING, ignore_reinit_error=True)


def start(config: dict[str, Any] | None = None, args: dict[str, Any] | None = None,
          deployment: dict[str, Any] | None = None, name: str = "reward", wait_s: float = 180.0) -> str:
    """Deploys the endpoint and returns its base URL once /readyz answers."""
    import httpx
    from ray import serve

    from .app import check_auth_config, make_deployment

    cfg, opts, http = app_and_options(config or read_config(), args, deployment)
    check_auth_config(cfg)
    ensure_ray()
    serve.start(http_options=http)
    app = make_deployment(cfg).options(**opts).bind(cfg.model_dump_json())
    serve.run(app, name=name, route_prefix="/" if name == "reward" else f"/{name}", blocking=False)
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
        time.sleep(0.5)
    raise TimeoutError(f"the endpoint at {url} did not become ready within {wait_s:.0f} s")


def stop(name: str | None = "reward", shutdown: bool = False) -> None:
    from ray import serve

    if name:
        serve.delete(name)
    if shutdown:
        serve.shutdown()
