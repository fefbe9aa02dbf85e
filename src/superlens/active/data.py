"""Image data sets of the active-learning study behind one interface, and batch normalisation.

Every data set is held whole in memory as uint8 [N, C, H, W] tensors (CIFAR-10's 50k training images
are 150 MB, Tiny ImageNet's 100k are 1.2 GB); batches are converted to float, resized and normalised
on the training device by ``normalize_batch``, so no data loader workers are needed.
The image-folder loader (decoding and its cache) lives in superlens.active.folders;
load_image_folder and default_cache_dir are re-exported here.

    ds = load_dataset("digits", seed=0)                 # offline, 8x8, 10 classes
    mean_std = resolve_normalization("dataset", ds)     # or "cifar-paper", "imagenet", "none"
    x = normalize_batch(ds.train_x[:128].to(device), *(mean_std or (None, None)), image_size=None)
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from superlens.active.folders import FOLDER_HOW, default_cache_dir, load_image_folder
from superlens.errors import ConfigError, DataError
from superlens.errors import one_line as _one_line
from superlens.vision import import_torchvision

Stats = tuple[tuple[float, ...], tuple[float, ...]]

# Per-channel (mean, std) in [0, 1] units. "dataset" is not here: it means the ImageDataset's own
# statistics, so callers resolve it with resolve_normalization(kind, ds).
NORMALIZATIONS: dict[str, Stats | None] = {
    # the paper's CIFAR-10 code (the widely copied values; not the exact CIFAR-10 std)
    "cifar-paper": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "none": None,  # x / 255 only
}


@dataclass
class ImageDataset:
    """A labelled train/test split held in memory.

    train_x: [N, C, H, W] uint8 (0..255)    train_y: [N] int64 in 0..n_classes-1
    test_x:  [M, C, H, W] uint8             test_y:  [M] int64
    mean, std: per channel, in [0, 1] units, of the training images (population std; a constant
    channel gets std 1 so normalising it never divides by zero).
    """

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        assert self.train_x.dtype == torch.uint8 and self.train_x.dim() == 4, self.train_x.shape
        assert self.test_x.dtype == torch.uint8 and self.test_x.shape[1:] == self.train_x.shape[1:]
        assert self.train_y.dtype == torch.int64 and self.train_y.shape == (self.train_x.shape[0],)
        assert self.test_y.dtype == torch.int64 and self.test_y.shape == (self.test_x.shape[0],)
        assert len(self.mean) == len(self.std) == self.in_channels

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        """Side of the (square) images."""
        return int(self.train_x.shape[-1])

    def __repr__(self) -> str:
        return (f"ImageDataset({self.name!r}, train={tuple(self.train_x.shape)}, "
                f"test={tuple(self.test_x.shape)}, classes={self.n_classes})")


# ---------------------------------------------------------------------------------------------
# normalisation


def resolve_normalization(kind: str, ds: ImageDataset) -> Stats | None:
    """The (mean, std) that ``normalize_batch`` should use for ``kind``; None means x / 255 only.

    "dataset" -> the data set's own training statistics; the others come from NORMALIZATIONS and
    must have one value per channel of the data set.
    """
    if kind == "dataset":
        return ds.mean, ds.std
    if kind not in NORMALIZATIONS:
        known = ", ".join(["dataset", *NORMALIZATIONS])
        raise ConfigError(f"normalize = {kind!r}: unknown (known: {known})")
    stats = NORMALIZATIONS[kind]
    if stats is not None and len(stats[0]) != ds.in_channels:
        raise ConfigError(f"normalize = {kind!r}: has {len(stats[0])}-channel statistics but data set "
                          f"{ds.name} has {ds.in_channels} channel(s); use 'dataset' or 'none'")
    return stats


def normalize_batch(x_uint8: Tensor, mean, std, image_size: int | None = None) -> Tensor:
    """uint8 [B, C, H, W] (any device) -> float32 [B, C, S, S] = (x / 255 - mean) / std.

    mean, std: C values (or one, broadcast) in [0, 1] units, or both None for x / 255 only.
    image_size: resize (bilinear, antialiased when shrinking) to S x S when it differs from H x W;
    resizing is a per-pixel convex combination, so it commutes with the per-channel affine map.
    """
    assert x_uint8.dim() == 4, f"expected [B, C, H, W], got {tuple(x_uint8.shape)}"
    x = x_uint8.to(torch.float32).div_(255.0)
    if image_size is not None and tuple(x.shape[-2:]) != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False,
                          antialias=True)
    if mean is None and std is None:
        return x
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).reshape(-1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).reshape(-1)
    C = x.shape[1]
    if m.numel() not in (1, C) or s.numel() not in (1, C):
        raise ValueError(f"normalisation has {m.numel()} mean / {s.numel()} std values for {C} channels")
    return x.sub_(m.view(1, -1, 1, 1)).div_(s.view(1, -1, 1, 1))


def channel_stats(x: Tensor, chunk_elements: int = 1 << 24) -> Stats:
    """Per-channel mean and population std of uint8 [N, C, H, W] images, in [0, 1] units.

    Sums run in float64 over chunks of images; with integer pixel values below 256 the sums of x and
    x^2 are exact in float64 up to ~1e11 images of 32x32, so E[x^2] - E[x]^2 loses nothing.
    """
    N, C = x.shape[:2]
    per_image = max(1, x[0].numel()) if N else 1
    step = max(1, chunk_elements // per_image)
    s1 = torch.zeros(C, dtype=torch.float64)
    s2 = torch.zeros(C, dtype=torch.float64)
    for i in range(0, N, step):
        xc = x[i:i + step].to(torch.float64)
        s1 += xc.sum(dim=(0, 2, 3)).cpu()
        s2 += xc.square().sum(dim=(0, 2, 3)).cpu()
    n = max(1, N * x.shape[2] * x.shape[3])
    mean = s1 / n
    var = (s2 / n - mean.square()).clamp_min(0)
    std = var.sqrt() / 255.0
    std = torch.where(std > 1e-8, std, torch.ones_like(std))  # a constant channel: shift only
    return tuple(float(v) for v in mean / 255.0), tuple(float(v) for v in std)


# ---------------------------------------------------------------------------------------------
# the loaders

KNOWN = ("cifar10", "tiny-imagenet", "image-folder", "digits", "synthetic")


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, download: bool = False,
                 seed: int = 0, test_fraction: float = 0.2, progress: bool = True,
                 cache_dir: str | os.PathLike | None = None,
                 image_size: int | None = None) -> ImageDataset:
    """Load a data set by name.

    image-folder: ``data_dir`` is a train/<class>/... + test/ (or val/) tree, decoded once into
    ``cache_dir`` (load_image_folder); image_size resizes while decoding (needed when the images
    have mixed sizes).
    cifar10, tiny-imagenet: from ``data_dir`` (the folder that holds cifar-10-batches-py/ or
    tiny-imagenet-200/, or that folder itself), with their fixed test sets (Tiny ImageNet: val/);
    ``download`` fetches them where the network allows. seed and test_fraction are unused there.
    digits, synthetic: generated offline, split into train/test by a stratified split of
    ``test_fraction`` seeded by ``seed``.
    progress: a progress bar while decoding Tiny ImageNet's JPEGs (once; then a cache is read).
    """
    if name not in KNOWN:
        raise ConfigError(f"dataset = {name!r}: unknown (known: {', '.join(KNOWN)})")
    if name in ("digits", "synthetic") and data_dir is not None:
        if not Path(data_dir).expanduser().is_dir():
            raise DataError(f"data folder {Path(data_dir).expanduser()}: not found")
        raise DataError(f"data_dir = {str(data_dir)!r}: dataset {name} is generated and reads no data "
                        "folder; leave dataset unset (the folder's layout picks it) or drop --data-dir")
    if name == "digits":
        return load_digits(seed=seed, test_fraction=test_fraction)
    if name == "synthetic":
        return make_synthetic(seed=seed, test_fraction=test_fraction)
    if data_dir is None:
        raise DataError(f"dataset {name}: needs a data folder; pass --data-dir (data_dir in the config)"
                        + ("" if download else ", and --download to fetch it where the network allows"))
    if name == "cifar10":
        return load_cifar10(data_dir, download=download)
    if name == "image-folder":
        return load_image_folder(data_dir, cache_dir=cache_dir, image_size=image_size, progress=progress)
    return load_tiny_imagenet(data_dir, download=download, progress=progress, cache_dir=cache_dir)


def _locate(data_dir: str | os.PathLike, folder: str) -> tuple[Path, Path]:
    """(root, root/folder): ``data_dir`` may be the parent of ``folder`` or ``folder`` itself."""
    d = Path(data_dir).expanduser()
    if d.name == folder and d.is_dir():
        return d.parent, d
    return d, d / folder


def _stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction = {test_fraction!r}: must be in (0, 1)")
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=y)
    return np.sort(tr), np.sort(te)


def _from_split(name: str, x: Tensor, y: Tensor, class_names: list[str], test_fraction: float,
                seed: int) -> ImageDataset:
    tr, te = _stratified_split(y.numpy(), test_fraction, seed)
    tr, te = torch.from_numpy(tr), torch.from_numpy(te)
    mean, std = channel_stats(x[tr])
    return ImageDataset(name, x[tr].contiguous(), y[tr].contiguous(), x[te].contiguous(),
                        y[te].contiguous(), class_names, mean, std)


def load_digits(seed: int = 0, test_fraction: float = 0.2) -> ImageDataset:
    """scikit-learn's 1,797 8x8 digits (values 0..16, scaled to 0..255), 1 channel, 10 classes."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.from_numpy(np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    return _from_split("digits", x, y, [str(c) for c in d.target_names], test_fraction, seed)


