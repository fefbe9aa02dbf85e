"""Random sampling: the baseline every strategy must beat."""
from __future__ import annotations

import torch

from superlens.active.strategies.base import (PoolView, Selection, Strategy, check_pool, rand_on, register,
                                              top_k)


@register
class RandomStrategy(Strategy):
    """k pool points uniformly without replacement.

    Each point gets an i.i.d. U[0, 1) key from `generator` and the k largest keys win, which is a
    uniform k-subset in uniform order. It needs "probs" only to know the pool size N: the loop
    builds a PoolView holding just what `needs` declares.
    """

    name = "random"
    needs = frozenset({"probs"})

    def select(self, pool: PoolView, k: int, generator: torch.Generator) -> Selection:
        n = check_pool(pool, self.needs, k)
        scores = rand_on(generator, (n,), pool.probs.device).float()
        return Selection(indices=top_k(scores, k), scores=scores)
