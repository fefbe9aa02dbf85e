"""Image data sets of the active-learning study behind one interface, and batch normalisation.

Every data set is held whole in memory as uint8 [N, C, H, W] tensors (CIFAR-10's 50k training images
are 150 MB, Tiny ImageNet's 100k are 1.2 GB); batches are converted to float, resized and normalised
on the training device by ``normalize_batch``, so no data loader workers are needed.
The data set type and its channel statistics live in superlens.active.dataset, the image-folder
loader in superlens.active.folders, and the one decode-and-cache path of image files (folders, Tiny
ImageNet) in superlens.active.image_cache.

    ds = load_dataset("digits", seed=0)                 # offline, 8x8, 10 classes
    mean_std = resolve_normalization("dataset", ds)     # or "cifar-paper", "imagenet", "none"
    x = normalize_batch(ds.train_x[:128].to(device), *(mean_std or (None, None)), image_size=None)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from superlens.active.dataset import ImageDataset, Stats, channel_stats
from superlens.active.folders import FOLDER_HOW, load_image_folder
from superlens.active.image_cache import ImageFiles, check_cache_dir, decoded_dataset
from superlens.errors import ConfigError, DataError
from superlens.errors import one_line as _one_line
from superlens.vision import import_torchvision

# Per-channel (mean, std) in [0, 1] units. "dataset" is not here: it means the ImageDataset's own
# statistics, so callers resolve it with resolve_normalization(kind, ds).
NORMALIZATIONS: dict[str, Stats | None] = {
    # the paper's CIFAR-10 code (the widely copied values; not the exact CIFAR-10 std)
    "cifar-paper": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "none": None,  # x / 255 only
}


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


# ---------------------------------------------------------------------------------------------
# the loaders

KNOWN = ("cifar10", "tiny-imagenet", "image-folder", "digits", "synthetic")
_TREE = "DIR/train/<class>/*.jpg and DIR/test/<class>/*.jpg"
# what --data-dir must hold, per data set that reads one (the missing-folder message)
NEEDS_FOLDER = {
    "cifar10": f"DIR holding CIFAR-10 as an image-folder tree of JPEGs ({_TREE}) or as the python "
               "batches (DIR/cifar-10-batches-py/, which --download fetches where the network allows)",
    "image-folder": f"DIR holding an image-folder tree ({_TREE}, or val/ for test/)",
    "tiny-imagenet": "DIR holding tiny-imagenet-200/ (or that folder itself; --download fetches it "
                     "where the network allows)",
}


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, download: bool = False,
                 seed: int = 0, test_fraction: float = 0.2, progress: bool = True,
                 cache_dir: str | os.PathLike | None = None, image_size: int | None = None,
                 pending: list[Callable[[], None]] | None = None) -> ImageDataset:
    """Load a data set by name.

    image-folder: ``data_dir`` is a train/<class>/... + test/ (or val/) tree, decoded once into
    ``cache_dir`` (load_image_folder); image_size resizes while decoding (needed when the images
    have mixed sizes).
    cifar10, tiny-imagenet: from ``data_dir`` (the folder that holds cifar-10-batches-py/ or
    tiny-imagenet-200/, or that folder itself), with their fixed test sets (Tiny ImageNet: val/);
    ``download`` fetches them where the network allows. seed and test_fraction are unused there.
    digits, synthetic: generated offline, split into train/test by a stratified split of
    ``test_fraction`` seeded by ``seed``.
    progress: a progress bar while decoding image files (once; then a cache is read).
    pending: when a list, a fresh decode's cache write is appended to it instead of done
    (superlens.active.image_cache.decoded_dataset), so the caller writes nothing until its checks
    have passed.
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
        raise DataError(f"dataset {name}: needs --data-dir DIR (data_dir), {NEEDS_FOLDER[name]}")
    if name == "cifar10":
        return load_cifar10(data_dir, download=download)
    check_cache_dir(cache_dir, data_dir)
    if name == "image-folder":
        return load_image_folder(data_dir, cache_dir=cache_dir, image_size=image_size,
                                 progress=progress, pending=pending)
    return load_tiny_imagenet(data_dir, download=download, progress=progress, cache_dir=cache_dir,
                              pending=pending)


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


def load_tiny_imagenet(data_dir: str | os.PathLike, download: bool = False,
                       progress: bool = True, cache_dir: str | os.PathLike | None = None,
                       pending: list[Callable[[], None]] | None = None) -> ImageDataset:
    """Tiny ImageNet (200 classes, 100,000 train / 10,000 val used as test, 3x64x64).

    Every JPEG is decoded once and cached as superlens.active.image_cache says (keyed by the
    folder and every file's path, size and mtime); ``pending``: see decoded_dataset.
    """
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
    files = ImageFiles("tinyimagenet", folder, names, [str(p) for p in tr_paths], tr_y,
                       [str(p) for p in va_paths], va_y, test_split="val",
                       expected=(TINY_SIZE, TINY_SIZE), size_hint=TINY_HOW)
    return decoded_dataset(files, "tiny-imagenet", cache_dir=cache_dir, progress=progress,
                           pending=pending)


# --- which loader a folder needs (the image-folder loader itself: superlens.active.folders) -------


def _layout_here(d: Path) -> str | None:
    if d.name == CIFAR_FOLDER or (d / CIFAR_FOLDER).is_dir():
        return "cifar10"
    if d.name == TINY_FOLDER or (d / TINY_FOLDER).is_dir():
        return "tiny-imagenet"
    if (d / "train").is_dir() and ((d / "test").is_dir() or (d / "val").is_dir()):
        return "image-folder"
    return None


LAYOUTS = (f"{FOLDER_HOW}; or DIR/{CIFAR_FOLDER}/ (the CIFAR-10 python batches); or "
           f"DIR/{TINY_FOLDER}/ (Tiny ImageNet)")


def detect_layout(data_dir: str | os.PathLike) -> str:
    """The data set a folder's layout shows: "cifar10" (cifar-10-batches-py/, or that folder),
    "tiny-imagenet" (tiny-imagenet-200/, or that folder) or "image-folder" (train/ plus test/ or
    val/, each holding class folders). Anything else is a DataError naming the folder, what is
    missing and the layouts expected."""
    d = Path(data_dir).expanduser()
    if not d.is_dir():
        raise DataError(f"data folder {d}: not found" if not d.exists()
                        else f"data folder {d}: not a directory")
    found = _layout_here(d)
    if found is not None:
        return found
    if (d / "train").is_dir():
        raise DataError(f"data folder {d}: has train/ but no test/ (or val/) folder beside it; "
                        f"{FOLDER_HOW}")
    if (d / "test").is_dir() or (d / "val").is_dir():
        split = "test" if (d / "test").is_dir() else "val"
        raise DataError(f"data folder {d}: has {split}/ but no train/ folder beside it; {FOLDER_HOW}")
    for sub in sorted(p for p in d.iterdir() if p.is_dir()):  # one level too deep?
        inner = _layout_here(sub)
        if inner is not None:
            raise DataError(f"data folder {d}: no known layout here, but its subfolder {sub.name}/ "
                            f"holds a {inner} layout; pass --data-dir {sub}")
    raise DataError(f"data folder {d}: no known layout (no train/ and test/ folders); {LAYOUTS}")


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
           "load_tiny_imagenet", "load_image_folder", "balanced_subset", "detect_layout"]

