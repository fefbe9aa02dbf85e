"""Entropy sampling (Shannon): query where the predictive distribution is most spread out."""
from __future__ import annotations

import torch
from torch import Tensor

from superlens.active.strategies.base import PoolView, Selection, Strategy, check_pool, register, top_k


def entropy_scores(probs: Tensor) -> Tensor:
    """[N, C] softmax -> [N] float32 entropy -sum_c p_c log p_c in nats (0 log 0 = 0, via xlogy)."""
    p = probs.float()
    return -torch.special.xlogy(p, p).sum(dim=1)


@register
class Entropy(Strategy):
    name = "entropy"
    needs = frozenset({"probs"})

    def select(self, pool: PoolView, k: int, generator: torch.Generator) -> Selection:
        check_pool(pool, self.needs, k)
        scores = entropy_scores(pool.probs)
        return Selection(indices=top_k(scores, k), scores=scores)
