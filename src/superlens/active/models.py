"""Classifiers of the active-learning study, and reading features from them by layer name.

Every model ends in ``fc = Sequential(Dropout(p), Linear(d, n_classes))`` (so MC dropout finds an
``nn.Dropout`` right before the classifier) and has a module named ``avgpool`` whose output is the
pooled penultimate feature [B, d, 1, 1] (d = 512 for the resnets, 128 for small-cnn).

    model = build_model("resnet18-cifar", n_classes=10, in_channels=3, dropout=0.2)
    with FeatureHook(model, default_feature_layer("resnet18-cifar")) as h:
        logits = model(x)
    h.features  # [B, 512]
"""
from __future__ import annotations

import difflib
from pathlib import Path

import torch
from torch import Tensor, nn

from superlens.errors import CheckpointError, ConfigError, one_line
from superlens.vision import import_torchvision

KNOWN = ("small-cnn", "narrow-cnn", "resnet18-cifar", "resnet18")


def _head(in_features: int, n_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, n_classes))


def _conv_init(conv: nn.Conv2d) -> nn.Conv2d:
    # torchvision's ResNet initialisation, for the convs we put in place of its own
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class _PooledCNN(nn.Module):
    """``features`` (a conv stack ending in ``feature_dim`` channels), global average pooling to a
    feature_dim vector and the dropout + Linear head; the convs get ResNet's initialisation. The
    small CNNs differ only in their conv stack, which subclasses pass in."""

    feature_dim = 128

    def __init__(self, features: nn.Sequential, n_classes: int, dropout: float):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = _head(self.feature_dim, n_classes, dropout)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                _conv_init(m)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C, H, W] -> logits [B, n_classes]."""
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


class SmallCNN(_PooledCNN):
    """Four 3x3 conv+BN+ReLU layers (32, 64, 128, 128 channels), a 2x2 max-pool after each of the
    first two, global average pooling to a 128-d feature, dropout and a Linear classifier. Sized for
    8x8 to 32x32 inputs: an 8x8 digit reaches the pooling as 2x2, a 32x32 image as 8x8. Pooling
    early keeps a step ~3x cheaper on a CPU than pooling after the second conv."""

    feature_dim = 128

    def __init__(self, in_channels: int, n_classes: int, dropout: float = 0.0):
        super().__init__(nn.Sequential(
            _conv_bn_relu(in_channels, 32), nn.MaxPool2d(2, ceil_mode=True), _conv_bn_relu(32, 64),
            nn.MaxPool2d(2, ceil_mode=True), _conv_bn_relu(64, 128), _conv_bn_relu(128, 128)),
            n_classes, dropout)


class NarrowCNN(_PooledCNN):
    """The CPU-sized CIFAR model: four 3x3 conv+BN+ReLU layers of 16, 32, 64 and 128 channels, a 2x2
    max-pool after each of the first three (32x32 -> 4x4 before the last conv), global average
    pooling to a 128-d feature, dropout and a Linear classifier. About 4 M multiply-adds per 32x32
    image against small-cnn's 40 M: on 2 CPU cores it trains ~4x faster (bench/active.py)."""

    feature_dim = 128

    def __init__(self, in_channels: int, n_classes: int, dropout: float = 0.0):
        super().__init__(nn.Sequential(
            _conv_bn_relu(in_channels, 16), nn.MaxPool2d(2, ceil_mode=True), _conv_bn_relu(16, 32),
            nn.MaxPool2d(2, ceil_mode=True), _conv_bn_relu(32, 64), nn.MaxPool2d(2, ceil_mode=True),
            _conv_bn_relu(64, 128)), n_classes, dropout)


def build_model(name: str, n_classes: int, in_channels: int, *, pretrained: bool = False,
                weights_path: str | None = None, dropout: float = 0.0) -> nn.Module:
    """A classifier by name.

    small-cnn:      SmallCNN (for digits / synthetic / quick CIFAR runs).
    resnet18-cifar: torchvision resnet18 with a 3x3 stride-1 conv1 and no max-pool, the usual
                    choice for 32x32 images (a 7x7/2 stem + pool leaves 1x1 maps after layer4).
    resnet18:       torchvision resnet18 as is (the paper's model). pretrained=True loads the
                    ImageNet weights (ResNet18_Weights.IMAGENET1K_V1, from the torch hub cache or
                    the network); weights_path loads a local torchvision resnet18 state_dict instead
                    (given a path, it is used whether or not pretrained is set). in_channels != 3
                    gets a fresh conv1. The classifier is always replaced for n_classes.
    """
    if name not in KNOWN:
        raise ConfigError(f"model = {name!r}: unknown (known: {', '.join(KNOWN)})")
    if n_classes < 1 or in_channels < 1:
        raise ConfigError(f"model {name}: n_classes = {n_classes}, in_channels = {in_channels}; "
                          "both must be >= 1")
    if not 0 <= dropout < 1:
        raise ConfigError(f"dropout = {dropout!r}: must be in [0, 1)")
    if name != "resnet18" and (pretrained or weights_path is not None):
        raise ConfigError(f"model = {name!r}: pretrained weights exist only for resnet18; set "
                          "pretrained = false and leave weights_path unset")
    if name == "small-cnn":
        return SmallCNN(in_channels, n_classes, dropout)
    if name == "narrow-cnn":
        return NarrowCNN(in_channels, n_classes, dropout)

    m = import_torchvision().models.resnet18(weights=None)
    if name == "resnet18-cifar":
        m.conv1 = _conv_init(nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False))
        m.maxpool = nn.Identity()
    else:
        if pretrained or weights_path is not None:
            _load_backbone(m, weights_path)
        if in_channels != 3:
            m.conv1 = _conv_init(nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False))
    m.fc = _head(m.fc.in_features, n_classes, dropout)
    return m


