"""Entropy sampling (Shannon): query where the predictive distribution is most spread out."""
from __future__ import annotations

import torch
from torch import Tensor

from superlens.active.strategies.base import FunctionStrategy, highest, register


def entropy_scores(probs: Tensor) -> Tensor:
    """[N, C] softmax -> [N] float32 entropy -sum_c p_c log p_c in nats (0 log 0 = 0, via xlogy)."""
    p = probs.float()
    return -torch.special.xlogy(p, p).sum(dim=1)


@register
class Entropy(FunctionStrategy, fn=highest(entropy_scores), args=("probs",)):
    name = "entropy"
