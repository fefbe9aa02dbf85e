"""What `superlens measure` reads: images from a data folder, a tensor file of inputs, or
activations directly; and class labels for them.

    src = folder_source("~/data/cifar10", split="test", max_images=10_000)   # Inputs
    src = file_source("x.pt")                                                # Inputs
    acts = read_activations("acts.safetensors")                             # {name: [rows, N]}

A data folder goes through `superlens active`'s loaders: its layout is detected (an image-folder
tree, CIFAR-10's python batches, Tiny ImageNet), JPEGs are decoded once into the uint8 cache, and
batches are normalised as the study normalises them (normalize = dataset, cifar-paper, imagenet or
none; dataset: the training split's per-channel statistics).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from superlens.capture.sources import TensorSource
from superlens.errors import DataError, one_line

TENSOR_SUFFIXES = (".pt", ".pth", ".npy", ".npz", ".safetensors")


@dataclass
class Inputs:
    """A Source for the capture, with labels [n] (or None), class names and a description."""

    source: TensorSource
    labels: Tensor | None
    class_names: list[str] | None
    description: str
    in_channels: int | None = None


def subset(n: int, max_items: int | None, seed: int) -> Tensor | None:
    """Sorted indices of a seeded random subset of range(n) of size max_items (None: all)."""
    if max_items is None or max_items >= n:
        return None
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=g)[:max_items].sort().values


def folder_source(data_dir: str | Path, *, split: str = "test", max_images: int | None = None,
                  normalize: str = "dataset", image_size: int | None = None,
                  cache_dir: str | Path | None = None, seed: int = 0, progress: bool = True) -> Inputs:
    """Images of one split of a data folder (layout detected as `superlens active` does)."""
    from superlens.active.data import detect_layout, load_dataset, normalize_batch, resolve_normalization

    layout = detect_layout(data_dir)
    ds = load_dataset(layout, data_dir, cache_dir=cache_dir, image_size=image_size, progress=progress)
    stats = resolve_normalization(normalize, ds)
    x, y = (ds.test_x, ds.test_y) if split == "test" else (ds.train_x, ds.train_y)
    keep = subset(int(x.shape[0]), max_images, seed)
    if keep is not None:
        x, y = x[keep], y[keep]
    mean, std = stats if stats is not None else (None, None)

    def transform(xb: Tensor) -> Tensor:
        return normalize_batch(xb, mean, std, image_size=image_size)

    tid = f"normalize={normalize}:{mean}:{std}|image_size={image_size}"
    desc = (f"{int(x.shape[0]):,} {split} images of {Path(data_dir).expanduser()} ({layout}, "
            f"{ds.image_size}x{ds.image_size}x{ds.in_channels}, normalize {normalize})")
    return Inputs(TensorSource(x, transform, tid), y, list(ds.class_names), desc, ds.in_channels)


def read_tensors(path: str | Path, what: str) -> dict[str, Tensor]:
    """Named tensors of a .pt/.pth (a tensor or a dict of tensors), .npy, .npz or .safetensors
    file, in file order; a missing or unreadable file is one DataError line."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{what} {p}: not found")
    if p.suffix not in TENSOR_SUFFIXES:
        raise DataError(f"{what} {p}: unknown file type {p.suffix!r} (known: {', '.join(TENSOR_SUFFIXES)})")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            got = dict(load_file(str(p)))
        elif p.suffix == ".npy":
            got = {p.stem: torch.from_numpy(np.load(p, allow_pickle=False))}
        elif p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                got = {k: torch.from_numpy(z[k]) for k in z.files}
        else:
            obj = torch.load(p, map_location="cpu", weights_only=True)
            got = {p.stem: obj} if isinstance(obj, Tensor) else obj
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file is one line
        raise DataError(f"{what} {p}: unreadable ({one_line(e)[:200]})") from None
    if not isinstance(got, dict) or not got or not all(isinstance(v, Tensor) for v in got.values()):
        raise DataError(f"{what} {p}: holds no tensor (expected a tensor or a dict of tensors)")
    return got


LABEL_KEYS = ("labels", "y", "targets")
INPUT_KEYS = ("inputs", "x", "images")


