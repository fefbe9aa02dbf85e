"""One pass over the data captures every requested layer into an on-disk cache of float16 arrays.

    acts = capture(model, ["conv1", "layer4"], source, cache_dir="~/.cache/superlens/activations")
    acts["layer4"].rows     # [R, N] float16, memory-mapped
    acts["layer4"].pooled   # [n, N] float16: each sample's mean over its rows

A cache entry is one layer of one model on one data set: its folder name hashes the model's
fingerprint (architecture and every weight), the data's fingerprint (the input bytes and their
preprocessing), the layer's name and shape, the row cap and the seed. It holds

    rows.npy    [R, N] float16   rows (one per spatial position / token / sample), R <= max_rows
    pooled.npy  [n, N] float16   per-sample means over all of the sample's rows (before the cap)
    sample.npy  [R]    int64     the sample each row came from
    info.json                    what the key was made of, the shapes; written last

A layer with more than max_rows rows keeps a uniform random subset, drawn once from ``seed`` as
``superlens.measures.sae.conv_rows`` draws it (the same rows as conv_rows on the whole map), in
their original order. The entry is written in ``KEY.partial/`` (arrays filled in place with
positional writes, so memory stays at one batch whatever the data size; progress.json records the
samples done after the arrays are synced) and renamed to ``KEY/`` when complete. A cut capture
continues from its last recorded progress; a complete entry is reused. One writer per entry
(an flock on ``.KEY.lock``).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from superlens.capture.hooks import LayerShape, LayerTap, pool, row_layout, to_rows
from superlens.device import generator
from superlens.errors import RunDirError
from superlens.runs import write_json

FORMAT = 1
SYNC_SECONDS = 5.0  # how often a running capture records its progress


class Source(Protocol):
    """Batches of model inputs: ``n`` samples; ``batch(start, stop, device)`` -> a tensor the model
    takes; ``fingerprint()`` -> a string that changes when the inputs or their preprocessing do."""

    n: int

    def batch(self, start: int, stop: int, device: torch.device) -> Tensor: ...

    def fingerprint(self) -> str: ...


@dataclass
class LayerActivations:
    """One layer's captured activations (see the module docstring for the arrays)."""

    name: str
    shape: tuple[int, ...]
    kind: str
    rows: np.ndarray
    pooled: np.ndarray
    sample: np.ndarray
    depth: int
    path: Path | None = None
    reused: bool = False

    @property
    def width(self) -> int:
        return int(self.rows.shape[1])


