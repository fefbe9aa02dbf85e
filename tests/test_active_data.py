"""Data sets of the active-learning study: tiny folders in the real formats, loaded by the real paths."""
from __future__ import annotations

import os
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from superlens.active import data as D
from superlens.active.data import (NORMALIZATIONS, channel_stats, load_dataset, normalize_batch,
                                   resolve_normalization)
from superlens.errors import ConfigError, DataError

torch.set_num_threads(1)


def np_stats(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Reference per-channel mean / population std in [0, 1] units, by numpy."""
    a = x.numpy().astype(np.float64) / 255.0
    return a.mean(axis=(0, 2, 3)), a.std(axis=(0, 2, 3))


# --- digits and synthetic ---------------------------------------------------------------------------

def test_digits_matches_sklearn_and_stratified_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    ds = load_dataset("digits", seed=3, test_fraction=0.25)
    sk = load_digits()
    # the reference split: scikit-learn's own stratified split with the same seed
    tr, te = train_test_split(np.arange(len(sk.target)), test_size=0.25, random_state=3, stratify=sk.target)
    tr, te = np.sort(tr), np.sort(te)
    assert ds.train_x.shape == (len(tr), 1, 8, 8) and ds.test_x.shape == (len(te), 1, 8, 8)
    assert ds.train_x.dtype == torch.uint8 and ds.train_y.dtype == torch.int64
    assert len(tr) + len(te) == 1797
    expect = np.rint(sk.images * 255 / 16).astype(np.uint8)  # 0..16 -> 0..255
    assert np.array_equal(ds.train_x[:, 0].numpy(), expect[tr])
    assert np.array_equal(ds.test_y.numpy(), sk.target[te])
    assert int(ds.train_x.max()) == 255 and ds.n_classes == 10 and ds.class_names[3] == "3"
    assert (ds.in_channels, ds.image_size) == (1, 8)
    m, s = np_stats(ds.train_x)
    assert np.allclose(ds.mean, m, atol=1e-9) and np.allclose(ds.std, s, atol=1e-9)
    # stratified: every class holds ~25 % out (within one sample of the exact share)
    counts = np.bincount(sk.target)
    held = np.bincount(ds.test_y.numpy(), minlength=10)
    assert np.all(np.abs(held - 0.25 * counts) <= 1.0)


def test_synthetic_is_seeded_and_has_its_class_structure():
    a = load_dataset("synthetic", seed=1)
    b = load_dataset("synthetic", seed=1)
    c = load_dataset("synthetic", seed=2)
    assert torch.equal(a.train_x, b.train_x) and not torch.equal(a.train_x, c.train_x)
    assert a.train_x.shape[1:] == (1, 12, 12) and a.n_classes == 4
    assert len(a.train_y) + len(a.test_y) == 400
    assert torch.bincount(a.train_y).tolist() == [80] * 4  # stratified 20 % of 100 per class
    # the brightest pixel of a blurred image lies within ~2 px of its class's blob centre
    x = F.avg_pool2d(a.test_x.float(), 3, stride=1, padding=1)[:, 0]
    flat = x.flatten(1).argmax(1)
    rc = torch.stack([flat // 12, flat % 12], 1).float() + 0.0
    centers = torch.tensor(D.SYNTHETIC_CENTERS)[a.test_y]
    assert (rc - centers).abs().max(1).values.float().mean() < 1.5
    # nearest class mean (from train) classifies the held-out images almost perfectly
    means = torch.stack([a.train_x[a.train_y == k].float().mean(0).flatten() for k in range(4)])
    pred = torch.cdist(a.test_x.float().flatten(1), means).argmin(1)
    assert (pred == a.test_y).float().mean() > 0.95


def test_unknown_name_and_missing_data_dir():
    with pytest.raises(ConfigError, match="known: cifar10, tiny-imagenet, image-folder, digits, synthetic"):
        load_dataset("mnist")
    for name in ("cifar10", "tiny-imagenet"):
        with pytest.raises(DataError, match="--data-dir") as e:
            load_dataset(name, None)
        assert "\n" not in str(e.value)


# --- CIFAR-10 -----------------------------------------------------------------------------------------

def write_cifar(root: Path, n: int = 4, seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """A tiny cifar-10-batches-py/ in the real format: pickled dicts of 'data' uint8 [n, 3072]
    (1024 R, then G, then B values, rows first) and 'labels'; batches.meta holds 'label_names'.
    The real files are Python 2 pickles whose str keys torchvision reads (encoding='latin1') as
    str, so str keys here give what it sees (b'data' is how encoding='bytes' shows them)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels, "batch_label": name}, f, protocol=2)
        written[name] = (data, labels)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_vis": 3072}, f, protocol=2)
    return written


