"""Active-learning query strategies, registered by name: one file each, one `select` signature.

    strategy = get_strategy("coreset")
    sel = strategy.select(PoolView(features=f, labelled_features=fl), k=5000, generator=g)
"""
from superlens.active.strategies.base import (POOL_FIELDS, PoolView, Selection, Strategy, available,
                                              get_strategy, register)
# importing each module registers its strategy
from superlens.active.strategies.random import RandomStrategy
from superlens.active.strategies.least_confidence import LeastConfidence, least_confidence_scores
from superlens.active.strategies.margin import Margin, margin_scores
from superlens.active.strategies.entropy import Entropy, entropy_scores
from superlens.active.strategies.coreset import Coreset, k_center_greedy, k_center_greedy_naive
from superlens.active.strategies.badge import Badge, badge_select, gradient_factors, gradient_sq_dist
from superlens.active.strategies.bald import Bald, bald_scores

__all__ = [
    "POOL_FIELDS", "PoolView", "Selection", "Strategy", "available", "get_strategy", "register",
    "RandomStrategy", "LeastConfidence", "Margin", "Entropy", "Coreset", "Badge", "Bald",
    "least_confidence_scores", "margin_scores", "entropy_scores", "bald_scores",
    "k_center_greedy", "k_center_greedy_naive", "badge_select", "gradient_factors", "gradient_sq_dist",
]