SYNTHETIC_CENTERS = ((3.0, 3.0), (3.0, 8.0), (8.0, 3.0), (8.0, 8.0))  # (row, col) on a 12x12 grid


def make_synthetic(seed: int = 0, test_fraction: float = 0.2, n_per_class: int = 100,
                   size: int = 12, noise: float = 0.1) -> ImageDataset:
    """4 classes of [1, size, size] images: a bright Gaussian blob (sigma 1.5 px) at a class-specific
    place, its centre jittered by up to +-1 px, on a 0.15 background with N(0, noise^2) pixel noise.

    Class k's blob sits at SYNTHETIC_CENTERS[k] (scaled to ``size``), so any classifier that looks at
    where the light is separates the classes; the pixel noise keeps it from being exact.
    """
    g = torch.Generator().manual_seed(int(seed))
    K = len(SYNTHETIC_CENTERS)
    y = torch.arange(K).repeat_interleave(n_per_class)
    centers = torch.tensor(SYNTHETIC_CENTERS) * (size / 12.0)
    c = centers[y] + (torch.rand(len(y), 2, generator=g) * 2 - 1)  # [N, 2] jittered centres
    grid = torch.arange(size, dtype=torch.float32)
    dr = grid.view(1, -1, 1) - c[:, 0].view(-1, 1, 1)
    dc = grid.view(1, 1, -1) - c[:, 1].view(-1, 1, 1)
    blob = torch.exp(-(dr.square() + dc.square()) / (2 * 1.5 ** 2))  # [N, size, size]
    img = 0.15 + 0.75 * blob + noise * torch.randn(blob.shape, generator=g)
    x = (img.clamp(0, 1) * 255).round().to(torch.uint8).unsqueeze(1)
    names = [f"blob-{int(r)}-{int(cc)}" for r, cc in SYNTHETIC_CENTERS]
    return _from_split("synthetic", x, y.to(torch.int64), names, test_fraction, seed)