def _labels_of(named: dict[str, Tensor], n: int, where: str) -> Tensor | None:
    for k in LABEL_KEYS:
        if k in named:
            return check_labels(named[k], n, f"{where} entry {k!r}")
    return None


def check_labels(y: Tensor, n: int, where: str) -> Tensor:
    """Integer class labels [n] (>= 0), as int64; anything else is one DataError line."""
    y = torch.as_tensor(y)
    if y.is_floating_point() and bool((y == y.round()).all()):
        y = y.to(torch.int64)
    if y.is_floating_point() or y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"{where}: labels of shape {list(y.shape)} and dtype {y.dtype}, expected "
                        f"[{n}] integers (one per sample)")
    y = y.to(torch.int64)
    if n and int(y.min()) < 0:
        raise DataError(f"{where}: negative class label {int(y.min())}")
    return y


def file_source(path: str | Path, *, max_images: int | None = None, seed: int = 0) -> Inputs:
    """Inputs from a tensor file: one tensor [n, ...], or a dict with "inputs" (or "x", "images")
    and optionally "labels" (or "y", "targets"). uint8 images are fed as x / 255; floating inputs
    as they are (already preprocessed)."""
    p = Path(path).expanduser()
    named = read_tensors(p, "inputs")
    key = next((k for k in INPUT_KEYS if k in named), None)
    if key is None:
        if len(named) != 1:
            raise DataError(f"inputs {p}: {len(named)} tensors ({', '.join(list(named)[:4])}) and none "
                            f"named {', '.join(INPUT_KEYS)}")
        key = next(iter(named))
    x = named[key]
    if x.ndim < 2 or x.shape[0] < 1:
        raise DataError(f"inputs {p}: entry {key!r} has shape {list(x.shape)}, expected [n, ...] "
                        "with one sample per row of the first axis")
    y = _labels_of(named, int(x.shape[0]), f"inputs {p}")
    keep = subset(int(x.shape[0]), max_images, seed)
    if keep is not None:
        x, y = x[keep], (y[keep] if y is not None else None)
    if x.dtype == torch.uint8:
        src = TensorSource(x, lambda xb: xb.to(torch.float32).div_(255.0), "uint8/255")
    else:
        src = TensorSource(x)
    desc = f"{int(x.shape[0]):,} inputs of shape {list(x.shape[1:])} ({x.dtype}) from {p}"
    return Inputs(src, y, None, desc, int(x.shape[1]) if x.ndim == 4 else None)


def read_activations(path: str | Path) -> tuple[dict[str, Tensor], Tensor | None]:
    """({layer name: activations [rows, N]}, labels [rows] or None) from a tensor file: one 2-D
    tensor (named after the file) or several (one layer each; a "labels" entry is the labels)."""
    p = Path(path).expanduser()
    named = read_tensors(p, "activations")
    acts = {k: v for k, v in named.items() if k not in LABEL_KEYS}
    if not acts:
        raise DataError(f"activations {p}: holds only labels, no activations")
    for k, v in acts.items():
        if v.ndim != 2 or v.shape[0] < 2 or v.shape[1] < 1 or not v.is_floating_point():
            raise DataError(f"activations {p}: entry {k!r} has shape {list(v.shape)} ({v.dtype}); "
                            "expected rows x features, floating point, with at least 2 rows")
    rows = {int(v.shape[0]) for v in acts.values()}
    labels = None
    if any(k in named for k in LABEL_KEYS):
        if len(rows) != 1:
            raise DataError(f"activations {p}: labels given but the layers have different row counts")
        labels = _labels_of(named, rows.pop(), f"activations {p}")
    return acts, labels


def read_labels(path: str | Path, n: int) -> Tensor:
    """Labels [n] from a tensor file (one tensor, or a dict with "labels" / "y" / "targets")."""
    named = read_tensors(path, "labels")
    where = f"labels {Path(path).expanduser()}"
    for k in LABEL_KEYS:
        if k in named:
            return check_labels(named[k], n, where)
    if len(named) != 1:
        raise DataError(f"{where}: {len(named)} tensors and none named {', '.join(LABEL_KEYS)}")
    return check_labels(next(iter(named.values())), n, where)


__all__ = ["Inputs", "folder_source", "file_source", "read_activations", "read_labels",
           "read_tensors", "check_labels", "subset"]
