"""Device and thread choice, and seeding."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from superlens.errors import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda when present, else cpu. An explicit cuda request without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device = {name!r}: CUDA is not available here; allowed: 'cpu' or 'auto'")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device = {name!r} is not a torch device; allowed: 'auto', 'cpu', "
                          "'cuda' or 'cuda:N'") from None


def choose_threads(requested: int | None, work_elements: int) -> int:
    """Torch intra-op threads for a job.

    Small tensors lose to thread start-up and to a busy neighbour core: on a 2-core machine two
    OpenMP threads ran a 2048x100 loop ~10x slower than one. So below ~4M elements per op we use one
    thread; above, all cores. An explicit request wins.
    """
    if requested is not None:
        return max(1, int(requested))
    cores = os.cpu_count() or 1
    return 1 if work_elements < 4_000_000 else cores


def set_threads(n: int) -> int:
    torch.set_num_threads(n)
    return torch.get_num_threads()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def autocast_enabled(device: torch.device) -> bool:
    """Mixed precision on CUDA only."""
    return device.type == "cuda"
