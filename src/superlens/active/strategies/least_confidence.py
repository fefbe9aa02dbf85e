"""Least confidence (the paper's strategy): query where the top softmax probability is lowest."""
from __future__ import annotations

import torch
from torch import Tensor

from superlens.active.strategies.base import PoolView, Selection, Strategy, check_pool, register, top_k


def least_confidence_scores(probs: Tensor) -> Tensor:
    """[N, C] softmax -> [N] float32 scores 1 - max_c p_c (0 for a one-hot row, 1 - 1/C when flat)."""
    return 1.0 - probs.float().amax(dim=1)


@register
class LeastConfidence(Strategy):
    name = "least-confidence"
    needs = frozenset({"probs"})

    def select(self, pool: PoolView, k: int, generator: torch.Generator) -> Selection:
        check_pool(pool, self.needs, k)
        scores = least_confidence_scores(pool.probs)
        return Selection(indices=top_k(scores, k), scores=scores)
