"""The paper and sound presets run through the real loaders on generated files in the real formats."""
import json

import numpy as np
import pytest
import torch
import torchvision

from superlens.active.presets import PRESET_WHY, PRESETS
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


@pytest.mark.slow
def test_paper_cifar10_protocol(cifar_dir, resnet_weights, tmp_path):
    out = tmp_path / "paper"
    assert main(["active", "--preset", "paper-cifar10", "--data-dir", str(cifar_dir),
                 "--weights-path", str(resnet_weights), "--out", str(out), *TINY_RUN]) == 0
    cfg = json.loads((out / "config.json").read_text())
    for k, v in PRESETS["paper-cifar10"].items():
        if k == "amp":  # config.json holds amp as used: on CUDA only
            assert cfg[k] == (v and cfg["device"].startswith("cuda")), k
        elif k not in ("epochs", "batch_size", "initial_pool", "rounds", "query_size"):
            assert cfg[k] == v, k
    meta = json.loads((out / "meta.json").read_text())
    assert "paper's code" in meta["protocol"] and meta["n_train"] == 150
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) - {"verdicts"} == {"baseline", "least-confidence"}
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


@pytest.mark.slow
def test_sound_cifar10_preset(cifar_dir, tmp_path):
    out = tmp_path / "sound"
    assert main(["active", "--preset", "cifar10", "--data-dir", str(cifar_dir), "--out", str(out),
                 "--strategies", "least-confidence,coreset", "--seeds", "1", *TINY_RUN]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "resnet18-cifar" and cfg["round_training"] == "scratch" and cfg["augment"]
    assert "sound" in json.loads((out / "meta.json").read_text())["protocol"]


@pytest.mark.slow
def test_sound_tiny_imagenet_preset(tmp_path):
    write_tiny(tmp_path, per_class=30, val_per_class=10)  # 3 classes: 90 train, 30 test
    out = tmp_path / "tin"
    assert main(["active", "--preset", "tiny-imagenet", "--data-dir", str(tmp_path), "--out",
                 str(out), "--strategies", "entropy", "--seeds", "1", "--epochs", "1",
                 "--batch-size", "16", "--initial-pool", "30", "--rounds", "1", "--query-size", "15",
                 "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) - {"verdicts"} == {"baseline", "entropy"}


@pytest.mark.slow
def test_paper_tiny_imagenet_protocol(resnet_weights, tmp_path, monkeypatch):
    """The paper-tiny-imagenet preset end to end on a generated tiny-imagenet-200/ folder: resize to
    the configured side (the preset's 224; 32 here, through a config file, to stay fast), ImageNet
    normalisation, and the paper protocol's flags."""
    import superlens.active.data as data
    import superlens.active.loop as loop
    import superlens.active.train as train

    assert PRESETS["paper-tiny-imagenet"]["image_size"] == 224
    x = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    assert data.normalize_batch(x, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                                image_size=224).shape == (2, 3, 224, 224)

    write_tiny(tmp_path, per_class=30, val_per_class=10)  # 3 classes: 90 train, 30 test
    seen, shuffles = [], []
    real_norm, real_train = data.normalize_batch, loop.train_epochs

    def norm_spy(x, mean, std, image_size=None):
        out = real_norm(x, mean, std, image_size=image_size)
        seen.append((tuple(out.shape[-2:]), mean, std, x.float().mean((0, 2, 3)) / 255,
                     out.mean((0, 2, 3))))
        return out

    def train_spy(*a, **k):
        shuffles.append(k["shuffle"])
        return real_train(*a, **k)
    monkeypatch.setattr(data, "normalize_batch", norm_spy)
    monkeypatch.setattr(train, "normalize_batch", norm_spy)
    monkeypatch.setattr(loop, "train_epochs", train_spy)
    (tmp_path / "small.toml").write_text("image_size = 32\n")
    out = tmp_path / "paper-tin"
    assert main(["active", "--preset", "paper-tiny-imagenet", "--config", str(tmp_path / "small.toml"),
                 "--data-dir", str(tmp_path), "--weights-path", str(resnet_weights), "--out", str(out),
                 "--epochs", "1", "--batch-size", "16", "--initial-pool", "30", "--rounds", "1",
                 "--query-size", "15", "--quiet"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["image_size"] == 32 and cfg["preset"] == "paper-tiny-imagenet"
    for k in ("pretrained", "paper_features", "shuffle_rounds"):
        assert cfg[k] is True, k
    assert cfg["amp"] is cfg["device"].startswith("cuda")  # the preset's amp = true, as used
    assert cfg["shuffle"] is False and cfg["augment"] is False and cfg["normalize"] == "imagenet"
    assert cfg["round_training"] == "paper" and cfg["model"] == "resnet18"
    # every batch the model saw: 32 x 32 (from 64 x 64), ImageNet statistics
    imagenet = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert seen and all(s[0] == (32, 32) for s in seen)
    assert all(tuple(map(float, s[1])) == imagenet[0] and tuple(map(float, s[2])) == imagenet[1]
               for s in seen)
    m_in, m_out = seen[0][3], seen[0][4]  # a resize keeps the channel means: out = (in - mean) / std
    assert torch.allclose(m_out, (m_in - torch.tensor(imagenet[0])) / torch.tensor(imagenet[1]),
                          atol=0.05)
    # the baseline trains unshuffled, the active-learning rounds shuffled
    assert shuffles == [False, True, True]
    meta = json.loads((out / "meta.json").read_text())
    assert "paper's code" in meta["protocol"] and meta["n_train"] == 90 and meta["n_test"] == 30
    assert "Baseline training batches unshuffled; active-learning rounds' training batches shuffled" \
        in meta["protocol"]
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) - {"verdicts"} == {"baseline", "least-confidence"}
    assert [r["labelled"] for r in m["least-confidence"]["rounds"]] == [30, 45]
    meas = json.loads((out / "measures" / "least-confidence_seed0.json").read_text())["measures"]
    assert "twice" in meas["cos_features"]


def test_paper_presets_use_the_papers_tsne():
    """Under the paper presets the *_tsne measures come from scikit-learn's TSNE(random_state=42)."""
    from sklearn.manifold import TSNE

    from superlens.active.presets import PRESET_WHY, PRESETS
    from superlens.measures.summary import feature_measures

    assert PRESETS["paper-cifar10"]["tsne"] == PRESETS["paper-tiny-imagenet"]["tsne"] == "sklearn"
    assert PRESETS["cifar10"].get("tsne", "opentsne") == "opentsne"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    y = np.repeat(np.arange(3), 20)
    _, arrays = feature_measures(torch.from_numpy(x), torch.from_numpy(y), n_classes=3, seed=7,
                                 tsne_points=100, tsne="sklearn")
    ref = TSNE(n_components=2, random_state=42, perplexity=min(30.0, 59 / 3)).fit_transform(x)
    assert np.allclose(arrays["tsne_embedding"], ref, atol=1e-5)


def test_the_higher_budget_preset_resolves_and_its_plan_fits():
    """cifar10-cpu-5k: the sound protocol at 1,000 -> 5,000 labels of a 20,000-image pool, with
    augmentation; its plan passes the checks a run makes before training, and the report says why."""
    from superlens.active.loop import validate_plan
    from superlens.active.study import config_from_cli
    from superlens.errors import ConfigError

    cfg = config_from_cli("cifar10-cpu-5k", None, {})
    assert cfg.round_training == "scratch" and cfg.augment and cfg.threads == 1
    assert cfg.initial_pool + cfg.rounds * cfg.query_size == 5000 <= cfg.pool_size
    assert cfg.query_size <= cfg.candidates <= cfg.pool_size
    assert set(cfg.strategies) == {"least-confidence", "random"} and cfg.delta["accuracy"] > 0
    validate_plan(cfg, cfg.pool_size)  # raises on a plan that cannot run
    with pytest.raises(ConfigError, match="query_size"):
        validate_plan(cfg, 4999)  # the pool the plan needs, and no smaller
    assert "cifar10-cpu-5k" in PRESET_WHY and any("5,000" in w for w in PRESET_WHY["cifar10-cpu-5k"])
