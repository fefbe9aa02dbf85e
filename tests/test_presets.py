"""The paper and sound presets run through the real loaders on generated files in the real formats."""
import json

import pytest
import torch
import torchvision

from superlens.active.presets import PRESETS
from superlens.cli import main
from test_active_data import write_cifar, write_tiny  # the tests' own generators of real-format files

TINY_RUN = ["--epochs", "1", "--batch-size", "16", "--initial-pool", "40", "--rounds", "1",
            "--query-size", "20", "--quiet"]


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_cifar(root, n=30)  # 150 training images, 30 test images
    return root


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory):
    """A local torchvision resnet18 state_dict standing in for the ImageNet download."""
    path = tmp_path_factory.mktemp("w") / "resnet18.pt"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def test_paper_cifar10_protocol(cifar_dir, resnet_weights, tmp_path):
    out = tmp_path / "paper"
    assert main(["active", "--preset", "paper-cifar10", "--data-dir", str(cifar_dir),
                 "--weights-path", str(resnet_weights), "--out", str(out), *TINY_RUN]) == 0
    cfg = json.loads((out / "config.json").read_text())
    for k, v in PRESETS["paper-cifar10"].items():
        if k not in ("epochs", "batch_size", "initial_pool", "rounds", "query_size"):
            assert cfg[k] == v, k
    meta = json.loads((out / "meta.json").read_text())
    assert "paper's code" in meta["protocol"] and meta["n_train"] == 150
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) == {"baseline", "least-confidence"}
    assert [r["labelled"] for r in m["least-confidence"]["rounds"]] == [40, 60]
    # cos_* come from the notebook's quirky extractor (last block twice), as the paper's did
    for name in ("baseline", "least-confidence"):
        meas = json.loads((out / "measures" / f"{name}_seed0.json").read_text())["measures"]
        assert "twice" in meas["cos_features"]
    assert "applied twice" in (out / "report.html").read_text()


def test_paper_preset_without_weights_is_one_clear_line(cifar_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-hub"))
    out = tmp_path / "p"
    code = main(["active", "--preset", "paper-cifar10", "--data-dir", str(cifar_dir), "--out",
                 str(out), *TINY_RUN])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "weights" in err
    assert not out.exists()


def test_sound_cifar10_preset(cifar_dir, tmp_path):
    out = tmp_path / "sound"
    assert main(["active", "--preset", "cifar10", "--data-dir", str(cifar_dir), "--out", str(out),
                 "--strategies", "least-confidence,coreset", "--seeds", "1", *TINY_RUN]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "resnet18-cifar" and cfg["round_training"] == "scratch" and cfg["augment"]
    assert "sound" in json.loads((out / "meta.json").read_text())["protocol"]


def test_sound_tiny_imagenet_preset(tmp_path):
    write_tiny(tmp_path, per_class=30, val_per_class=10)  # 3 classes: 90 train, 30 test
    out = tmp_path / "tin"
    assert main(["active", "--preset", "tiny-imagenet", "--data-dir", str(tmp_path), "--out",
                 str(out), "--strategies", "entropy", "--seeds", "1", "--epochs", "1",
                 "--batch-size", "16", "--initial-pool", "30", "--rounds", "1", "--query-size", "15",
                 "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) == {"baseline", "entropy"}
