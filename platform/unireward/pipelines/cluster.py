"""The Ray a job runs on, and what its workers need from the driver's environment."""

from __future__ import annotations

import logging
import os

from ..io import storage


def init_ray(log_to_driver: bool = True) -> None:
    """Connects to the cluster at RAY_ADDRESS, or starts the embedded local Ray; quiets Ray Data's
    own progress output (the drivers report progress themselves)."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address=os.environ.get("RAY_ADDRESS"),
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=log_to_driver,
            ignore_reinit_error=True,
        )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver reports progress itself (units done, rate, ETA)
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # "execution finished" lines: the driver reports


def worker_env(*extra: str) -> dict[str, str]:
    """The driver's storage settings (and ``extra`` variables, e.g. a served judge's token), for
    workers that may run on other nodes, or in a Ray cluster started before they were set."""
    names = storage.ENV_VARS + tuple(extra)
    return {k: os.environ[k] for k in names if k in os.environ}