def tensor_digest(t: Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes."""
    h = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode())
    c = t.detach().cpu().contiguous().reshape(-1)  # 1-D: a 0-d tensor cannot be viewed as bytes
    h.update(c.view(torch.uint8).numpy().tobytes() if c.numel() else b"")
    return h.hexdigest()


def model_fingerprint(model: nn.Module) -> str:
    """sha256 of the architecture (the module tree as printed; a TorchScript module's code) and
    every parameter and buffer (name, dtype, shape, bytes): changed weights give another key."""
    h = hashlib.sha256(type(model).__name__.encode())
    code = getattr(model, "code", None) if isinstance(model, torch.jit.ScriptModule) else None
    h.update((code or repr(model)).encode())
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(tensor_digest(v).encode())
    return h.hexdigest()


def kept_rows(total: int, max_rows: int | None, seed: int) -> np.ndarray | None:
    """Sorted row indices kept out of ``total`` (None: all), drawn as conv_rows draws them."""
    if max_rows is None or total <= max_rows:
        return None
    keep = torch.randperm(total, generator=generator(seed))[:max_rows].sort().values
    return keep.numpy()


def _entry_key(model_fp: str, data_fp: str, ls: LayerShape, max_rows: int | None, seed: int) -> str:
    text = json.dumps({"format": FORMAT, "model": model_fp, "data": data_fp, "layer": ls.name,
                       "shape": list(ls.shape), "max_rows": max_rows, "seed": seed}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@contextlib.contextmanager
def _entry_lock(cache: Path, key: str) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: no guard
        yield
        return
    path = cache / f".{key}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirError(f"activation cache {cache / key}: being written by another superlens "
                              "process; wait for it or use another --cache-dir") from None
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def _load_entry(d: Path, ls: LayerShape, depth: int) -> LayerActivations | None:
    """A complete cache entry, memory-mapped read-only; None when absent or not matching."""
    try:
        info = json.loads((d / "info.json").read_text())
        rows = np.load(d / "rows.npy", mmap_mode="r")
        pooled = np.load(d / "pooled.npy", mmap_mode="r")
        sample = np.load(d / "sample.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    if (info.get("format") != FORMAT or tuple(info.get("shape", ())) != ls.shape
            or rows.ndim != 2 or rows.shape[1] != ls.width or sample.shape != (rows.shape[0],)):
        return None
    return LayerActivations(ls.name, ls.shape, ls.kind, rows, pooled, sample, depth, d, True)


class _Writer:
    """Positional writes into the preallocated .npy files of one partial entry."""

    def __init__(self, d: Path, ls: LayerShape, n: int, keep: np.ndarray | None, fresh: bool):
        self.d, self.ls, self.n = d, ls, n
        total = n * ls.rows_per_sample
        self.keep = keep
        R = total if keep is None else len(keep)
        self.R = R
        if fresh:
            d.mkdir(parents=True, exist_ok=True)
            for name, shape in (("rows.npy", (R, ls.width)), ("pooled.npy", (n, ls.width))):
                np.lib.format.open_memmap(d / name, mode="w+", dtype=np.float16, shape=shape).flush()
            idx = np.arange(total, dtype=np.int64) if keep is None else keep.astype(np.int64)
            np.save(d / "sample.npy", idx // ls.rows_per_sample)
        self.files = {}
        self.offset = {}
        for name in ("rows.npy", "pooled.npy"):
            m = np.load(d / name, mmap_mode="r")
            self.offset[name] = m.offset
            del m
            self.files[name] = open(d / name, "r+b")

    def write(self, start: int, out: Tensor) -> None:
        """The rows and pooled features of samples start .. start + B."""
        B, P, N = out.shape[0], self.ls.rows_per_sample, self.ls.width
        pooled = pool(out).to(torch.float16).cpu().numpy()
        os.pwrite(self.files["pooled.npy"].fileno(), pooled.tobytes(),
                  self.offset["pooled.npy"] + start * N * 2)
        lo_row, hi_row = start * P, (start + B) * P
        if self.keep is None:
            first, rows = lo_row, to_rows(out)
        else:
            a, b = np.searchsorted(self.keep, [lo_row, hi_row])
            if a == b:
                return
            local = torch.from_numpy(self.keep[a:b] - lo_row).to(out.device)
            first, rows = int(a), to_rows(out)[local]
        data = rows.to(torch.float16).cpu().numpy()
        os.pwrite(self.files["rows.npy"].fileno(), data.tobytes(), self.offset["rows.npy"] + first * N * 2)

    def sync(self, done: int) -> None:
        for f in self.files.values():
            os.fsync(f.fileno())
        write_json(self.d / "progress.json", {"done": done})

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def _progress(d: Path, ls: LayerShape, n: int, keep) -> int:
    """Samples already captured in a partial entry (0 when there is none or it does not match)."""
    try:
        done = int(json.loads((d / "progress.json").read_text())["done"])
        rows = np.load(d / "rows.npy", mmap_mode="r")
        pooled = np.load(d / "pooled.npy", mmap_mode="r")
        R = n * ls.rows_per_sample if keep is None else len(keep)
        ok = rows.shape == (R, ls.width) and pooled.shape == (n, ls.width) and 0 <= done <= n
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return done if ok else 0


@torch.no_grad()
def probe(model: nn.Module, layers: list[str], source: Source, device: torch.device) -> list[LayerShape]:
    """Each layer's LayerShape from one sample, in the order the layers run."""
    with LayerTap(model, layers) as tap:
        outs = tap.run(source.batch(0, 1, device))
    return [row_layout(n, o) for n, o in outs.items()]


@torch.no_grad()
def capture(model: nn.Module, layers: list[str], source: Source, *, cache_dir: str | Path | None,
            max_rows: int | None = 50_000, seed: int = 0, batch_size: int = 256,
            device: torch.device | str = "cpu", progress: bool = False,
            model_fp: str | None = None) -> dict[str, LayerActivations]:
    """Activations of ``layers`` on every sample of ``source``, in the order the layers run.

    Eval mode, no gradients, batches of ``batch_size`` on ``device``; the model's train/eval state
    is put back afterwards. Complete cache entries are reused, cut ones continued. cache_dir None:
    a temporary folder, and the arrays are read into memory before it is removed.
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    if cache_dir is None:
        with tempfile.TemporaryDirectory(prefix="superlens-acts-") as tmp:
            got = capture(model, layers, source, cache_dir=tmp, max_rows=max_rows, seed=seed,
                          batch_size=batch_size, device=device, progress=progress, model_fp=model_fp)
            for a in got.values():
                a.rows, a.pooled, a.sample = (np.array(a.rows), np.array(a.pooled), np.array(a.sample))
                a.path, a.reused = None, False
            return got
    cache = Path(cache_dir).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        shapes = probe(model, layers, source, device)
        mfp = model_fp or model_fingerprint(model)
        dfp = source.fingerprint()
        keys = {ls.name: _entry_key(mfp, dfp, ls, max_rows, seed) for ls in shapes}
        depth = {ls.name: i for i, ls in enumerate(shapes)}
        out: dict[str, LayerActivations] = {}
        todo = []
        for ls in shapes:
            got = _load_entry(cache / keys[ls.name], ls, depth[ls.name])
            if got is not None:
                out[ls.name] = got
            else:
                todo.append(ls)
        if todo:
            with contextlib.ExitStack() as stack:
                for ls in todo:
                    stack.enter_context(_entry_lock(cache, keys[ls.name]))
                _capture_into(model, todo, source, cache, keys, max_rows, seed, batch_size, device,
                              progress, tqdm)
            for ls in todo:
                got = _load_entry(cache / keys[ls.name], ls, depth[ls.name])
                assert got is not None, ls.name
                got.reused = False
                out[ls.name] = got
        return {ls.name: out[ls.name] for ls in shapes}
    finally:
        model.train(was_training)


def _capture_into(model, todo: list[LayerShape], source: Source, cache: Path, keys: dict,
                  max_rows, seed, batch_size, device, progress, tqdm) -> None:
    n = source.n
    writers: list[_Writer] = []
    start = n
    try:
        for ls in todo:
            part = cache / f"{keys[ls.name]}.partial"
            keep = kept_rows(n * ls.rows_per_sample, max_rows, seed)
            done = _progress(part, ls, n, keep)
            if done == 0 and part.exists():
                shutil.rmtree(part)
            writers.append(_Writer(part, ls, n, keep, fresh=done == 0))
            start = min(start, done)
        names = [ls.name for ls in todo]
        bar = tqdm(total=n, initial=start, desc="capture", unit="img", disable=not progress,
                   leave=False, dynamic_ncols=True)
        last = time.monotonic()
        with LayerTap(model, names) as tap, bar:
            for s in range(start, n, batch_size):
                e = min(n, s + batch_size)
                outs = tap.run(source.batch(s, e, device))
                for w in writers:
                    w.write(s, outs[w.ls.name].detach())
                bar.update(e - s)
                if time.monotonic() - last > SYNC_SECONDS:
                    for w in writers:
                        w.sync(e)
                    last = time.monotonic()
        for w in writers:
            w.sync(n)
    finally:
        for w in writers:
            w.close()
    for w in writers:
        write_json(w.d / "info.json", {"format": FORMAT, "layer": w.ls.name, "shape": list(w.ls.shape),
                                        "kind": w.ls.kind, "samples": n, "rows": w.R,
                                        "max_rows": max_rows, "seed": seed})
        (w.d / "progress.json").unlink()
        final = cache / keys[w.ls.name]
        if final.exists():  # an unreadable old entry
            shutil.rmtree(final)
        os.rename(w.d, final)


__all__ = ["Source", "LayerActivations", "capture", "probe", "kept_rows", "model_fingerprint",
           "tensor_digest", "FORMAT"]