def test_cifar10_loads_a_tiny_folder_through_torchvision(tmp_path):
    w = write_cifar(tmp_path)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.train_x.shape == (20, 3, 32, 32) and ds.test_x.shape == (4, 3, 32, 32)
    data1, labels1 = w["data_batch_1"]
    # pixel (c, r, col) is data[c*1024 + r*32 + col]
    assert torch.equal(ds.train_x[0], torch.from_numpy(data1[0].reshape(3, 32, 32)))
    assert int(ds.train_x[1, 2, 5, 7]) == int(data1[1, 2 * 1024 + 5 * 32 + 7])
    assert ds.train_y[:4].tolist() == labels1 and ds.test_y.tolist() == w["test_batch"][1]
    assert torch.equal(ds.train_x[16], torch.from_numpy(w["data_batch_5"][0][0].reshape(3, 32, 32)))
    assert ds.class_names[0] == "airplane" and ds.n_classes == 10
    m, s = np_stats(ds.train_x)
    assert np.allclose(ds.mean, m, atol=1e-9) and np.allclose(ds.std, s, atol=1e-9)
    # data_dir may also be the batches folder itself
    again = load_dataset("cifar10", tmp_path / "cifar-10-batches-py")
    assert torch.equal(again.test_x, ds.test_x)


def test_cifar10_errors_are_one_line_and_say_how(tmp_path, monkeypatch):
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "cifar-10-batches-py") in msg
    assert "not found" in msg and "cifar-10-python.tar.gz" in msg and "--download" in msg

    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="missing data_batch_3"):
        load_dataset("cifar10", tmp_path)

    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle at all")
    with pytest.raises(DataError, match="unreadable") as e:
        load_dataset("cifar10", tmp_path)
    assert "\n" not in str(e.value)

    # --download without network: torchvision's download fails, and says so in one line
    import torchvision.datasets.cifar as tv_cifar

    def offline(*a, **k):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match="download failed") as e:
        load_dataset("cifar10", tmp_path / "elsewhere", download=True)
    assert "\n" not in str(e.value)


# --- Tiny ImageNet ----------------------------------------------------------------------------------

WNIDS = ["n02", "n01", "n03"]  # unsorted on purpose: labels follow sorted order, like ImageFolder


