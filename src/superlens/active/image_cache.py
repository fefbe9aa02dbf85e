"""Decode image files once and cache the uint8 tensors: the one path every image source takes
(image-folder trees, Tiny ImageNet).

    pending = []
    ds = decoded_dataset(files, name="pets", cache_dir=None, pending=pending)  # decode or read
    for write in pending: write()        # the cache is written only once every check has passed

Decoding runs in worker processes (superlens.active.decode, numpy and PIL only): PIL holds the GIL
for much of a small JPEG's decode, so threads do not scale and processes do.

The cache rule, stated once:
- A cache lives in the user's cache folder (``cache_dir``; default $XDG_CACHE_HOME/superlens or
  ~/.cache/superlens), never inside the data folder nor the run directory.
- Its file name is a key hashed from the source kind, the data folder's absolute path, every file's
  path, size and mtime, and the resize. A changed folder (a file added, removed or rewritten) has
  another key, so it is decoded afresh; a stale cache is never read.
- A file under the right key that is not that folder's cache (foreign, corrupt, other content) is
  refused with one line naming it: it is never used, overwritten or deleted (delete it by hand to
  decode again).
- A cache folder given explicitly must be writable (checked before anything is decoded); when the
  default one is not, the run goes on with one notice line and decodes again next time.
"""
from __future__ import annotations

import hashlib
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from superlens.active.dataset import ImageDataset, channel_stats
from superlens.errors import ConfigError, DataError
from superlens.errors import one_line as _one_line

CACHE_FORMAT = 3


@dataclass
class ImageFiles:
    """The files of one image source, listed but not decoded.

    kind: "imagefolder" or "tinyimagenet" (the cache file's prefix); root: the data folder (errors
    and the cache key name it); classes: class names, label k = classes[k]; train / test: absolute
    file paths with their labels. expected: the (width, height) every image must have when not
    resized (None: the first training image's); size_hint: what to do about an image of another
    size (ends the error line)."""

    kind: str
    root: Path
    classes: list[str]
    train: list[str]
    train_y: list[int]
    test: list[str]
    test_y: list[int]
    test_split: str = "test"
    expected: tuple[int, int] | None = None
    size_hint: str = ""
    digest: str = field(default="", init=False)

    def __post_init__(self) -> None:
        self.digest = files_digest(self.root, self.train + self.test)