# --- CIFAR-10 ------------------------------------------------------------------------------------

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_HOW = ("expected the CIFAR-10 python batches (cifar-10-python.tar.gz from "
             "https://www.cs.toronto.edu/~kriz/cifar.html, unpacked)")


def _cifar_class():
    CIFAR10 = import_torchvision().datasets.CIFAR10

    class _CIFAR10(CIFAR10):
        """torchvision's CIFAR-10 loader with one change: the integrity check verifies that the
        expected files exist instead of their md5 sums. Files written in the same format by tests
        (or re-packed copies) would fail the md5 check though they load identically; a truncated or
        foreign file still fails, in the unpickling, and becomes a DataError there. The download's
        archive is still md5-checked by torchvision."""

        # _load_meta calls check_integrity(path, meta["md5"]); md5 None means "the file exists"
        meta = {**CIFAR10.meta, "md5": None}

        def _check_integrity(self) -> bool:
            folder = os.path.join(self.root, self.base_folder)
            return all(os.path.isfile(os.path.join(folder, f)) for f, _ in self.train_list + self.test_list)

    return _CIFAR10


def load_cifar10(data_dir: str | os.PathLike, download: bool = False) -> ImageDataset:
    """CIFAR-10 (50,000 train / 10,000 test, 3x32x32) through torchvision's loader."""
    root, folder = _locate(data_dir, CIFAR_FOLDER)
    cls = _cifar_class()
    expected = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    if not download:
        if not folder.is_dir():
            raise DataError(f"data set folder {folder}: not found; {CIFAR_HOW}, or pass --download")
        missing = [f for f in expected if not (folder / f).is_file()]
        if missing:
            raise DataError(f"data set folder {folder}: missing {', '.join(missing)}; {CIFAR_HOW}, "
                            "or pass --download")
    try:
        if download:
            root.mkdir(parents=True, exist_ok=True)
        train = cls(str(root), train=True, download=download)
    except Exception as e:  # noqa: BLE001 - network and file errors alike become one line
        if download and not folder.is_dir():
            raise DataError(f"data set folder {folder}: download failed ({_one_line(e)}); {CIFAR_HOW} "
                            "by hand into " + str(root)) from None
        raise DataError(f"data set folder {folder}: unreadable ({_one_line(e)}); {CIFAR_HOW}") from None
    try:
        test = cls(str(root), train=False, download=False)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"data set folder {folder}: unreadable ({_one_line(e)}); {CIFAR_HOW}") from None

    names = [c.decode() if isinstance(c, bytes) else str(c) for c in train.classes]
    out = []
    for part, split in ((train, "data_batch_*"), (test, "test_batch")):
        x = torch.from_numpy(np.ascontiguousarray(part.data)).permute(0, 3, 1, 2).contiguous()
        y = torch.as_tensor(np.asarray(part.targets, dtype=np.int64))
        if len(y) != len(x) or (len(y) and (int(y.min()) < 0 or int(y.max()) >= len(names))):
            raise DataError(f"data set folder {folder}: {split} has {len(x)} images, {len(y)} labels "
                            f"for {len(names)} classes; {CIFAR_HOW}")
        out += [x, y]
    mean, std = channel_stats(out[0])
    return ImageDataset("cifar10", out[0], out[1], out[2], out[3], names, mean, std)


