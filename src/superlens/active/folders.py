"""Image-folder trees (train/<class>/*.jpg + test/ or val/<class>/...): their layout, index and
loading, through the one decode-and-cache path (superlens.active.image_cache).

    index = image_folder_index("~/data/pets")            # read-only: classes, paths, fingerprint
    ds = load_image_folder("~/data/pets", image_size=64)  # ImageDataset; a second call reads the cache

superlens.active.data dispatches "image-folder" to load_image_folder.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from superlens.active.dataset import ImageDataset
from superlens.active.image_cache import ImageFiles, decoded_dataset
from superlens.errors import DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
FOLDER_HOW = ("expected an image-folder tree: DIR/train/<class>/*.{jpg,jpeg,png} and "
              "DIR/test/<class>/... (or DIR/val/<class>/...), at least two class folders")
RESIZE_HINT = ("the images have mixed sizes (or are not square); pass --image-size N (image_size) "
               "to resize every image to N x N")


def _class_dirs(root: Path, split: str) -> list[str]:
    """The class folders of one split, sorted; a name that is not UTF-8 is refused (it would become
    a label on the page and in the JSON files)."""
    names = sorted(e.name for e in os.scandir(root / split) if e.is_dir() and not e.name.startswith("."))
    for n in names:
        try:
            n.encode("utf-8")
        except UnicodeEncodeError:
            shown = os.fsencode(n).decode("utf-8", "backslashreplace")
            raise DataError(f"data folder {root}: class folder {split}/{shown} has a name that is not "
                            "UTF-8; rename it (class names become labels)") from None
    return names


def _split_files(root: Path, split: str, classes: list[str]) -> tuple[list[str], list[int]]:
    """(paths, labels) of one split; an empty class folder is refused."""
    paths, labels = [], []
    for k, c in enumerate(classes):
        names = sorted(e.name for e in os.scandir(root / split / c)
                       if e.is_file() and e.name.lower().endswith(IMAGE_EXTS))
        if not names:
            raise DataError(f"data folder {root}: class folder {split}/{c} has no images "
                            f"({', '.join(IMAGE_EXTS)}); {FOLDER_HOW}")
        paths += [os.path.join(root, split, c, n) for n in names]
        labels += [k] * len(names)
    return paths, labels


def image_folder_files(data_dir: str | os.PathLike) -> ImageFiles:
    """Read-only index of an image-folder tree: its classes (train/'s class folders, sorted), the
    files of train/ and of test/ (or val/) with their labels, and their digest. Layout faults are
    one DataError line saying what is missing."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"data folder {root}: not found")
    if not (root / "train").is_dir():
        raise DataError(f"data folder {root}: no train/ folder; {FOLDER_HOW}")
    test_split = "test" if (root / "test").is_dir() else "val" if (root / "val").is_dir() else None
    if test_split is None:
        raise DataError(f"data folder {root}: has train/ but no test/ (or val/) folder beside it; "
                        f"{FOLDER_HOW}")
    classes = _class_dirs(root, "train")
    test_classes = _class_dirs(root, test_split)
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
    if len(classes) < 2:
        raise DataError(f"data folder {root}: one class folder (train/{classes[0]}); a classifier "
                        f"needs at least two; {FOLDER_HOW}")
    tr, tr_y = _split_files(root, "train", classes)
    te, te_y = _split_files(root, test_split, classes)
    return ImageFiles("imagefolder", root, classes, tr, tr_y, te, te_y, test_split=test_split,
                      size_hint=RESIZE_HINT)


def load_image_folder(data_dir: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                      image_size: int | None = None, progress: bool = True,
                      workers: int | None = None,
                      pending: list[Callable[[], None]] | None = None) -> ImageDataset:
    """An image-folder tree (train/<class>/*, test/<class>/* or val/<class>/*) as uint8 tensors.

    Class names are the folder names, labels their sorted order. Every image must have one square
    size, unless ``image_size`` is given: then each is resized to image_size x image_size while
    decoding. Decoded once in ``workers`` processes (default: all cores, at most 8) and cached as
    superlens.active.image_cache says (its rule for a changed folder or a foreign cache file);
    ``pending``: see decoded_dataset.
    """
    files = image_folder_files(data_dir)
    return decoded_dataset(files, files.root.name or "image-folder",
                           resize=int(image_size) if image_size is not None else None,
                           cache_dir=cache_dir, progress=progress, workers=workers, pending=pending)


__all__ = ["IMAGE_EXTS", "FOLDER_HOW", "image_folder_files", "load_image_folder"]
