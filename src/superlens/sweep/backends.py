"""Where groups run: this process / a local process pool, or Ray tasks on a cluster.

A backend maps run_group over groups and calls ``done(group, rows)`` as each finishes, so the engine
saves every finished group at once (nothing finished is lost on interruption).
"""
from __future__ import annotations

import os
import socket
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable

from superlens.errors import SuperlensError
from superlens.sweep.grid import Group

Done = Callable[[Group, list[dict]], None]


class BackendError(SuperlensError):
    exit_code = 2


def run_local(study: str, groups: list[Group], options: dict, done: Done, workers: int | None) -> None:
    from superlens.sweep.runners import run_group

    workers = workers or 1
    if workers <= 1 or len(groups) <= 1:
        for g in groups:
            done(g, run_group(study, g, options))
        return
    import multiprocessing as mp

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
        futs = {ex.submit(run_group, study, g, options): g for g in groups}
        for f in as_completed(futs):
            done(futs[f], f.result())


def _check_reachable(address: str) -> None:
    """Fail fast, in one line, on a cluster address nobody answers (ray.init would wait long)."""
    if address in ("auto", "local"):
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise BackendError(f"ray address {address}: expected host:port, ray://host:port or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except OSError as e:
        raise BackendError(f"ray address {address}: unreachable ({e})") from None


def run_ray(study: str, groups: list[Group], options: dict, done: Done, address: str | None,
            workers: int | None) -> None:
    try:
        import ray
    except ImportError:
        raise BackendError("backend ray: the ray package is not installed "
                           "(pip install 'superlens[ray]')") from None
    from superlens.sweep.runners import run_group

    started_here = False
    if not ray.is_initialized():
        if address:
            _check_reachable(address)
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError) as e:
                raise BackendError(f"ray address {address}: cannot connect ({e})") from None
        else:
            ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False,
                     log_to_driver=False)
        started_here = True
    try:
        import torch

        gpus = 1 if torch.cuda.is_available() else 0
        task = ray.remote(num_cpus=1, num_gpus=gpus)(run_group)
        pending = {task.remote(study, g, options): g for g in groups}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                done(pending.pop(ref), ray.get(ref))
    finally:
        if started_here:
            ray.shutdown()