# --- Tiny ImageNet -------------------------------------------------------------------------------

TINY_FOLDER = "tiny-imagenet-200"
TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
TINY_HOW = f"expected the standard tiny-imagenet-200 folder ({TINY_URL}, unzipped)"
TINY_SIZE = 64
CACHE_FORMAT = 2


def _tiny_index(folder: Path) -> tuple[list[str], list[str], list[Path], list[int], list[Path], list[int]]:
    """(wnids sorted, class names, train paths, train labels, val paths, val labels); checks layout."""
    def bad(what: str) -> DataError:
        return DataError(f"data set folder {folder}: {what}; {TINY_HOW}")

    for p in ("wnids.txt", "words.txt", "train", "val/images", "val/val_annotations.txt"):
        if not (folder / p).exists():
            raise bad(f"missing {p}")
    # sorted, as torchvision's ImageFolder orders class folders: label k is the k-th wnid by name
    wnids = sorted({w.strip() for w in (folder / "wnids.txt").read_text().split() if w.strip()})
    if not wnids:
        raise bad("wnids.txt is empty")
    words: dict[str, str] = {}
    for line in (folder / "words.txt").read_text(errors="replace").splitlines():
        wnid, _, text = line.partition("\t")
        words[wnid.strip()] = text.split(",")[0].strip()
    names = [words.get(w) or w for w in wnids]
    label = {w: k for k, w in enumerate(wnids)}

    train_paths, train_y = [], []
    for w in wnids:
        d = folder / "train" / w / "images"
        files = sorted(e.name for e in os.scandir(d) if e.name.lower().endswith((".jpeg", ".jpg"))) \
            if d.is_dir() else []
        if not files:
            raise bad(f"no training images in train/{w}/images")
        train_paths += [d / f for f in files]
        train_y += [label[w]] * len(files)

    val_paths, val_y = [], []
    for n, line in enumerate((folder / "val/val_annotations.txt").read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2 or parts[1].strip() not in label:
            raise bad(f"val/val_annotations.txt line {n} names no known wnid: {line.strip()[:60]!r}")
        val_paths.append(folder / "val" / "images" / parts[0].strip())
        val_y.append(label[parts[1].strip()])
    if not val_paths:
        raise bad("val/val_annotations.txt lists no images")
    return wnids, names, train_paths, train_y, val_paths, val_y


def _decode_one(path: Path, folder: Path) -> np.ndarray:
    """One JPEG -> uint8 [64, 64, 3] (greyscale files are expanded to RGB)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            size = im.size
            arr = np.asarray(im.convert("RGB")) if size == (TINY_SIZE, TINY_SIZE) else None
    except Exception as e:  # noqa: BLE001 - a missing or broken file is one line naming it
        raise DataError(f"data set folder {folder}: cannot decode {path.relative_to(folder)} "
                        f"({_one_line(e)}); {TINY_HOW}") from None
    if arr is None:
        raise DataError(f"data set folder {folder}: {path.relative_to(folder)} is {size[0]}x{size[1]}, "
                        f"expected 64x64; {TINY_HOW}")
    return arr


def _decode_all(paths: list[Path], folder: Path, desc: str, progress: bool) -> Tensor:
    """JPEG files -> uint8 [N, 3, 64, 64]. PIL releases the GIL while decoding, so a few threads
    share the ~110k small files."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    out = torch.empty(len(paths), TINY_SIZE, TINY_SIZE, 3, dtype=torch.uint8)
    view = out.numpy()  # shares memory with ``out``
    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as ex:
        arrays = ex.map(lambda p: _decode_one(p, folder), paths)
        for i, arr in enumerate(tqdm(arrays, total=len(paths), desc=desc, unit="img",
                                     disable=not progress, leave=False)):
            view[i] = arr
    return out.permute(0, 3, 1, 2).contiguous()


def _read_cache(path: Path, fingerprint: dict) -> dict | None:
    """The cached tensors if the cache is readable and matches the folder's index, else None."""
    if not path.is_file():
        return None
    try:
        c = torch.load(path, map_location="cpu", weights_only=True)
        n_tr, n_va = fingerprint["n_train"], fingerprint["n_val"]
        ok = (isinstance(c, dict) and c.get("format") == CACHE_FORMAT
              and c.get("fingerprint") == fingerprint
              and c["train_x"].dtype == torch.uint8 and c["test_x"].dtype == torch.uint8
              and tuple(c["train_x"].shape) == (n_tr, 3, TINY_SIZE, TINY_SIZE)
              and tuple(c["test_x"].shape) == (n_va, 3, TINY_SIZE, TINY_SIZE)
              and c["train_y"].shape == (n_tr,) and c["test_y"].shape == (n_va,)
              and len(c["mean"]) == len(c["std"]) == 3)
    except Exception as e:  # noqa: BLE001 - any unreadable cache is rebuilt
        warnings.warn(f"{path}: unreadable cache ({_one_line(e)}); rebuilding it", stacklevel=3)
        return None
    if not ok:
        warnings.warn(f"{path}: cache does not match the folder; rebuilding it", stacklevel=3)
        return None
    return c


def tiny_cache_path(folder: Path, fingerprint: dict, cache_dir: str | os.PathLike | None) -> Path:
    """<cache_dir>/tinyimagenet-<key>.pt (default cache_dir: default_cache_dir(), never inside the
    data folder); the key hashes the folder's absolute path and its fingerprint."""
    import hashlib

    key = hashlib.sha256(f"{folder.resolve()}|{fingerprint['files']}|v{CACHE_FORMAT}".encode())
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return base / f"tinyimagenet-{key.hexdigest()[:24]}.pt"


def _files_digest(folder: Path, paths: list[Path]) -> str:
    """stats_digest of every file's path (relative to folder), size and mtime."""
    from superlens.active.folders import stats_digest

    def stat(p: Path) -> tuple[str, object, object]:
        try:
            st = p.stat()
            return str(p.relative_to(folder)), st.st_size, st.st_mtime_ns
        except OSError:  # a listed file that is missing: the decode names it
            return str(p.relative_to(folder)), "missing", ""

    return stats_digest(stat(p) for p in paths)


def load_tiny_imagenet(data_dir: str | os.PathLike, download: bool = False,
                       progress: bool = True,
                       cache_dir: str | os.PathLike | None = None) -> ImageDataset:
    """Tiny ImageNet (200 classes, 100,000 train / 10,000 val used as test, 3x64x64).

    The first load decodes every JPEG and caches the uint8 tensors in
    <cache_dir>/tinyimagenet-<key>.pt (atomic write; default cache_dir: the user's cache folder,
    never inside the data folder); later loads read the cache when it matches the folder's wnids,
    image counts and every file's path, size and mtime.
    """
    from superlens.runs import atomic_save_torch

    root, folder = _locate(data_dir, TINY_FOLDER)
    if not folder.is_dir():
        if not download:
            raise DataError(f"data set folder {folder}: not found; {TINY_HOW}, or pass --download")
        try:
            root.mkdir(parents=True, exist_ok=True)
            fetch_archive = import_torchvision().datasets.utils.download_and_extract_archive
            fetch_archive(TINY_URL, str(root), md5=TINY_MD5)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"data set folder {folder}: download failed ({_one_line(e)}); {TINY_HOW} "
                            f"by hand into {root}") from None
    wnids, names, tr_paths, tr_y, va_paths, va_y = _tiny_index(folder)
    fingerprint = {"wnids": wnids, "n_train": len(tr_paths), "n_val": len(va_paths),
                   "files": _files_digest(folder, tr_paths + va_paths)}
    cache_path = tiny_cache_path(folder, fingerprint, cache_dir)
    c = _read_cache(cache_path, fingerprint)
    if c is None:
        c = {"format": CACHE_FORMAT, "fingerprint": fingerprint,
             "train_x": _decode_all(tr_paths, folder, "tiny-imagenet train", progress),
             "train_y": torch.tensor(tr_y, dtype=torch.int64),
             "test_x": _decode_all(va_paths, folder, "tiny-imagenet val", progress),
             "test_y": torch.tensor(va_y, dtype=torch.int64)}
        c["mean"], c["std"] = (list(v) for v in channel_stats(c["train_x"]))
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_save_torch(cache_path, c)
        except OSError as e:  # an unwritable cache folder: work on, decode again next time
            warnings.warn(f"{cache_path}: cannot write the cache ({_one_line(e)})", stacklevel=2)
    return ImageDataset("tiny-imagenet", c["train_x"], c["train_y"], c["test_x"], c["test_y"], names,
                        tuple(float(v) for v in c["mean"]), tuple(float(v) for v in c["std"]))


