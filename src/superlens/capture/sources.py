"""Model inputs held as one tensor, served in batches (the capture's Source)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from superlens.capture.store import tensor_digest


class TensorSource:
    """Inputs x [n, ...] (any dtype), batch by batch on the device.

    transform: applied to each batch on the device (e.g. uint8 images -> normalised float); None
    feeds floating inputs as they are and casts others to float32. transform_id names the
    transform in the fingerprint (the same x under another preprocessing is other data).
    """

    def __init__(self, x: Tensor, transform: Callable[[Tensor], Tensor] | None = None,
                 transform_id: str = ""):
        if not isinstance(x, Tensor):
            x = torch.as_tensor(x)
        if x.ndim < 2 or x.shape[0] < 1:
            raise ValueError(f"inputs: shape {tuple(x.shape)}, expected [n, ...] with n >= 1")
        self.x, self.transform, self.transform_id = x, transform, transform_id
        self.n = int(x.shape[0])
        self._fp: str | None = None

    def batch(self, start: int, stop: int, device: torch.device) -> Tensor:
        xb = self.x[start:stop].to(device)
        if self.transform is not None:
            return self.transform(xb)
        return xb if xb.is_floating_point() else xb.to(torch.float32)

    def fingerprint(self) -> str:
        if self._fp is None:
            self._fp = f"{tensor_digest(self.x)}|{self.transform_id}"
        return self._fp


__all__ = ["TensorSource"]
