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

from superlens.errors import RunDirError, RunFault, os_error_line


RUN_MARKERS = ("config.json", "meta.json")


def check_out(out: str | Path, *, force: bool = False, inputs: tuple = ()) -> Path:
    """Refuse an ``--out`` that could name something that is not the run's own, before anything is
    written: '', '.', '..', the home folder, a filesystem root, the working directory or one of its
    parents, a folder holding one of ``inputs`` (spec, config, data, weights), a path under a file,
    and, with ``force``, an existing non-empty folder that is not a superlens run (no meta.json).
    Returns ``out`` as a Path; creates nothing."""
    text = str(out)
    if not text.strip():
        raise RunDirError("--out '': an empty path; name a new folder for the run")
    p = Path(text)
    full = p.expanduser().resolve()  # symlinks followed: a link to home is home
    own = f"--out {text}"
    if full == full.parent:
        raise RunDirError(f"{own}: is a filesystem root; name a folder for the run")
    if p.name in ("", ".", ".."):
        raise RunDirError(f"{own}: names the current folder or a parent, not a new run folder; "
                          "name a folder for the run (e.g. --out runs/toy1)")
    if full == Path.home().resolve():
        raise RunDirError(f"{own}: is the home folder; name a folder for the run")
    cwd = Path.cwd().resolve()
    if full == cwd or full in cwd.parents:
        raise RunDirError(f"{own}: is the current working directory or one of its parents; "
                          "name a folder for the run")
    for inp in inputs:
        if inp is None or not str(inp):
            continue
        ip = Path(inp).expanduser().resolve()
        if full == ip or full in ip.parents:
            raise RunDirError(f"{own}: holds the input {inp}; name another folder for the run")
    for a in [full, *full.parents]:  # the first existing ancestor must be a folder
        if a.exists() or a.is_symlink():
            if not a.is_dir():
                raise RunDirError(f"{own}: {a} exists and is not a directory")
            break
    if force and p.is_dir() and any(p.iterdir()) and not (p / "meta.json").is_file():
        raise RunDirError(f"{own}: exists and is not a superlens run directory (no meta.json); "
                          "--force only replaces a run, so refusing to touch it")
    return p


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
        from superlens.readers import read_meta

        got = read_meta(out).get("kind")
        if got != kind:
            raise RunDirError(f"run directory {out}: meta.json says kind {got!r}, not {kind!r}; "
                              "refusing to resume into it")
    return True


def prepare_run_dir(out: str | Path, force: bool = False, resume: bool = False) -> Path:
    """Create ``out``; refuse a non-empty one unless ``resume`` (keep; it must then be a superlens
    run directory, see check_resume_dir). ``force`` over a non-empty ``out`` is refused here: a
    run is replaced only by swapping in a complete one (open_run_dir, StagedRunDir)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"run directory {out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()):
        if resume:
            check_resume_dir(out)
            return out
        raise RunDirError(f"run directory {out}: {existing_run_hint(out, 'the same command with --resume')}")
    elif resume:
        raise RunDirError(f"run directory {out}: nothing to resume (it does not exist or is empty)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _mkdirs(d: Path) -> list[Path]:
    """mkdir -p ``d``; returns the folders it created, outermost first (removed again if unused)."""
    made = []
    for a in reversed([d, *d.parents]):
        if not a.exists():
            try:
                a.mkdir()
            except FileExistsError:
                continue
            made.append(a)
    return made


def _rmdirs(made: list[Path]) -> None:
    for a in reversed(made):
        try:
            a.rmdir()  # only when empty: a finished run keeps its parents
        except OSError:
            break


class RunLock:
    """One writer per run directory: an exclusive flock on ``.NAME.lock`` beside ``out`` (beside,
    because ``out`` itself may not exist yet or be swapped), held for the whole run and released by
    the kernel when the process dies. A second process gets one line naming the holder's PID. The
    lock file is removed on release; parents made for it are removed again when left empty."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.path = self.out.parent / f".{self.out.name}.lock"
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # not POSIX (Windows): no OS lock to take; runs are not guarded
            self.made = []
            return self
        self.made = _mkdirs(self.path.parent)
        try:
            while True:
                try:
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                except OSError as e:  # name the folder the run goes in, not our lock file
                    raise OSError(e.errno, e.strerror, str(self.path.parent)) from None
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
                    os.close(fd)
                    raise RunDirError(f"run directory {self.out}: in use by another superlens "
                                      f"process (PID {holder}); wait for it or use another --out") from None
                except BaseException:
                    os.close(fd)
                    raise
                # the previous holder may have unlinked the file between our open and flock: then
                # this lock guards nothing, so take the one at the path now
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self.fd = fd
            _recover(self.out)
        except BaseException:
            _rmdirs(self.made)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()  # while still held: no one can lock the old file in between
            os.close(self.fd)
            self.fd = None
        _rmdirs(self.made)


def _staging_dir(out: Path, tag: str) -> Path:
    return out.parent / f".{out.name}.{tag}-{os.getpid()}"


def _recover(out: Path) -> None:
    """Under the run's lock: a process killed inside swap_in may have left the old run renamed
    aside (``.NAME.old-PID``) with nothing at ``out``: put it back; if the swap had finished,
    the leftover is the replaced run: remove it. Staging folders of killed processes go too."""
    _clear_stale(out)
    for d in sorted(out.parent.glob(f".{out.name}.old-*")):
        if not d.is_dir():
            continue
        if not out.exists():
            os.rename(d, out)
        else:
            shutil.rmtree(d, ignore_errors=True)


