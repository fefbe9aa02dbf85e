"""Image-folder trees (train/<class>/*.jpg + test/ or val/<class>/...) as uint8 tensors, decoded
once in worker processes and cached under the user's cache folder, keyed by the folder's contents.

    index = image_folder_index("~/data/pets")            # read-only: classes, paths, fingerprint
    ds = load_image_folder("~/data/pets", image_size=64)  # ImageDataset; a second call reads the cache

superlens.active.data re-exports these names and dispatches "image-folder" to load_image_folder.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from superlens.errors import DataError
from superlens.errors import one_line as _one_line

if TYPE_CHECKING:
    from superlens.active.data import ImageDataset

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
FOLDER_HOW = ("expected an image-folder tree: train/<class>/*.{jpg,jpeg,png} and test/<class>/... "
              "(or val/<class>/...)")
FOLDER_CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """The user's cache folder for decoded images: $XDG_CACHE_HOME/superlens, else ~/.cache/superlens."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "superlens"


def _class_dirs(split: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(split) if e.is_dir() and not e.name.startswith("."))


def _split_files(root: Path, split: str, classes: list[str]) -> tuple[list[str], list[int], list]:
    """(paths, labels, [(name, size, mtime_ns)]) of one split; an empty class folder is refused."""
    paths, labels, stats = [], [], []
    for k, c in enumerate(classes):
        entries = sorted((e for e in os.scandir(root / split / c)
                          if e.is_file() and e.name.lower().endswith(IMAGE_EXTS)), key=lambda e: e.name)
        if not entries:
            raise DataError(f"data folder {root}: class folder {split}/{c} has no images "
                            f"({', '.join(IMAGE_EXTS)}); {FOLDER_HOW}")
        for e in entries:
            st = e.stat()
            paths.append(e.path)
            labels.append(k)
            stats.append((f"{split}/{c}/{e.name}", st.st_size, st.st_mtime_ns))
    return paths, labels, stats


def image_folder_index(data_dir: str | os.PathLike) -> dict:
    """Read-only index of an image-folder tree: {"root", "classes", "train" (paths), "train_y",
    "test", "test_y", "test_split" ("test" or "val"), "fingerprint" (sha256 hex of every file's
    relative path, size and mtime)}. Layout faults are one DataError line."""
    root = Path(data_dir).expanduser()
    if not (root / "train").is_dir():
        raise DataError(f"data folder {root}: no train/ folder; {FOLDER_HOW}")
    test_split = "test" if (root / "test").is_dir() else "val" if (root / "val").is_dir() else None
    if test_split is None:
        raise DataError(f"data folder {root}: no test/ or val/ folder; {FOLDER_HOW}")
    classes = _class_dirs(root / "train")
    test_classes = _class_dirs(root / test_split)
    if not classes:
        raise DataError(f"data folder {root}: no images (train/ holds no class folders); {FOLDER_HOW}")
    if classes != test_classes:
        only_tr = sorted(set(classes) - set(test_classes))
        only_te = sorted(set(test_classes) - set(classes))
        what = "; ".join(x for x in (f"only in train/: {', '.join(only_tr[:5])}" if only_tr else "",
                                     f"only in {test_split}/: {', '.join(only_te[:5])}" if only_te else "")
                         if x)
        raise DataError(f"data folder {root}: train/ and {test_split}/ have different class folders "
                        f"({what})")
    tr, tr_y, tr_st = _split_files(root, "train", classes)
    te, te_y, te_st = _split_files(root, test_split, classes)
    return {"root": root, "classes": classes, "train": tr, "train_y": tr_y, "test": te, "test_y": te_y,
            "test_split": test_split, "fingerprint": stats_digest(tr_st + te_st)}


