"""Sizes checked against what memory can hold, from the config alone, before anything is written or
allocated. Each estimate is a lower bound (float32 tensors that must coexist), so a refusal is
certain to be right; a config that passes may still need more."""
from __future__ import annotations

import os
from typing import Any

from superlens.errors import ConfigError

FLOAT = 4  # bytes per float32


def memory_bytes(device: Any = "cpu") -> int:
    """Total memory of ``device``: the GPU's for cuda, else the machine's physical RAM."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return int(torch.cuda.get_device_properties(dev.index or 0).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not POSIX: no check rather than a wrong one
        return 1 << 62


def gib(n: float) -> str:
    g = n / 2**30
    return f"{g:.3g} GiB" if g < 1e6 else f"{g:.2e} GiB"


def check_fits(need: int, fields: dict[str, Any], what: str, device: Any = "cpu") -> None:
    """ConfigError naming ``fields`` and the estimate when ``need`` bytes exceed the device."""
    have = memory_bytes(device)
    if need > have:
        named = ", ".join(f"{k} = {v}" for k, v in fields.items())
        where = "the GPU's" if str(device).startswith("cuda") else "this machine's"
        raise ConfigError(f"{named}: {what} needs at least ~{gib(need)}, more than {where} "
                          f"{gib(have)} of memory; use smaller sizes")


def check_toy_sizes(n_features: int, n_hidden: int, batch_size: int, instances: int,
                    device: Any = "cpu") -> None:
    """The compressed-computation MLP (or TMS) trained with Adam on ``instances`` models at once.

    weights: W_in [I, h, n] and W_out [I, n, h], each with its gradient and two Adam moments:
             4 * 2 * I * n * h floats;
    a batch: x, target and output [I, B, n] and the hidden layer [I, B, h], forward only:
             I * B * (3n + h) floats.
    Every size field is named: any of them can be the one at fault."""
    weights = 8 * instances * n_features * n_hidden * FLOAT
    batch = instances * batch_size * (3 * n_features + n_hidden) * FLOAT
    check_fits(weights + batch, {"n_features": n_features, "n_hidden": n_hidden,
                                 "batch_size": batch_size},
               f"training {instances} model(s) (weights, gradients and Adam state ~{gib(weights)}: "
               f"8 x models x n_features x n_hidden floats; one batch ~{gib(batch)}: models x "
               "batch_size x (3 n_features + n_hidden) floats)", device)


def check_image_sizes(side: int, batch_size: int, channels: int, device: Any = "cpu",
                      batch_field: str = "batch_size") -> None:
    """One batch of images resized to ``side``: the input [B, C, side, side] and a first
    convolution's output, 64 channels at stride 2: B * (C + 16) * side^2 floats (the rest of the
    network only adds to it)."""
    need = batch_size * (channels + 16) * side * side * FLOAT
    check_fits(need, {"image_size": side, batch_field: batch_size},
               f"one batch of images at this size ({batch_field} x (channels + 16) x image_size^2 "
               "floats: the input and a first 64-channel convolution)", device)
