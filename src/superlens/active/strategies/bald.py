"""BALD (Houlsby et al. 2011; Gal, Islam & Ghahramani 2017): query where MC-dropout samples disagree.

The score is the mutual information between the label and the model weights, estimated from T
stochastic forward passes: I = H(mean_t p_t) - mean_t H(p_t). It is 0 when all passes agree (however
flat each one is) and large when confident passes contradict each other.
"""
from __future__ import annotations

import torch
from torch import Tensor

from superlens.active.strategies.base import FunctionStrategy, highest, register


def _entropy(p: Tensor, dim: int) -> Tensor:
    return -torch.special.xlogy(p, p).sum(dim=dim)


def bald_scores(mc_probs: Tensor, chunk: int = 8192) -> Tensor:
    """[T, N, C] MC-dropout softmax -> [N] float32 mutual information in nats.

    Evaluated in float64 over chunks of the pool so that the temporaries stay [T, chunk, C]
    (mc_probs itself may be ~1 GB for Tiny ImageNet). MI >= 0, so values under 1e-12 are rounding.
    """
    t, n, _ = mc_probs.shape
    if t < 1:
        raise ValueError("mc_probs has T = 0 MC samples")
    out = torch.empty(n, dtype=torch.float32, device=mc_probs.device)
    for s in range(0, n, chunk):
        p = mc_probs[:, s:s + chunk].double()               # [T, n_c, C]
        mi = _entropy(p.mean(0), dim=1) - _entropy(p, dim=2).mean(0)  # [n_c]
        # Identical passes give 0 up to float64 rounding of the mean (~1e-17); snap that to 0 so
        # such points tie exactly and fall back to the index order.
        out[s:s + chunk] = torch.where(mi > 1e-12, mi, torch.zeros_like(mi))
    return out


@register
class Bald(FunctionStrategy, fn=highest(bald_scores), args=("mc_probs",)):
    # FunctionStrategy refuses a NaN in mc_probs first: bald_scores would snap it to 0
    name = "bald"
