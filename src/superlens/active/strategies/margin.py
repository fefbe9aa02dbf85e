"""Margin sampling (Scheffer et al. 2001): query where the two most likely classes are closest."""
from __future__ import annotations

from torch import Tensor

from superlens.active.strategies.base import FunctionStrategy, highest, register


def margin_scores(probs: Tensor) -> Tensor:
    """[N, C] softmax -> [N] float32 scores -(p_(1) - p_(2)), the negated gap between the top two.

    With a single class there is no runner-up: p_(2) is taken as 0, so every score is -1.
    """
    if probs.shape[1] < 2:
        return -probs[:, 0].float()
    top2 = probs.float().topk(2, dim=1).values  # [N, 2], descending
    return top2[:, 1] - top2[:, 0]


@register
class Margin(FunctionStrategy, fn=highest(margin_scores), args=("probs",)):
    name = "margin"
