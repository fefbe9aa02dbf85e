"""Image-folder trees (train/<class>/*, test/ or val/): layout detection, the decoded-image cache,
bad input refused before anything is written, and the real CIFAR-10 JPEG tree when it is present."""
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from superlens.active.verdicts import WORDS
import torch
from PIL import Image

import superlens.active.image_cache as IC
from superlens.active.data import balanced_subset, detect_layout
from superlens.active.folders import image_folder_files, load_image_folder
from superlens.active.image_cache import cache_path
from superlens.cli import main
from superlens.errors import DataError

CLASSES = ("cat", "dog", "frog")
REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


def make_tree(root: Path, n_train=6, n_test=3, size=12, test="test", ext="png") -> Path:
    """A 3-class tree; class k's images are bright in channel k, so a tiny CNN separates them."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), (test, n_test)):
        for k, c in enumerate(CLASSES):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
                a[:, :, k] += 150
                Image.fromarray(a).save(d / f"{i:03d}.{ext}")
    return root


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(d))  # the default cache folder, kept in tmp
    return d


def test_load_cache_and_refresh(tmp_path, cache, monkeypatch):
    root = make_tree(tmp_path / "data")
    assert detect_layout(root) == "image-folder"
    ds = load_image_folder(root, progress=False, workers=2)
    assert ds.train_x.shape == (18, 3, 12, 12) and ds.test_x.shape == (9, 3, 12, 12)
    assert ds.class_names == list(CLASSES) and ds.train_y.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    ref = np.asarray(Image.open(root / "train/dog/002.png").convert("RGB"))
    assert np.array_equal(ds.train_x[8].permute(1, 2, 0).numpy(), ref)  # pixels exactly (PNG)
    files = list((cache / "superlens").glob("imagefolder-*.pt"))
    assert len(files) == 1  # in the user's cache folder ...
    assert not any(p.suffix == ".pt" for p in root.rglob("*"))  # ... never in the data folder

    def no_decoding(*a, **k):
        raise AssertionError("decoded again although the cache matches the folder")

    with monkeypatch.context() as mp:
        mp.setattr(IC, "decode_files", no_decoding)
        again = load_image_folder(root, progress=False)
    assert torch.equal(again.train_x, ds.train_x) and again.mean == ds.mean

    # a changed folder (one file rewritten) has another fingerprint: decoded again, new cache file
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(root / "train/cat/000.png")
    os.utime(root / "train/cat/000.png", ns=(1, 1))
    changed = load_image_folder(root, progress=False, workers=1)
    assert int(changed.train_x[0].sum()) == 0
    assert len(list((cache / "superlens").glob("imagefolder-*.pt"))) == 2


def test_val_split_resize_and_balanced_subset(tmp_path, cache):
    root = make_tree(tmp_path / "data", test="val", ext="jpg")
    Image.fromarray(np.zeros((20, 16, 3), np.uint8)).save(root / "train/cat/odd.jpg")
    with pytest.raises(DataError, match=r"train/cat/odd.jpg is 16x20, expected 12x12; the images have mixed sizes.*--image-size"):
        load_image_folder(root, progress=False, workers=1)
    ds = load_image_folder(root, progress=False, image_size=8, workers=1)
    assert ds.train_x.shape == (19, 3, 8, 8) and ds.test_x.shape == (9, 3, 8, 8)
    sub = balanced_subset(ds, 6, seed=0)
    assert torch.bincount(sub.train_y).tolist() == [2, 2, 2] and torch.equal(sub.test_x, ds.test_x)
    test = balanced_subset(ds, 6, seed=0, split="test")
    assert torch.bincount(test.test_y).tolist() == [2, 2, 2] and torch.equal(test.train_x, ds.train_x)


def _refused(args, out: Path, capsys, match: str):
    code = main(["active", "--out", str(out), "--preset", "synthetic", "--quiet", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and match in err, err
    assert not out.exists()  # nothing written


@pytest.mark.parametrize("fault, match", [
    ("corrupt", "cannot decode train/dog/001.png"),
    ("empty", "class folder train/frog has no images"),
    ("classes", "different class folders (only in test/: bird)"),
    ("mixed", "the images have mixed sizes"),
    ("no-images", "no images"),
    ("no-layout", "no known layout"),
])
def test_bad_folders_are_refused(tmp_path, cache, capsys, fault, match):
    root = tmp_path / "data"
    if fault == "no-images":
        (root / "train").mkdir(parents=True)
        (root / "test").mkdir()
    elif fault == "no-layout":
        root.mkdir()
        (root / "photo.jpg").write_bytes(b"")
    else:
        make_tree(root)
    if fault == "corrupt":
        (root / "train/dog/001.png").write_bytes(b"not a png")
    elif fault == "empty":
        for f in (root / "train/frog").iterdir():
            f.unlink()
    elif fault == "classes":
        (root / "test/bird").mkdir()
        Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(root / "test/bird/0.png")
    elif fault == "mixed":
        Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(root / "test/cat/small.png")
    _refused(["--data-dir", str(root)], tmp_path / "run", capsys, match)
    assert not list(cache.rglob("*.pt"))


def test_cache_that_does_not_match_is_refused(tmp_path, cache, capsys):
    root = make_tree(tmp_path / "data")
    path = cache_path(image_folder_files(root), None, None)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00garbage")
    _refused(["--data-dir", str(root)], tmp_path / "run", capsys, "does not match data folder")
    assert path.read_bytes() == b"\x00garbage"  # the user's file is left as it was


def test_generated_dataset_with_data_dir_is_refused(tmp_path, capsys):
    root = make_tree(tmp_path / "data")
    _refused(["--data-dir", str(root), "--dataset", "synthetic"], tmp_path / "run", capsys,
             "reads no data folder")


@pytest.mark.slow
def test_active_runs_on_an_image_folder(tmp_path, capsys):
    """--data-dir with no dataset named: the layout picks image-folder; the existing flags work, the
    resize is recorded in config.json, and the sparse-autoencoder measure runs by default on every
    final model (feature layer and last conv block); --resume --sae rounds then adds every round's
    feature layer from the saved checkpoints (a cheap recipe here, see conftest.py)."""
    root = make_tree(tmp_path / "data", n_train=10, n_test=4, size=10)
    out = tmp_path / "run"
    args = ["active", "--out", str(out), "--data-dir", str(root), "--cache-dir",
            str(tmp_path / "c"), "--model", "small-cnn", "--epochs", "1", "--initial-pool", "9",
            "--rounds", "1", "--query-size", "6", "--candidates", "12", "--strategies",
            "least-confidence,random", "--seeds", "1", "--image-size", "8", "--tsne-points", "50",
            "--quiet"]
    code = main(args)
    assert code == 0, capsys.readouterr().err
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["dataset"] == "image-folder" and "resized to 8x8" in cfg["decode"]
    m = json.loads((out / "metrics.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    assert meta["n_train"] == 30 and meta["class_names"] == list(CLASSES)
    assert [r["labelled"] for r in m["random"]["rounds"]] == [9, 15]
    assert all("cos_mean" in r for r in m["random"]["rounds"])  # per-round measures
    v = m["verdicts"]
    assert {r["claim"] for r in v["rows"]} == {"accuracy", "more-superposition", "overlap",
                                                "clustering", "rounds"}
    assert set(v["claims"].values()) <= set(WORDS)
    html = (out / "report.html").read_text()
    assert "The paper&#x27;s claims, re-tested" in html and html.index("re-tested") < html.index(
        "side by side")
    assert cfg["sae"] == "final" and cfg["sae_recipe"]["steps"] == 30
    assert cfg["sae_recipe"]["max_gflop"] == cfg["sae_gflop"] == 50.0  # the default (digits) preset
    for name in ("baseline", "least-confidence", "random"):
        for k in ("sae_features", "sae_psi", "sae_fvu", "sae_l0", "sae_dead_fraction",
                  "sae_conv_features", "sae_conv_psi"):
            assert isinstance(m[name][k], float) and k + "_std" in m[name], (name, k)
        assert 0 < m[name]["sae_features"] <= m[name]["sae_dict_size"]
        assert m[name]["sae_psi"] == pytest.approx(m[name]["sae_features"] / 128)  # 128 wide
    assert "sae_features" not in m["random"]["rounds"][0]  # final only
    assert "sae_features" in m["random"]["rounds"][-1]

    code = main(args + ["--resume", "--sae", "rounds"])
    assert code == 0, capsys.readouterr().err
    m2 = json.loads((out / "metrics.json").read_text())
    assert all("sae_features" in r for r in m2["random"]["rounds"])
    assert m2["random"]["sae_features"] == m["random"]["sae_features"]  # the same recipe: kept

    # the models were measured side by side on single-threaded workers (one per core the run
    # allowed); measured again one after another on one thread, every value is the same
    for f in out.rglob("sae.json"):
        f.unlink()
    for f in (out / "measures").glob("*.json"):
        d = json.loads(f.read_text())
        d["measures"] = {k: v for k, v in d["measures"].items() if not k.startswith("sae_")}
        for info in d["rounds"]:
            for k in [k for k in info if k.startswith("sae_")]:
                del info[k]
        f.write_text(json.dumps(d))
    code = main(args + ["--resume", "--sae", "rounds", "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    m3 = json.loads((out / "metrics.json").read_text())
    for name in ("baseline", "least-confidence", "random"):
        assert {k: v for k, v in m3[name].items() if k.startswith("sae_") and "seconds" not in k} == \
            {k: v for k, v in m2[name].items() if k.startswith("sae_") and "seconds" not in k}, name


def test_candidates_fewer_than_query_size_refused(tmp_path, capsys):
    root = make_tree(tmp_path / "data")
    _refused(["--data-dir", str(root), "--initial-pool", "4", "--candidates", "5", "--query-size",
              "6"], tmp_path / "run",
             capsys, "candidates = 5")


@pytest.mark.skipif(not REAL.is_file(), reason=f"the real CIFAR-10 JPEG tree ({REAL}) is absent: a "
                    "fresh clone of the project has no ../shared/data")
def test_real_cifar10_tree(tmp_path, cache):
    """A slice of the real CIFAR-10 JPEG tree (30 training and 10 test images per class) decodes to
    32x32 RGB with the right classes; its pixel means are those of natural CIFAR images."""
    per = {"train": 30, "test": 10}
    seen: dict[tuple[str, str], int] = {}
    with tarfile.open(REAL) as tar:
        for m in tar:
            parts = Path(m.name).parts
            if not m.isfile() or len(parts) < 3:
                continue
            split, cls = parts[-3], parts[-2]
            if split in per and seen.get((split, cls), 0) < per[split]:
                seen[(split, cls)] = seen.get((split, cls), 0) + 1
                tar.extract(m, tmp_path / "x", filter="data")
    root = next(p.parent for p in (tmp_path / "x").rglob("train") if p.is_dir())
    assert detect_layout(root) == "image-folder"
    ds = load_image_folder(root, progress=False, workers=2)
    assert ds.class_names == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                              "horse", "ship", "truck"]
    assert ds.train_x.shape == (300, 3, 32, 32) and ds.test_x.shape == (100, 3, 32, 32)
    assert torch.bincount(ds.train_y).tolist() == [30] * 10
    # CIFAR-10's channel means are ~0.49 / 0.48 / 0.45: red >= green >= blue, all in 0.35..0.6
    assert all(0.35 < v < 0.6 for v in ds.mean) and ds.mean[0] > ds.mean[2]


def test_sweep_points_take_the_data_folders_layout(tmp_path):
    """A sweep's data_dir is never ignored either: with no dataset named its layout picks it, and
    cache_dir / image_size / pool sizes reach every point's config."""
    from superlens.config import SweepSpec
    from superlens.sweep.grid import expand

    root = make_tree(tmp_path / "data", n_train=10, n_test=4, size=10)
    base = {"preset": "synthetic", "data_dir": str(root), "cache_dir": str(tmp_path / "c"),
            "image_size": 8, "epochs": 1, "initial_pool": 9, "query_size": 6, "rounds": 1,
            "candidates": 12, "tsne_points": 50}
    spec = SweepSpec.build({"study": "active", "base": base,
                            "axes": {"strategy": ["random", "least-confidence"]}})
    points = expand(spec)
    for pt in points:
        c = pt.config
        assert c.dataset == "image-folder" and c.data_dir == str(root)
        assert c.cache_dir == str(tmp_path / "c") and c.image_size == 8 and c.candidates == 12
    named = SweepSpec.build({"study": "active", "base": {**base, "dataset": "synthetic"},
                             "axes": {"strategy": ["random"]}})
    with pytest.raises(Exception, match="reads no data folder"):
        expand(named)