def write_tiny(root: Path, per_class: int = 4, val_per_class: int = 2) -> dict[str, np.ndarray]:
    """A tiny tiny-imagenet-200/: 3 classes of 64x64 JPEGs (smooth colour fields, which JPEG keeps
    almost exactly), one greyscale file, wnids.txt, words.txt and val_annotations.txt."""
    rng = np.random.default_rng(0)
    folder = root / "tiny-imagenet-200"
    images: dict[str, np.ndarray] = {}

    def save(path: Path, grey: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        base = rng.integers(30, 220, size=3)
        ramp = np.linspace(0, 20, 64)[None, :, None]
        arr = np.clip(base[None, None, :] + ramp, 0, 255).astype(np.uint8).repeat(64, 0)
        if grey:
            Image.fromarray(arr[..., 0]).save(path, quality=95)
        else:
            Image.fromarray(arr).save(path, quality=95)
        images[str(path.relative_to(folder))] = arr

    for w in WNIDS:
        for i in range(per_class):
            save(folder / "train" / w / "images" / f"{w}_{i}.JPEG", grey=(w == "n03" and i == 0))
        (folder / "train" / w / f"{w}_boxes.txt").write_text("")
    lines = []
    for k, w in enumerate(WNIDS):
        for i in range(val_per_class):
            name = f"val_{k * val_per_class + i}.JPEG"
            save(folder / "val" / "images" / name)
            lines.append(f"{name}\t{w}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    (folder / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (folder / "words.txt").write_text("n00\tentity\nn01\tgoldfish, Carassius auratus\n"
                                      "n02\tgreat white shark, white shark\nn03\ttiger shark\n")
    return images


def test_tiny_imagenet_loads_decodes_and_caches(tmp_path, monkeypatch):
    data, cache_home = tmp_path / "data", tmp_path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))  # the default cache folder, kept in tmp
    images = write_tiny(data)
    folder = data / "tiny-imagenet-200"
    ds = load_dataset("tiny-imagenet", data, progress=False)
    assert ds.train_x.shape == (12, 3, 64, 64) and ds.test_x.shape == (6, 3, 64, 64)
    assert ds.class_names == ["goldfish", "great white shark", "tiger shark"]  # sorted wnids, first name
    assert ds.train_y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert ds.test_y.tolist() == [1, 1, 0, 0, 2, 2]  # val lists n02, n01, n03 in that order
    # pixels: the decoded file (PIL), and close to what was encoded (JPEG keeps a smooth field)
    ref = np.asarray(Image.open(folder / "train/n01/images/n01_2.JPEG").convert("RGB"))
    assert np.array_equal(ds.train_x[2].permute(1, 2, 0).numpy(), ref)
    encoded = images["train/n01/images/n01_2.JPEG"].astype(int)
    assert np.abs(ref.astype(int) - encoded).mean() < 2
    grey = ds.train_x[8]  # n03_0.JPEG, greyscale on disk -> three equal channels
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    m, s = np_stats(ds.train_x)
    assert np.allclose(ds.mean, m, atol=1e-9) and np.allclose(ds.std, s, atol=1e-9)

    # the cache is in the user's cache folder, never inside the data folder
    caches = list((cache_home / "superlens").glob("tinyimagenet-*.pt"))
    assert len(caches) == 1
    cache = caches[0]
    assert not [p for p in data.rglob("*") if p.suffix == ".pt"]

    def no_decoding(*a, **k):
        raise AssertionError("decoded again although the cache is valid")

    import superlens.active.image_cache as IC

    monkeypatch.setattr(IC, "decode_files", no_decoding)
    cached = load_dataset("tiny-imagenet", folder, progress=False)
    assert torch.equal(cached.train_x, ds.train_x) and cached.class_names == ds.class_names
    assert cached.mean == ds.mean
    # an explicit cache_dir is used instead of the default
    own = tmp_path / "own-cache"
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    load_dataset("tiny-imagenet", folder, progress=False, cache_dir=own)
    assert len(list(own.glob("tinyimagenet-*.pt"))) == 1

    # a file under the cache's key that is not this folder's cache is refused (the one rule of
    # superlens.active.image_cache, the same as for image folders) and left as it was
    cache.write_bytes(b"\x00garbage")
    with pytest.raises(DataError, match="does not match data folder .*delete that file"):
        load_dataset("tiny-imagenet", data, progress=False)
    assert cache.read_bytes() == b"\x00garbage"
    cache.unlink()
    rebuilt = load_dataset("tiny-imagenet", data, progress=False)
    assert torch.equal(rebuilt.test_x, ds.test_x)
    assert torch.load(cache, weights_only=True)["train_x"].shape == (12, 3, 64, 64)

    # a new training image changes the fingerprint: the folder is decoded again (13 images)
    Image.fromarray(np.full((64, 64, 3), 7, np.uint8)).save(folder / "train/n02/images/n02_9.JPEG")
    grown = load_dataset("tiny-imagenet", data, progress=False)
    assert grown.train_x.shape[0] == 13 and grown.train_y.tolist().count(1) == 5
    # so does an image rewritten in place with the same name (size / mtime change)
    target = folder / "train/n01/images/n01_0.JPEG"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(target, quality=50)
    os.utime(target, ns=(1, 1))
    changed = load_dataset("tiny-imagenet", data, progress=False)
    assert int(changed.train_x[0].float().mean().round()) in range(195, 206)
    assert len(list((cache_home / "superlens").glob("tinyimagenet-*.pt"))) == 3


