"""The run directory: create or refuse, atomic writes, meta (versions, commit, seeds, device, timings)."""
from __future__ import annotations

import json
import os
import contextlib
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from superlens.errors import RunDirError


RUN_MARKERS = ("config.json", "meta.json")


def check_resume_dir(out: str | Path, kind: str | None = None) -> bool:
    """Read-only check of a ``--resume`` target. False: ``out`` is missing or empty (nothing to
    resume); True: it is a superlens run directory (config.json and meta.json, of ``kind`` when
    given). Anything else non-empty is refused with a RunDirError naming the path."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"run directory {out}: exists and is not a directory")
    if not out.exists() or not any(out.iterdir()):
        return False
    for name in RUN_MARKERS:
        if not (out / name).is_file():
            raise RunDirError(f"run directory {out}: not a superlens run directory (no {name}); "
                              "refusing to resume into it")
    if kind is not None:
        meta = read_json(out / "meta.json")
        got = meta.get("kind") if isinstance(meta, dict) else None
        if got != kind:
            raise RunDirError(f"run directory {out}: meta.json says kind {got!r}, not {kind!r}; "
                              "refusing to resume into it")
    return True


def prepare_run_dir(out: str | Path, force: bool = False, resume: bool = False) -> Path:
    """Create ``out``; refuse a non-empty one unless ``force`` (wipe) or ``resume`` (keep; it must
    then be a superlens run directory, see check_resume_dir)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"run directory {out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if resume:
            check_resume_dir(out)
            return out
        if not force:
            raise RunDirError(f"run directory {out}: exists and is not empty (use --force to overwrite"
                              " or --resume to continue)")
        shutil.rmtree(out)
    elif resume:
        raise RunDirError(f"run directory {out}: nothing to resume (it does not exist or is empty)")
    out.mkdir(parents=True, exist_ok=True)
    return out


class StagedRunDir:
    """Build a run directory beside its final place and move it there only when complete, so an
    interrupted or failed run leaves nothing at ``out`` (and an old run survives until replaced).

        with StagedRunDir(out, force) as tmp:
            ...write into tmp...
    """

    def __init__(self, out: str | Path, force: bool = False):
        self.out = Path(out)
        self.force = force
        check_run_dir(self.out, force)
        self.tmp = self.out.parent / f".{self.out.name}.partial"

    def __enter__(self) -> Path:
        # SIGTERM (kill, a scheduler's stop) unwinds like Ctrl-C, so __exit__ removes the staging
        # folder; the previous handler is back once the block ends
        self._sigterm = sigterm_as_interrupt()
        self._sigterm.__enter__()
        try:
            if self.tmp.exists():
                shutil.rmtree(self.tmp)
            self.tmp.mkdir(parents=True)
        except BaseException:
            self._sigterm.__exit__(None, None, None)
            raise
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
                return
            if self.out.exists():
                shutil.rmtree(self.out) if self.out.is_dir() else self.out.unlink()
            os.replace(self.tmp, self.out)
        finally:
            self._sigterm.__exit__(None, None, None)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (so cleanup runs as after Ctrl-C); the
    previous handler is restored afterwards. A no-op outside the main thread (where Python cannot
    install signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def check_run_dir(out: Path, force: bool) -> None:
    """Refuse an existing non-empty ``out`` unless ``force``; creates nothing."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"run directory {out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not force:
        raise RunDirError(f"run directory {out}: exists and is not empty (use --force to overwrite)")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp makes 0600; a plain open() would give 0666 minus the umask (0644 by default)
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask can only set it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path}: not found") from None
    except (OSError, json.JSONDecodeError) as e:
        raise RunDirError(f"{path}: unreadable JSON ({e})") from None


def atomic_save_torch(path: str | Path, obj: Any) -> None:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def git_commit() -> str | None:
    """The commit of the superlens source tree, if it is a git checkout."""
    src = Path(__file__).resolve().parent
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True,
                           timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src,
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return r.stdout.strip() + ("-dirty" if dirty else "")


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("superlens", "torch", "torchvision", "numpy", "scipy", "scikit-learn", "openTSNE",
                "matplotlib", "pydantic", "safetensors"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def base_meta(device: str, threads: int, seeds: list[int], argv: list[str] | None = None) -> dict:
    return {
        "versions": versions(),
        "git_commit": git_commit(),
        "device": device,
        "torch_threads": threads,
        "seeds": seeds,
        "argv": argv if argv is not None else sys.argv,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "status": "running",
    }
