"""BADGE (Ash et al. 2020, ICLR): k-means++ seeding on gradient embeddings.

The gradient of the cross-entropy at the model's own prediction with respect to the last layer's
weights is g_i = a_i (outer) h_i, with a_i = p_i - onehot(argmax p_i) [C] and h_i the penultimate
features [d]. BADGE picks a diverse, high-magnitude set of these by k-means++ seeding: first the
largest |g_i|, then each next point with probability proportional to its squared distance to the
nearest chosen one (D^2 sampling).

g is never built ([N, C*d] is tens of GB for Tiny ImageNet): since <a(x)h, b(x)k> = (a.b)(h.k),
    |g_i - g_j|^2 = |a_i|^2 |h_i|^2 + |a_j|^2 |h_j|^2 - 2 (a_i.a_j)(h_i.h_j),
so each new centre costs two matrix-vector products, O(N (C + d)).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from superlens.active.strategies.base import FunctionStrategy, rand_on, register


def gradient_factors(probs: Tensor, features: Tensor) -> tuple[Tensor, Tensor]:
    """[N, C] softmax, [N, d] features -> (a [N, C], h [N, d]) with g_i = a_i (outer) h_i.

    Computed in float32 (float64 kept when both inputs are float64)."""
    dtype = torch.float64 if probs.dtype == features.dtype == torch.float64 else torch.float32
    p = probs.to(dtype)
    a = p.clone()
    a[torch.arange(p.shape[0], device=p.device), p.argmax(dim=1)] -= 1.0
    return a, features.to(p.device, dtype)


def gradient_sq_dist(a: Tensor, h: Tensor, j: int, g2: Tensor | None = None) -> Tensor:
    """[N] squared distances |g_i - g_j|^2 between the implicit embeddings g = a (outer) h, clamped >= 0.

    a: [N, C], h: [N, d]; g2: [N] = |a|^2 |h|^2 when already known. Cost O(N (C + d)).
    """
    if g2 is None:
        g2 = (a * a).sum(1) * (h * h).sum(1)
    return (g2 + g2[j] - 2.0 * (a @ a[j]) * (h @ h[j])).clamp_min_(0.0)


def _sample_proportional(w: Tensor, taken: Tensor, generator: torch.Generator) -> int:
    """An index drawn with probability w_i / sum(w) by inverse CDF (one U[0,1) draw, works with a
    generator on any device). All-zero weights (every remaining embedding coincides with a centre)
    -> uniform over the points not yet taken, from the same draw."""
    u = rand_on(generator, (1,), w.device, torch.float64).to(w.dtype)  # float64: fine-grained draw
    cdf = torch.cumsum(w, 0)
    total = cdf[-1]
    if float(total) > 0:
        # first i with cdf[i] > u * total: zero-weight points (taken ones included) are never hit
        i = int(torch.searchsorted(cdf, u * total, right=True))
        # u * total can round up to total: then take the last point with weight
        return i if i < w.shape[0] else int(torch.nonzero(w > 0).max())
    free = torch.nonzero(~taken).flatten()
    return int(free[min(int(float(u) * free.shape[0]), free.shape[0] - 1)])


def badge_select(probs: Tensor, features: Tensor, k: int, generator: torch.Generator
                 ) -> tuple[Tensor, Tensor]:
    """k-means++ seeding on implicit gradient embeddings.

    probs: [N, C], features: [N, d]. Returns (indices [k] int64 in selection order,
    scores [N] float32 = gradient-embedding norms |g_i| = |a_i| |h_i|).
    """
    n = probs.shape[0]
    if not 0 <= k <= n:
        raise ValueError(f"k = {k}: must be in [0, N = {n}]")
    a, h = gradient_factors(probs, features)
    g2 = (a * a).sum(1) * (h * h).sum(1)      # [N] |g_i|^2
    scores = g2.sqrt().float()
    picks: list[int] = []
    taken = torch.zeros(n, dtype=torch.bool, device=a.device)
    d2 = torch.full_like(g2, math.inf)        # [N] squared distance to the nearest centre
    for step in range(k):
        c = int(torch.argmax(g2)) if step == 0 else _sample_proportional(d2, taken, generator)
        picks.append(c)
        taken[c] = True
        torch.minimum(d2, gradient_sq_dist(a, h, c, g2), out=d2)
        d2[c] = 0.0  # rounding may leave a taken point a tiny positive weight
    return torch.tensor(picks, dtype=torch.int64, device=probs.device), scores


@register
class Badge(FunctionStrategy, fn=badge_select, args=("probs", "features")):
    name = "badge"
