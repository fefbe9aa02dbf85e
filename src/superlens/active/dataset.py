"""The in-memory image data set of the active-learning study and its channel statistics.

Every loader (superlens.active.data, superlens.active.folders) returns an ImageDataset; this module
imports neither, so they can both import it.

    mean, std = channel_stats(train_x)          # uint8 [N, C, H, W] -> C values each, [0, 1] units
    ds = ImageDataset("pets", train_x, train_y, test_x, test_y, ["cat", "dog"], mean, std)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

Stats = tuple[tuple[float, ...], tuple[float, ...]]


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

    def digest(self) -> str:
        """sha256 hex of the images, labels and class names of both splits: what a run trained
        on, so that a resumed run can tell whether its data changed (~0.1 s per 100 MB)."""
        import hashlib

        h = hashlib.sha256()
        for t in (self.train_x, self.train_y, self.test_x, self.test_y):
            h.update(str(tuple(t.shape)).encode())
            h.update(t.contiguous().numpy().tobytes())
        h.update("\0".join(self.class_names).encode("utf-8", "surrogateescape"))
        return h.hexdigest()

    def __repr__(self) -> str:
        return (f"ImageDataset({self.name!r}, train={tuple(self.train_x.shape)}, "
                f"test={tuple(self.test_x.shape)}, classes={self.n_classes})")


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


__all__ = ["ImageDataset", "Stats", "channel_stats"]