def test_tiny_imagenet_errors_name_the_path(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("tiny-imagenet", tmp_path)
    assert str(tmp_path / "tiny-imagenet-200") in str(e.value) and "tiny-imagenet-200.zip" in str(e.value)
    assert "--download" in str(e.value) and "\n" not in str(e.value)

    write_tiny(tmp_path)
    folder = tmp_path / "tiny-imagenet-200"
    ann = folder / "val" / "val_annotations.txt"
    text = ann.read_text()
    ann.unlink()
    with pytest.raises(DataError, match="missing val/val_annotations.txt"):
        load_dataset("tiny-imagenet", tmp_path, progress=False)
    ann.write_text(text + "val_x.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match="line 7 names no known wnid"):
        load_dataset("tiny-imagenet", tmp_path, progress=False)
    ann.write_text(text)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "train/n01/images/n01_1.JPEG")
    with pytest.raises(DataError, match="n01_1.JPEG is 32x32, expected 64x64"):
        load_dataset("tiny-imagenet", tmp_path, progress=False)
    (folder / "train/n01/images/n01_1.JPEG").write_bytes(b"\xff\xd8 broken")
    with pytest.raises(DataError, match="cannot decode train/n01/images/n01_1.JPEG"):
        load_dataset("tiny-imagenet", tmp_path, progress=False)


# --- normalisation --------------------------------------------------------------------------------

def test_normalize_batch_hand_worked():
    x = torch.tensor([0, 255, 51], dtype=torch.uint8).view(1, 1, 1, 3)
    # (0/255 - 0.5)/0.25 = -2, (1 - 0.5)/0.25 = 2, (0.2 - 0.5)/0.25 = -1.2
    out = normalize_batch(x, (0.5,), (0.25,))
    assert out.dtype == torch.float32
    assert torch.allclose(out.flatten(), torch.tensor([-2.0, 2.0, -1.2]), atol=1e-6)
    assert torch.allclose(normalize_batch(x, None, None).flatten(), torch.tensor([0.0, 1.0, 0.2]))
    # per channel: channel 1 uses mean 0 / std 0.5
    x2 = torch.full((2, 2, 3, 3), 51, dtype=torch.uint8)
    out2 = normalize_batch(x2, (0.2, 0.0), (1.0, 0.5))
    assert torch.allclose(out2[:, 0], torch.zeros(2, 3, 3), atol=1e-6)
    assert torch.allclose(out2[:, 1], torch.full((2, 3, 3), 0.4), atol=1e-6)
    with pytest.raises(ValueError):
        normalize_batch(x2, (0.1, 0.2, 0.3), (1, 1, 1))


def test_normalize_batch_resizes_like_torchvision():
    from torchvision.transforms.functional import InterpolationMode, resize

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8, generator=g)
    mean, std = NORMALIZATIONS["imagenet"]
    for size in (20, 5):
        out = normalize_batch(x, mean, std, image_size=size)
        ref = resize(x.float() / 255, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=True)
        ref = (ref - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        assert out.shape == (2, 3, size, size)
        assert torch.allclose(out, ref, atol=1e-5)
    flat = torch.full((1, 1, 8, 8), 100, dtype=torch.uint8)  # a constant image stays constant
    assert torch.allclose(normalize_batch(flat, None, None, image_size=32), torch.full((1, 1, 32, 32), 100 / 255))
    assert torch.equal(normalize_batch(x, None, None, image_size=8), x.float() / 255)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_normalize_batch_on_cuda_matches_cpu():
    x = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    mean, std = NORMALIZATIONS["cifar-paper"]
    out = normalize_batch(x.cuda(), mean, std, image_size=24)
    assert out.device.type == "cuda"
    assert torch.allclose(out.cpu(), normalize_batch(x, mean, std, image_size=24), atol=1e-5)


def test_resolve_normalization():
    ds = load_dataset("digits")
    assert resolve_normalization("dataset", ds) == (ds.mean, ds.std)
    assert resolve_normalization("none", ds) is None
    with pytest.raises(ConfigError, match="3-channel statistics but data set digits has 1"):
        resolve_normalization("imagenet", ds)
    with pytest.raises(ConfigError, match="known: dataset, cifar-paper, imagenet, none"):
        resolve_normalization("zscore", ds)
    rgb = D.ImageDataset("rgb", torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.zeros(1, dtype=torch.int64),
                         torch.zeros(1, 3, 4, 4, dtype=torch.uint8), torch.zeros(1, dtype=torch.int64),
                         ["a"], (0.0,) * 3, (1.0,) * 3)
    assert resolve_normalization("cifar-paper", rgb) == ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))


def test_channel_stats_chunked_equals_numpy_and_guards_constant_channel():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (37, 3, 5, 5), dtype=torch.uint8, generator=g)
    x[:, 2] = 9  # a constant channel: std would be 0
    m, s = channel_stats(x, chunk_elements=100)  # 1 image per chunk
    mr, sr = np_stats(x)
    assert np.allclose(m, mr, atol=1e-12) and np.allclose(s[:2], sr[:2], atol=1e-12)
    assert s[2] == 1.0 and abs(m[2] - 9 / 255) < 1e-12