def default_cache_dir() -> Path:
    """The user's cache folder for decoded images: $XDG_CACHE_HOME/superlens, else ~/.cache/superlens."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "superlens"


def files_digest(root: Path, paths: list[str]) -> str:
    """sha256 hex of every file's (path relative to root, size, mtime_ns), in order: a changed,
    added or removed file changes it. Names that are not UTF-8 are hashed by their bytes; a listed
    file that is missing hashes as "missing" (the decode names it)."""
    h = hashlib.sha256()
    for p in paths:
        rel = os.path.relpath(p, root)
        try:
            st = os.stat(p)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = "missing", ""
        h.update(os.fsencode(rel) + f"\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


def cache_path(files: ImageFiles, resize: int | None, cache_dir: str | os.PathLike | None) -> Path:
    """<cache_dir>/<kind>-<key>.pt, the key hashed from the folder's absolute path, its files'
    digest, the resize and the cache format."""
    key = hashlib.sha256(os.fsencode(str(files.root.resolve()))
                         + f"|{files.digest}|resize={resize}|v{CACHE_FORMAT}".encode())
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return base / f"{files.kind}-{key.hexdigest()[:24]}.pt"


def check_cache_dir(cache_dir: str | os.PathLike | None, data_dir: str | os.PathLike | None,
                    out: str | os.PathLike | None = None) -> None:
    """Refuse a cache folder that would write where it must not, before anything is decoded: '',
    inside (or equal to) the data folder or the run directory ``out``, under a file, or not
    writable. cache_dir None (the default folder) is not checked: an unwritable one costs a notice."""
    if cache_dir is None:
        return
    text = str(cache_dir)
    if not text.strip():
        raise ConfigError("cache_dir = '': an empty path; name a folder for decoded-image caches "
                          "or leave it unset (the user's cache folder)")
    c = Path(text).expanduser().resolve()
    for what, d in (("the data folder", data_dir), ("the run directory", out)):
        if d is None or not str(d).strip():
            continue
        d = Path(d).expanduser().resolve()
        if c == d or d in c.parents:
            raise ConfigError(f"cache_dir = {text!r}: inside {what} {d}; the cache must live "
                              "elsewhere (leave it unset for the user's cache folder)")
    for a in [c, *c.parents]:  # the first existing ancestor must be a writable folder
        if a.exists():
            if not a.is_dir():
                raise ConfigError(f"cache_dir = {text!r}: {a} is not a directory")
            if not os.access(a, os.W_OK | os.X_OK):
                raise ConfigError(f"cache_dir = {text!r}: {a} is not writable")
            return


def decoded_dataset(files: ImageFiles, name: str, *, resize: int | None = None,
                    cache_dir: str | os.PathLike | None = None, progress: bool = True,
                    workers: int | None = None, pending: list[Callable[[], None]] | None = None
                    ) -> ImageDataset:
    """The ImageDataset of ``files``: read from its cache, or decoded (every image resized to
    resize x resize when given, else each must have files.expected or the first image's size).

    pending: when a list, the cache write of a fresh decode is appended to it (a callable) instead
    of done, so a caller that still has checks to run writes nothing until they pass."""
    path = cache_path(files, resize, cache_dir)
    if path.is_file():
        c = _read_cache(path, files, resize)
    else:
        c = _decode(files, resize, progress, workers)
        write = lambda: _write_cache(path, c, explicit=cache_dir is not None)  # noqa: E731
        pending.append(write) if pending is not None else write()
    return ImageDataset(name, c["train_x"], c["train_y"], c["test_x"], c["test_y"],
                        list(files.classes), tuple(float(v) for v in c["mean"]),
                        tuple(float(v) for v in c["std"]))


def _decode(files: ImageFiles, resize: int | None, progress: bool, workers: int | None) -> dict:
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    expected = files.expected
    if resize is None and expected is None:
        expected = _first_size(files.train[0], files.root)
        if expected[0] != expected[1]:
            rel = os.path.relpath(files.train[0], files.root)
            raise DataError(f"data folder {files.root}: {rel} is {expected[0]}x{expected[1]}, not "
                            f"square; {files.size_hint}")
    label = files.root.name or files.kind
    train_x = decode_files(files, files.train, resize, expected, f"decoding {label}/train", progress,
                           workers)
    test_x = decode_files(files, files.test, resize, expected, f"decoding {label}/{files.test_split}",
                          progress, workers)
    mean, std = channel_stats(train_x)
    return {"format": CACHE_FORMAT, "kind": files.kind, "fingerprint": files.digest,
            "resize": resize, "classes": list(files.classes), "train_x": train_x,
            "train_y": torch.tensor(files.train_y, dtype=torch.int64), "test_x": test_x,
            "test_y": torch.tensor(files.test_y, dtype=torch.int64), "mean": list(mean),
            "std": list(std)}


def _first_size(path: str, root: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception as e:  # noqa: BLE001
        rel = os.path.relpath(path, root)
        raise DataError(f"data folder {root}: cannot decode {rel} ({_one_line(e)})") from None


def decode_files(files: ImageFiles, paths: list[str], resize: int | None,
                 expected: tuple[int, int] | None, desc: str, progress: bool,
                 workers: int) -> torch.Tensor:
    """Image files -> uint8 [N, 3, S, S], decoded in ``workers`` processes; the first file that
    cannot be used is one DataError line naming it (nothing is written)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    from superlens.active.decode import decode_chunk

    root = files.root
    n = len(paths)
    h, w = (resize, resize) if resize is not None else (expected[1], expected[0])
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    chunk = max(64, min(2000, n // (workers * 8) + 1))
    starts = list(range(0, n, chunk))

    def put(s: int, status: str, val) -> None:
        if status == "size":
            raise DataError(f"data folder {root}: {val}; {files.size_hint}")
        if status != "ok":
            raise DataError(f"data folder {root}: {val}")
        out[s:s + len(val)] = val
        bar.update(len(val))

    bar = tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False, dynamic_ncols=True)
    try:
        if workers <= 1 or len(starts) == 1:
            for s in starts:
                put(s, *decode_chunk(paths[s:s + chunk], expected, resize, str(root)))
        else:
            # fork: no re-import of the caller's __main__ (a script without a main guard works) and
            # no start-up cost; the children run only PIL and numpy, never torch's thread pools
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            with ProcessPoolExecutor(workers, mp_context=mp.get_context(method)) as ex:
                futs = {ex.submit(decode_chunk, paths[s:s + chunk], expected, resize, str(root)): s
                        for s in starts}
                try:
                    for f in as_completed(futs):
                        put(futs[f], *f.result())
                except BaseException:
                    for g in futs:
                        g.cancel()
                    raise
    finally:
        bar.close()
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _read_cache(path: Path, files: ImageFiles, resize: int | None) -> dict:
    """The cache at ``path`` when it is this folder's; anything else is refused (the rule above)."""
    n_tr, n_te = len(files.train), len(files.test)
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles before refusing them
            warnings.simplefilter("ignore")
            c = torch.load(path, map_location="cpu", weights_only=True)
        side = c["train_x"].shape[-1] if isinstance(c, dict) else None
        ok = (isinstance(c, dict) and c.get("format") == CACHE_FORMAT and c.get("kind") == files.kind
              and c.get("fingerprint") == files.digest and c.get("resize") == resize
              and list(c.get("classes", [])) == list(files.classes)
              and c["train_x"].dtype == torch.uint8 and c["test_x"].dtype == torch.uint8
              and tuple(c["train_x"].shape) == (n_tr, 3, side, side)
              and tuple(c["test_x"].shape) == (n_te, 3, side, side)
              and torch.equal(c["train_y"], torch.tensor(files.train_y, dtype=torch.int64))
              and torch.equal(c["test_y"], torch.tensor(files.test_y, dtype=torch.int64))
              and len(c["mean"]) == len(c["std"]) == 3)
        why = "its content was made from other files"
    except Exception as e:  # noqa: BLE001 - foreign, truncated or corrupt files alike
        ok, why = False, f"not a superlens cache: {_one_line(e)[:120]}"
    if not ok:
        raise DataError(f"cache {path}: does not match data folder {files.root} ({why}); delete "
                        "that file to decode the folder again")
    return c


def _write_cache(path: Path, c: dict, explicit: bool) -> None:
    """Write the cache atomically; an unwritable folder costs a notice (the default folder) or an
    error (one given explicitly, which check_cache_dir has already found writable)."""
    from superlens.errors import os_error_line
    from superlens.runs import atomic_save_torch

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_torch(path, c)
    except OSError as e:
        if explicit:
            raise ConfigError(f"cache_dir: cannot write the decoded-image cache ({os_error_line(e)})") \
                from None
        print(f"superlens: note: cannot write the decoded-image cache ({os_error_line(e)}); "
              "going on without it (set --cache-dir to a writable folder)", file=sys.stderr)


__all__ = ["ImageFiles", "default_cache_dir", "files_digest", "cache_path", "check_cache_dir",
           "decoded_dataset", "decode_files", "CACHE_FORMAT"]