# --- which loader a folder needs (the image-folder loader itself: superlens.active.folders) -------


def detect_layout(data_dir: str | os.PathLike) -> str:
    """The data set a folder's layout shows: "cifar10" (cifar-10-batches-py/, or that folder),
    "tiny-imagenet" (tiny-imagenet-200/, or that folder) or "image-folder" (train/ plus test/ or
    val/, each holding class folders). Anything else is a DataError naming the folder."""
    d = Path(data_dir).expanduser()
    if not d.is_dir():
        raise DataError(f"data folder {d}: not found")
    if d.name == CIFAR_FOLDER or (d / CIFAR_FOLDER).is_dir():
        return "cifar10"
    if d.name == TINY_FOLDER or (d / TINY_FOLDER).is_dir():
        return "tiny-imagenet"
    if (d / "train").is_dir() and ((d / "test").is_dir() or (d / "val").is_dir()):
        return "image-folder"
    raise DataError(f"data folder {d}: no known layout; {FOLDER_HOW}, or {CIFAR_FOLDER}/ (CIFAR-10 "
                    f"python batches), or {TINY_FOLDER}/")


def balanced_subset(ds: ImageDataset, n: int, seed: int, split: str = "train") -> ImageDataset:
    """The data set with one split cut to ``n`` images, n // K of each of the K classes (the first
    n mod K classes one more), drawn at random by ``seed``; the other split unchanged. Cutting the
    training split recomputes mean and std on the subset (it is all the study trains on).
    n >= the split's size: as is."""
    if split == "test":
        T = int(ds.test_y.shape[0])
        if n >= T:
            return ds
        keep = _balanced_indices(ds.test_y, ds.n_classes, n, seed, ds.class_names, "test_size")
        return ImageDataset(ds.name, ds.train_x, ds.train_y, ds.test_x[keep].contiguous(),
                            ds.test_y[keep].contiguous(), list(ds.class_names), ds.mean, ds.std)
    N = int(ds.train_y.shape[0])
    if n >= N:
        return ds
    keep = _balanced_indices(ds.train_y, ds.n_classes, n, seed, ds.class_names, "pool_size")
    x = ds.train_x[keep].contiguous()
    mean, std = channel_stats(x)
    return ImageDataset(ds.name, x, ds.train_y[keep].contiguous(), ds.test_x, ds.test_y,
                        list(ds.class_names), mean, std)


def _balanced_indices(y: Tensor, K: int, n: int, seed: int, names, field: str) -> Tensor:
    """Sorted indices of n // K random members of each class (the first n mod K classes one more)."""
    g = torch.Generator().manual_seed(int(seed))
    keep = []
    for k in range(K):
        want = n // K + (1 if k < n % K else 0)
        idx = (y == k).nonzero().squeeze(1)
        if idx.numel() < want:
            raise ConfigError(f"{field} = {n}: class {names[k]!r} has {idx.numel()} images, fewer "
                              f"than its share {want}; lower {field}")
        keep.append(idx[torch.randperm(idx.numel(), generator=g)[:want]])
    return torch.cat(keep).sort().values


__all__ = ["ImageDataset", "NORMALIZATIONS", "KNOWN", "load_dataset", "normalize_batch",
           "resolve_normalization", "channel_stats", "load_digits", "make_synthetic", "load_cifar10",
           "load_tiny_imagenet", "load_image_folder", "balanced_subset", "detect_layout", "default_cache_dir"]

