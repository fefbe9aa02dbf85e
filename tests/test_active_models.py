"""Models of the active-learning study: shapes, the classifier head, feature hooks, weight loading."""
from __future__ import annotations

import urllib.error

import pytest
import torch
import torch.hub
from torch import nn

from superlens.active.models import (FeatureHook, build_model, default_feature_layer,
                                     paper_double_block_features)
from superlens.errors import CheckpointError, ConfigError

torch.set_num_threads(1)


def x_of(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def resnet_trunk(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A torchvision resnet's forward up to layer4, written out by hand."""
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    return m.layer4(m.layer3(m.layer2(m.layer1(x))))


@pytest.mark.parametrize("name, shape, d", [
    ("resnet18-cifar", (2, 3, 32, 32), 512),
    ("small-cnn", (2, 1, 8, 8), 128),
    ("small-cnn", (2, 1, 12, 12), 128),
    ("small-cnn", (2, 3, 32, 32), 128),
    ("resnet18", (2, 1, 32, 32), 512),  # in_channels != 3: a fresh 1-channel conv1
])
def test_forward_shapes_and_dropout_before_the_classifier(name, shape, d):
    m = build_model(name, n_classes=7, in_channels=shape[1], dropout=0.3).eval()
    assert m(x_of(*shape)).shape == (2, 7)
    if hasattr(m, "conv1"):
        assert m.conv1.in_channels == shape[1]
    # the last two leaf modules: Dropout(p) then the final Linear(d, 7)
    leaves = [mod for mod in m.modules() if not list(mod.children())]
    assert isinstance(leaves[-2], nn.Dropout) and leaves[-2].p == 0.3
    assert isinstance(leaves[-1], nn.Linear) and (leaves[-1].in_features, leaves[-1].out_features) == (d, 7)
    assert default_feature_layer(name) == "avgpool"


def test_resnet18_cifar_stem():
    m = build_model("resnet18-cifar", 10, 3)
    assert (m.conv1.kernel_size, m.conv1.stride) == ((3, 3), (1, 1))
    assert isinstance(m.maxpool, nn.Identity)
    # 32x32 keeps a 4x4 map after layer4 (stride 8 in all), not the 1x1 of the ImageNet stem
    assert resnet_trunk(m.eval(), x_of(1, 3, 32, 32)).shape == (1, 512, 4, 4)


def test_dropout_is_active_in_train_mode_only():
    m = build_model("small-cnn", 4, 1, dropout=0.5)
    x = x_of(8, 1, 8, 8)
    m.eval()
    assert torch.equal(m(x), m(x))
    m.fc.train()  # MC dropout: dropout on, batch norm still in eval mode
    assert not torch.equal(m(x), m(x))


def test_hook_features_equal_a_manual_forward():
    x = x_of(3, 3, 32, 32)
    m = build_model("resnet18-cifar", 10, 3, dropout=0.2).eval()
    with torch.no_grad():
        with FeatureHook(m, "avgpool") as h:
            logits = m(x)
        manual = resnet_trunk(m, x).mean(dim=(2, 3))  # global average pool by hand
        assert h.features.shape == (3, 512)
        assert torch.allclose(h.features, manual, atol=1e-5)
        # the logits are the classifier applied to that feature (dropout is off in eval)
        assert torch.allclose(logits, m.fc[1](manual), atol=1e-5)
        # a 4-D layer is pooled: layer4's output gives the same vector; a 2-D one is kept as is
        with FeatureHook(m, "layer4") as h4, FeatureHook(m, "fc.1") as hfc:
            m(x)
        assert torch.allclose(h4.features, manual, atol=1e-5)
        assert torch.allclose(hfc.features, logits, atol=1e-5)

    s = build_model("small-cnn", 5, 1).eval()
    xs = x_of(4, 1, 8, 8, seed=1)
    with torch.no_grad(), FeatureHook(s, default_feature_layer("small-cnn")) as hs:
        s(xs)
        assert torch.allclose(hs.features, s.features(xs).mean(dim=(2, 3)), atol=1e-5)


def test_hook_is_removed_and_detached():
    m = build_model("small-cnn", 3, 1)
    with FeatureHook(m, "avgpool") as h:
        m(x_of(2, 1, 8, 8)).sum().backward()
        first = h.features.clone()
    assert not h.features.requires_grad and h.features.dtype == torch.float32
    assert len(m.avgpool._forward_hooks) == 0
    m(x_of(5, 1, 8, 8, seed=2))  # outside the block: nothing recorded
    assert torch.equal(h.features, first)


def test_unknown_layer_lists_valid_names():
    m = build_model("resnet18-cifar", 10, 3)
    with pytest.raises(ConfigError, match="layer4.1.conv2") as e:
        FeatureHook(m, "layer4.1.conv9")
    assert "no such module" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="avgpool"):
        FeatureHook(build_model("small-cnn", 3, 1), "nothing_like_it_at_all")


def test_paper_double_block_features():
    m = build_model("resnet18-cifar", 10, 3).eval()
    x = x_of(2, 3, 32, 32)
    f = paper_double_block_features(m, x)
    with torch.no_grad():
        h = resnet_trunk(m, x)
        manual = m.layer4[-1](h).mean(dim=(2, 3))  # the last block applied a second time
        sound = h.mean(dim=(2, 3))
    assert f.shape == (2, 512)
    assert torch.allclose(f, manual, atol=1e-5)
    assert not torch.allclose(f, sound, atol=1e-3)
    assert len(m.layer4._forward_hooks) == 0
    with pytest.raises(ConfigError, match="no layer4"):
        paper_double_block_features(build_model("small-cnn", 3, 1), x_of(1, 1, 8, 8))


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty torch hub cache and no network: torchvision's weights API can only fail."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def offline(*a, **k):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch-home"


def test_pretrained_without_weights_is_a_checkpoint_error(offline_hub):
    with pytest.raises(CheckpointError) as e:
        build_model("resnet18", 10, 3, pretrained=True)
    msg = str(e.value)
    assert "\n" not in msg and "cannot be loaded" in msg
    assert "weights_path" in msg and "pretrained = false" in msg
    assert str(offline_hub / "hub" / "checkpoints") in msg


def torchvision_state_dict(seed: int) -> dict[str, torch.Tensor]:
    from torchvision.models import resnet18

    torch.manual_seed(seed)
    r = resnet18(weights=None)
    with torch.no_grad():  # non-trivial batch-norm buffers, so loading them is visible
        for mod in r.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-1, 1)
    return r.state_dict()