def stats_digest(stats) -> str:
    """sha256 hex of files' (relative name, size, mtime_ns) triples, in order: a changed, added or
    removed file changes it."""
    import hashlib

    h = hashlib.sha256()
    for name, size, mtime in stats:
        h.update(f"{name}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


def _decode_files(paths: list[str], root: Path, resize: int | None, desc: str, progress: bool,
                  expected: tuple[int, int] | None, workers: int) -> Tensor:
    """Image files -> uint8 [N, 3, S, S], decoded in ``workers`` processes (PIL holds the
    GIL for much of a small JPEG's decode, so threads do not scale); a file that cannot be used is
    one DataError line naming it."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    from superlens.active.decode import decode_chunk

    n = len(paths)
    h, w = (resize, resize) if resize is not None else (expected[1], expected[0])
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    chunk = max(64, min(2000, n // (workers * 8) + 1))
    starts = list(range(0, n, chunk))
    bar = tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False, dynamic_ncols=True)
    try:
        if workers <= 1 or len(starts) == 1:
            results = (decode_chunk(paths[s:s + chunk], expected, resize, str(root)) for s in starts)
            for s, (status, val) in zip(starts, results):
                if status != "ok":
                    raise DataError(f"data folder {root}: {val}")
                out[s:s + len(val)] = val
                bar.update(len(val))
        else:
            # fork: no re-import of the caller's __main__ (a script without a main guard works) and
            # no start-up cost; the children run only PIL and numpy, never torch's thread pools
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            with ProcessPoolExecutor(workers, mp_context=mp.get_context(method)) as ex:
                futs = {ex.submit(decode_chunk, paths[s:s + chunk], expected, resize, str(root)): s
                        for s in starts}
                from concurrent.futures import as_completed

                for f in as_completed(futs):
                    status, val = f.result()
                    if status != "ok":
                        for g in futs:
                            g.cancel()
                        raise DataError(f"data folder {root}: {val}")
                    s = futs[f]
                    out[s:s + len(val)] = val
                    bar.update(len(val))
    finally:
        bar.close()
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _first_size(path: str, root: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception as e:  # noqa: BLE001
        rel = os.path.relpath(path, root)
        raise DataError(f"data folder {root}: cannot decode {rel} ({_one_line(e)})") from None


def image_folder_cache_path(index: dict, cache_dir: str | os.PathLike | None,
                            resize: int | None) -> Path:
    """<cache_dir>/imagefolder-<key>.pt, the key a hash of the folder's fingerprint and the resize."""
    import hashlib

    key = hashlib.sha256(f"{index['fingerprint']}|resize={resize}|v{FOLDER_CACHE_FORMAT}".encode())
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return base / f"imagefolder-{key.hexdigest()[:24]}.pt"


def load_image_folder(data_dir: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                      image_size: int | None = None, progress: bool = True,
                      workers: int | None = None) -> ImageDataset:
    """An image-folder tree (train/<class>/*, test/<class>/* or val/<class>/*) as uint8 tensors.

    Class names are the folder names, labels their sorted order. Every image must have one square
    size, unless ``image_size`` is given: then each is resized to image_size x image_size while
    decoding. The first load decodes in ``workers`` processes (default: all cores, at most 8) and
    writes <cache_dir>/imagefolder-<key>.pt (default cache_dir: default_cache_dir(); never inside
    the data folder); the key hashes every file's path, size and mtime with the resize, so a changed
    folder is decoded again. A cache file under the right key whose content does not match the folder
    is refused (DataError naming it), never silently used.
    """
    # imported here, not at the top: superlens.active.data imports this module at its top
    from superlens.active.data import ImageDataset, channel_stats
    from superlens.runs import atomic_save_torch

    index = image_folder_index(data_dir)
    root = index["root"]
    resize = int(image_size) if image_size is not None else None
    cache_path = image_folder_cache_path(index, cache_dir, resize)
    n_tr, n_te = len(index["train"]), len(index["test"])
    if cache_path.is_file():
        try:
            c = torch.load(cache_path, map_location="cpu", weights_only=True)
            side = c["train_x"].shape[-1] if isinstance(c, dict) else None
            ok = (isinstance(c, dict) and c.get("format") == FOLDER_CACHE_FORMAT
                  and c.get("fingerprint") == index["fingerprint"] and c.get("resize") == resize
                  and list(c.get("classes", [])) == index["classes"]
                  and c["train_x"].dtype == torch.uint8 and c["test_x"].dtype == torch.uint8
                  and tuple(c["train_x"].shape) == (n_tr, 3, side, side)
                  and tuple(c["test_x"].shape) == (n_te, 3, side, side)
                  and torch.equal(c["train_y"], torch.tensor(index["train_y"], dtype=torch.int64))
                  and torch.equal(c["test_y"], torch.tensor(index["test_y"], dtype=torch.int64)))
            why = "its content was made from other files"
        except Exception as e:  # noqa: BLE001
            ok, why = False, f"unreadable: {_one_line(e)[:120]}"
        if not ok:
            raise DataError(f"cache {cache_path}: does not match data folder {root} ({why}); delete "
                            "that file to decode the folder again")
        return ImageDataset(root.name or "image-folder", c["train_x"], c["train_y"], c["test_x"],
                            c["test_y"], index["classes"], tuple(float(v) for v in c["mean"]),
                            tuple(float(v) for v in c["std"]))

    expected = None
    if resize is None:
        expected = _first_size(index["train"][0], root)
        if expected[0] != expected[1]:
            rel = os.path.relpath(index["train"][0], root)
            raise DataError(f"data folder {root}: {rel} is {expected[0]}x{expected[1]}, not square; "
                            "pass --image-size N (image_size) to resize every image to N x N")
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    train_x = _decode_files(index["train"], root, resize, f"decoding {root.name}/train", progress,
                            expected, workers)
    test_x = _decode_files(index["test"], root, resize, f"decoding {root.name}/{index['test_split']}",
                           progress, expected, workers)
    mean, std = channel_stats(train_x)
    c = {"format": FOLDER_CACHE_FORMAT, "fingerprint": index["fingerprint"], "resize": resize,
         "classes": index["classes"], "train_x": train_x,
         "train_y": torch.tensor(index["train_y"], dtype=torch.int64), "test_x": test_x,
         "test_y": torch.tensor(index["test_y"], dtype=torch.int64), "mean": list(mean), "std": list(std)}
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_torch(cache_path, c)
    except OSError as e:  # an unwritable cache folder: work on, decode again next time
        warnings.warn(f"{cache_path}: cannot write the cache ({_one_line(e)})", stacklevel=2)
    return ImageDataset(root.name or "image-folder", train_x, c["train_y"], test_x, c["test_y"],
                        index["classes"], mean, std)


__all__ = ["IMAGE_EXTS", "FOLDER_HOW", "default_cache_dir", "image_folder_index", "image_folder_cache_path",
           "load_image_folder"]
