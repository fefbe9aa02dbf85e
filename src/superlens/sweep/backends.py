"""Where groups run: this process / a local process pool, or Ray tasks on a cluster.

A backend maps run_group over groups and calls ``done(group, result)`` as each finishes, so the engine
saves every finished group at once (nothing finished is lost on interruption or on a failed group).
A group that fails does not stop the others; after all have run, the failures are raised as one line
naming the group and its points.

Threads: each worker gets a core budget (cores // workers, at least 1; on Ray the task's num_cpus),
passed to the runner as options["thread_budget"] and recorded with the group's results.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, Callable

from superlens.errors import SuperlensError, one_line
from superlens.sweep.points import Group

Done = Callable[[Group, dict], None]
CONNECT_TIMEOUT_S = 3.0


class BackendError(SuperlensError):
    exit_code = 2


class GroupFailed(SuperlensError):
    """One or more groups failed; every other group's results were saved (a re-run skips them)."""

    exit_code = 1


def _one_line(e: BaseException) -> str:
    return one_line(e, bare_superlens=True)  # a SuperlensError already names its field or path


def _raise_failures(failures: list[tuple[Group, BaseException]], n_groups: int) -> None:
    if not failures:
        return
    g, e = failures[0]
    pts = ", ".join(str(p.index) for p in g.points)
    more = f" (and {len(failures) - 1} more group(s))" if len(failures) > 1 else ""
    err = GroupFailed(f"sweep group {g.gid} (point(s) {pts}) failed: {_one_line(e)}{more}; "
                      f"the other {n_groups - len(failures)} group(s) are saved, re-run to resume")
    if isinstance(e, SuperlensError):
        err.exit_code = e.exit_code
    raise err


def local_workers(n_groups: int, workers: int | None) -> int:
    """Default pool size: one worker per group, at most one per core."""
    cores = os.cpu_count() or 1
    return max(1, min(n_groups, workers if workers else cores))


def _group_call(study: str, g: Group, options: dict) -> dict:
    from superlens.sweep.runners import run_group

    return run_group(study, g, options)