def assert_backbone_equal(m: nn.Module, sd: dict[str, torch.Tensor], skip: tuple[str, ...] = ()) -> None:
    mine = m.state_dict()
    keys = [k for k in sd if not k.startswith(("fc.",) + skip)]
    assert len(keys) > 100
    for k in keys:
        assert torch.equal(mine[k], sd[k]), k


def test_weights_path_round_trip(tmp_path):
    sd = torchvision_state_dict(1)
    path = tmp_path / "resnet18.pth"
    torch.save(sd, path)
    m = build_model("resnet18", 5, 3, weights_path=str(path), dropout=0.1)
    assert_backbone_equal(m, sd)
    assert m.fc[1].out_features == 5
    # one channel: conv1 is new, everything after it is loaded
    g = build_model("resnet18", 5, 1, pretrained=True, weights_path=str(path))
    assert g.conv1.weight.shape == (64, 1, 7, 7)
    assert_backbone_equal(g, sd, skip=("conv1.",))
    # a checkpoint dict that wraps the state_dict also works
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "wrapped.pth")
    assert_backbone_equal(build_model("resnet18", 5, 3, weights_path=str(tmp_path / "wrapped.pth")), sd)


def test_pretrained_reads_the_torch_hub_cache(offline_hub):
    sd = torchvision_state_dict(2)
    ckpt = offline_hub / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save(sd, ckpt / "resnet18-f37072fd.pth")  # the file name of ResNet18_Weights.IMAGENET1K_V1
    assert_backbone_equal(build_model("resnet18", 10, 3, pretrained=True), sd)


def test_bad_weights_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        build_model("resnet18", 10, 3, weights_path=str(tmp_path / "absent.pth"))
    (tmp_path / "junk.pth").write_bytes(b"\x00\x01 not a torch file")
    with pytest.raises(CheckpointError, match="unreadable"):
        build_model("resnet18", 10, 3, weights_path=str(tmp_path / "junk.pth"))
    torch.save(build_model("small-cnn", 10, 3).state_dict(), tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a torchvision resnet18 state_dict") as e:
        build_model("resnet18", 10, 3, weights_path=str(tmp_path / "other.pth"))
    assert "\n" not in str(e.value)
    sd = torchvision_state_dict(0)
    sd["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)  # wrong shape
    torch.save(sd, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match="not a torchvision resnet18 state_dict"):
        build_model("resnet18", 10, 3, weights_path=str(tmp_path / "shape.pth"))


def test_config_errors():
    with pytest.raises(ConfigError, match="known: small-cnn, narrow-cnn, resnet18-cifar, resnet18"):
        build_model("vgg16", 10, 3)
    with pytest.raises(ConfigError, match="only for resnet18"):
        build_model("small-cnn", 10, 3, pretrained=True)
    with pytest.raises(ConfigError, match="dropout"):
        build_model("small-cnn", 10, 3, dropout=1.0)
    with pytest.raises(ConfigError):
        default_feature_layer("vgg16")