def _clear_stale(out: Path) -> None:
    """Under the run's lock, staging folders left beside ``out`` by a killed process are stale."""
    for d in out.parent.glob(f".{out.name}.partial-*"):
        if d.is_dir():
            shutil.rmtree(d, ignore_errors=True)


def swap_in(tmp: Path, out: Path) -> None:
    """Move the complete run ``tmp`` to ``out``. An existing run is renamed aside first and
    removed only after the new one is in place; if that fails, the old one is put back."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        os.replace(tmp, out)  # rename(2) replaces an empty folder atomically
        return
    old = _staging_dir(out, "old")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _fault(e: OSError, kept: str, where: Path | None = None) -> RunFault:
    """One line for an OS error mid-run; a failed write(2) names no file, so name the run's."""
    if e.filename is None and where is not None:
        e = OSError(e.errno, e.strerror, f"writing {where}")
    return RunFault(f"{os_error_line(e)}; {kept}")


class StagedRunDir:
    """Build a run directory beside its final place and move it there only when complete, so an
    interrupted or failed run leaves nothing at ``out`` (and an old run survives until replaced).
    The run's lock (RunLock) is held throughout unless ``lock=False`` (the caller holds it).

        with StagedRunDir(out, force) as tmp:
            ...write into tmp...
    """

    def __init__(self, out: str | Path, force: bool = False, *, lock: bool = True,
                 inputs: tuple = ()):
        self.out = check_out(out, force=force, inputs=inputs)
        self.force = force
        check_run_dir(self.out, force)
        self.tmp = _staging_dir(self.out, "partial")
        self._lock = RunLock(self.out) if lock else None

    def __enter__(self) -> Path:
        # SIGTERM (kill, a scheduler's stop) unwinds like Ctrl-C, so __exit__ removes the staging
        # folder; the previous handler is back once the block ends
        self._sigterm = sigterm_as_interrupt()
        self._sigterm.__enter__()
        try:
            if self._lock is not None:
                self._lock.__enter__()
            check_run_dir(self.out, self.force)  # again, now that no one else can write it
            self.tmp.mkdir()
        except BaseException:
            if self._lock is not None:
                self._lock.__exit__(None, None, None)
            self._sigterm.__exit__(None, None, None)
            raise
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        kept = (f"the previous run in {self.out} is intact" if self.out.exists()
                else f"nothing was left at {self.out}")
        try:
            if exc_type is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
                if isinstance(exc, OSError):
                    raise _fault(exc, kept, self.out) from None
                return
            try:
                swap_in(self.tmp, self.out)
            except OSError as e:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise _fault(e, kept) from None
        finally:
            if self._lock is not None:
                self._lock.__exit__(None, None, None)
            self._sigterm.__exit__(None, None, None)


@contextlib.contextmanager
def open_run_dir(out: str | Path, *, force: bool = False) -> Iterator[Path]:
    """The folder a resumable run (active, sweep) writes, under the run's lock (the caller holds
    it): ``out`` itself, created when missing, so an interrupted run stays there to resume; or,
    when ``force`` replaces an existing run, a staging folder swapped in only when the block
    completes (the old run survives any failure)."""
    out = Path(out)
    if force and out.is_dir() and any(out.iterdir()):
        with StagedRunDir(out, force=True, lock=False) as tmp:
            yield tmp
        return
    made = _mkdirs(out)
    try:
        yield out
    except BaseException as e:
        if made and not any(out.iterdir()):
            _rmdirs(made)
        if isinstance(e, OSError):
            raise _fault(e, f"what had finished in {out} is kept (rerun to resume)", out) from None
        raise


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


def check_run_dir(out: Path, force: bool, resume_cmd: str | None = None) -> None:
    """Refuse an existing non-empty ``out`` unless ``force``; creates nothing. The message says
    what is there and names the command that works (existing_run_hint)."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"run directory {out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not force:
        raise RunDirError(f"run directory {out}: {existing_run_hint(out, resume_cmd)}")


def existing_run_hint(out: Path, resume_cmd: str | None = None) -> str:
    """What a non-empty ``out`` holds and what to do: a folder that is not a run -> another --out
    (--force only replaces runs); an unfinished resumable run -> ``resume_cmd`` (--force would
    discard its progress); any other run -> another --out or --force."""
    if not (out / "meta.json").is_file():
        return ("exists and is not a superlens run directory (no meta.json); choose another --out "
                "(superlens never writes into a folder it did not make)")
    try:
        status = json.loads((out / "meta.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        status = None
    if resume_cmd and status != "complete":
        return (f"exists and holds an unfinished run (status {status!r}); continue it with `{resume_cmd}`, or "
                "choose another --out (--force would start over and discard what it finished)")
    what = "a finished run" if status == "complete" else "a run"
    return (f"exists and holds {what}; choose another --out, or pass --force to replace it (the new run is "
            "built beside it and swapped in only when complete)")


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
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename is None:  # a failed write(2) (full disk) names no file: name the target
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
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
    """Parsed JSON; missing or not JSON -> RunDirError (shape checks: superlens.readers)."""
    from superlens.readers import read_json_file

    return read_json_file(path)


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


def page_meta(meta: dict, status: str | None) -> dict:
    """The meta a report page shows. A run's last step writes report.html with status "complete"
    and only then sets meta.json to it (a run whose page failed is not complete), so the page is
    drawn from a meta that still says "running": status overrides it on the page alone."""
    return meta if status is None else {**meta, "status": status}


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