def _imagenet_state_dict(weights_path: str | None) -> dict[str, Tensor]:
    """A torchvision resnet18 state_dict from ``weights_path`` or torchvision's weights API."""
    how = ("pass weights_path = a local torchvision resnet18 state_dict, put resnet18-f37072fd.pth in "
           f"{Path(torch.hub.get_dir()) / 'checkpoints'} (the torch hub cache; TORCH_HOME moves it), "
           "or set pretrained = false")
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise CheckpointError(f"weights_path {path}: not found; {how}")
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file is one line
            raise CheckpointError(f"weights_path {path}: unreadable ({one_line(e)}); {how}") from None
        if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
            sd = sd["state_dict"]
        if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
            raise CheckpointError(f"weights_path {path}: not a state_dict (a dict of tensors); {how}")
        return sd
    weights = import_torchvision().models.ResNet18_Weights
    try:
        return weights.IMAGENET1K_V1.get_state_dict(progress=False)
    except Exception as e:  # noqa: BLE001 - no network, a broken cache file, ...
        raise CheckpointError(f"resnet18 ImageNet weights: cannot be loaded ({one_line(e)}); "
                              f"{how}") from None


def _load_backbone(m: nn.Module, weights_path: str | None) -> None:
    """Load every resnet18 weight but the classifier (which is replaced anyway)."""
    sd = _imagenet_state_dict(weights_path)
    source = f"weights_path {weights_path}" if weights_path is not None else "resnet18 ImageNet weights"
    body = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    try:
        res = m.load_state_dict(body, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise CheckpointError(f"{source}: not a torchvision resnet18 state_dict "
                              f"({one_line(e)[:300]})") from None
    missing = [k for k in res.missing_keys if not k.startswith("fc.")]
    if missing or res.unexpected_keys:
        raise CheckpointError(f"{source}: not a torchvision resnet18 state_dict (missing "
                              f"{missing[:3]}, unexpected {list(res.unexpected_keys)[:3]})")


def default_feature_layer(name: str) -> str:
    """The module whose output is the pooled penultimate feature: "avgpool" for every model."""
    if name not in KNOWN:
        raise ConfigError(f"model = {name!r}: unknown (known: {', '.join(KNOWN)})")
    return "avgpool"


def last_conv_layer(name: str) -> str:
    """The module whose output is the last convolutional block's map [B, C, H, W] (after its ReLU):
    "features" for the small CNNs, "layer4" for the resnets."""
    if name not in KNOWN:
        raise ConfigError(f"model = {name!r}: unknown (known: {', '.join(KNOWN)})")
    return "features" if name in ("small-cnn", "narrow-cnn") else "layer4"


class FeatureHook:
    """Reads one module's output during ordinary forward passes (the network is never rebuilt).

        with FeatureHook(model, "layer4.1.conv2") as h:
            model(x)
        h.features  # [B, d] float32, detached: 4-D outputs [B, d, H, W] are averaged over H, W

    ``features`` holds the output of the latest forward pass inside the block (None before one).
    It is float32 even under autocast, since the measures (cosine, t-SNE) want full precision.
    """

    def __init__(self, model: nn.Module, layer_name: str):
        try:
            self.module = model.get_submodule(layer_name)
        except AttributeError:
            names = [n for n, _ in model.named_modules() if n]
            near = difflib.get_close_matches(layer_name, names, n=5, cutoff=0.5)
            some = near or [n for n, _ in model.named_children()]
            raise ConfigError(f"feature_layer = {layer_name!r}: no such module in "
                              f"{type(model).__name__} (valid names include: {', '.join(some)})") from None
        self.layer_name = layer_name
        self.features: Tensor | None = None
        self._handle = None

    def _hook(self, module: nn.Module, inputs, output) -> None:
        out = output[0] if isinstance(output, (tuple, list)) else output
        f = out.detach().float()
        self.features = f.mean(dim=(2, 3)) if f.dim() == 4 else f.reshape(f.shape[0], -1)

    def __enter__(self) -> "FeatureHook":
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


@torch.no_grad()
def paper_double_block_features(model: nn.Module, x: Tensor) -> Tensor:
    """The paper's notebook features, quirk included: x [B, C, H, W] -> [B, 512].

    The notebook meant to read the pooled layer4 output, but its extractor passed layer4's output
    through the last residual block (layer4[-1]) a second time before global average pooling. This
    reproduces that on purpose, for comparing with the published numbers; the sound feature is the
    "avgpool" layer. Works on torchvision-style resnets (resnet18, resnet18-cifar); runs the model's
    own forward (in whatever train/eval mode the caller set) and reads layer4 by a hook.
    """
    if not hasattr(model, "layer4"):
        raise ConfigError(f"paper features: {type(model).__name__} has no layer4 "
                          "(a torchvision resnet is needed)")
    seen: dict[str, Tensor] = {}
    handle = model.layer4.register_forward_hook(lambda m, i, o: seen.__setitem__("layer4", o))
    try:
        model(x)
    finally:
        handle.remove()
    again = model.layer4[-1](seen["layer4"])
    return again.float().mean(dim=(2, 3))


__all__ = ["KNOWN", "SmallCNN", "NarrowCNN", "last_conv_layer", "build_model", "default_feature_layer", "FeatureHook",
           "paper_double_block_features"]
