"""The run directory: create or refuse, atomic writes, meta (versions, commit, seeds, device, timings)."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from superlens.errors import RunDirError


def prepare_run_dir(out: str | Path, force: bool = False, resume: bool = False) -> Path:
    """Create ``out``; refuse a non-empty one unless ``force`` (wipe) or ``resume`` (keep)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"run directory {out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if resume:
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
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        if self.out.exists():
            shutil.rmtree(self.out) if self.out.is_dir() else self.out.unlink()
        os.replace(self.tmp, self.out)


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
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