def run_local(study: str, groups: list[Group], options: dict, done: Done, workers: int | None) -> None:
    workers = local_workers(len(groups), workers)
    cores = os.cpu_count() or 1
    opts = {**options, "thread_budget": max(1, cores // workers)}
    failures: list[tuple[Group, BaseException]] = []
    if workers <= 1:
        for g in groups:
            try:
                res = _group_call(study, g, opts)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:  # noqa: BLE001 - reported after the other groups ran
                failures.append((g, e))
                continue
            done(g, res)
        _raise_failures(failures, len(groups))
        return
    import multiprocessing as mp

    ex = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                             initializer=_worker_init, initargs=(os.getpid(),))
    try:
        futs = {ex.submit(_group_call, study, g, opts): g for g in groups}
        for f in as_completed(futs):
            try:
                res = f.result()
            except Exception as e:  # noqa: BLE001
                failures.append((futs[f], e))
                continue
            done(futs[f], res)
    except BaseException:
        # Ctrl-C, SIGTERM or a failed save: the workers' groups are lost anyway, so stop them now
        # instead of waiting for them (what the executor's own shutdown would do)
        _kill_pool(ex)
        raise
    ex.shutdown()
    _raise_failures(failures, len(groups))


def _kill_pool(ex: ProcessPoolExecutor) -> None:
    procs = list((getattr(ex, "_processes", None) or {}).values())
    for proc in procs:
        with contextlib.suppress(OSError, ValueError):
            proc.kill()
    ex.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        with contextlib.suppress(OSError, ValueError, AssertionError):
            proc.join(timeout=10)


def _worker_init(parent: int) -> None:
    """In each pool worker: die with the parent, even when it is SIGKILLed (which no handler
    sees). Linux: the kernel sends SIGKILL when the parent exits (PR_SET_PDEATHSIG); elsewhere, and
    as a fallback, a watchdog thread polls the parent PID. Ctrl-C is the parent's to handle: it
    stops the workers itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # tqdm's default write lock is a multiprocessing RLock: a named semaphore that a worker killed
    # on Ctrl-C never unlinks, so the resource tracker would print leak warnings after
    # "interrupted". A worker's bars share nothing with other processes: a thread lock does.
    with contextlib.suppress(ImportError):
        from tqdm import tqdm

        tqdm.set_lock(threading.RLock())
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            PR_SET_PDEATHSIG = 1
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                     name="superlens-parent-watchdog").start()


def _watch_parent(parent: int, every_s: float = 1.0) -> None:
    while True:
        time.sleep(every_s)
        if os.getppid() != parent:
            os._exit(1)


# --- Ray ----------------------------------------------------------------------------------------

def _quiet_ray_env() -> None:
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def _split_address(address: str) -> tuple[str, int]:
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BackendError(f"ray address {address}: expected host:port, ray://host:port or auto")
    return host.strip("[]"), int(port)


_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def probe_ray_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, in one line, unless a gRPC (HTTP/2) server answers at address: a Ray head's GCS or
    a Ray client server. ray.init on a dead or non-Ray endpoint waits long, floods the log and can
    abort the process, so it is never called before this passes."""
    host, port = _split_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(_H2_PREFACE)
            head = b""
            while len(head) < 9:
                chunk = s.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
    except OSError as e:
        raise BackendError(f"ray address {address}: unreachable ({_one_line(e)})") from None
    if len(head) < 9 or head[3] != 0x4:  # an HTTP/2 server's first frame is SETTINGS (type 4)
        raise BackendError(f"ray address {address}: reachable, but no Ray cluster answers there "
                           "(not a gRPC server)")


class RaySession:
    """A connection to Ray made before the sweep writes anything; close() shuts down what it started."""

    def __init__(self, address: str | None, workers: int | None, verbose: bool = False) -> None:
        _quiet_ray_env()
        self.verbose = verbose
        try:
            import ray
        except ImportError:
            raise BackendError("backend ray: the ray package is not installed "
                               "(pip install 'superlens[ray]')") from None
        self.ray = ray
        self.started_here = False
        if ray.is_initialized():
            return
        kw: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR,
                                  include_dashboard=False)
        if address:
            target = address
            if address == "auto":
                try:
                    from ray._private.services import canonicalize_bootstrap_address

                    target = canonicalize_bootstrap_address("auto")
                except Exception:  # noqa: BLE001 - ray.init below gives the message
                    target = "auto"
                if target is None:
                    raise BackendError("ray address auto: no running Ray cluster found (start one "
                                       "with `ray start --head`, or leave --address unset for a "
                                       "local instance)")
            if target != "auto":
                probe_ray_address(target)
            kw.pop("include_dashboard")
            try:
                with _stderr_to_log(verbose):
                    ray.init(address=address, **kw)
            except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
                raise BackendError(f"ray address {address}: cannot connect ({_one_line(e)})") from None
        else:
            with _stderr_to_log(verbose):
                ray.init(num_cpus=workers or os.cpu_count(), **kw)
        self.started_here = True

    def close(self) -> None:
        if self.started_here:
            with _stderr_to_log(self.verbose):
                self.ray.shutdown()
            self.started_here = False


@contextlib.contextmanager
def _stderr_to_log(verbose: bool):
    """Ray's C++ core writes its own log lines (logging.cc, client warnings) straight to file
    descriptor 2; unless ``verbose``, they go to a temporary file for the duration of the block
    and are dropped (a failure is still reported by the exception, in one line)."""
    if verbose:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as log:
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def _task_cpus(ray, n_groups: int) -> int:
    """CPUs per task: the cluster's CPUs shared out over the groups, at most one node's worth."""
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        per_node = min(int(n["Resources"].get("CPU", 1)) for n in nodes) if nodes else 1
        total = int(ray.cluster_resources().get("CPU", 1))
    except Exception:  # noqa: BLE001
        return 1
    return max(1, min(per_node, total // max(1, n_groups)))


def run_ray(study: str, groups: list[Group], options: dict, done: Done, session: RaySession) -> None:
    ray = session.ray
    import torch

    gpus = 1 if torch.cuda.is_available() else 0
    cpus = _task_cpus(ray, len(groups))
    opts = {**options, "thread_budget": cpus}
    task = ray.remote(num_cpus=cpus, num_gpus=gpus)(_group_call)
    pending = {task.remote(study, g, opts): g for g in groups}
    failures: list[tuple[Group, BaseException]] = []
    try:
        while pending:
            # with a timeout: a blocking wait in Ray's C++ core would hold off SIGTERM / Ctrl-C
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                g = pending.pop(ref)
                try:
                    res = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - RayTaskError wraps the task's own error
                    cause = getattr(e, "cause", None)
                    failures.append((g, cause if isinstance(cause, BaseException) else e))
                    continue
                done(g, res)
    except BaseException:
        # interrupted (or a failed save): no task outlives the sweep, also on a shared cluster
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
    _raise_failures(failures, len(groups))
