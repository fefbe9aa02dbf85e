"""Least confidence (the paper's strategy): query where the top softmax probability is lowest."""
from __future__ import annotations

from torch import Tensor

from superlens.active.strategies.base import FunctionStrategy, highest, register


def least_confidence_scores(probs: Tensor) -> Tensor:
    """[N, C] softmax -> [N] float32 scores 1 - max_c p_c (0 for a one-hot row, 1 - 1/C when flat)."""
    return 1.0 - probs.float().amax(dim=1)


@register
class LeastConfidence(FunctionStrategy, fn=highest(least_confidence_scores), args=("probs",)):
    name = "least-confidence"
