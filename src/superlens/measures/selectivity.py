"""Per-neuron class selectivity index (Morcos et al. 2018, "On the importance of single
directions for generalization")."""
from __future__ import annotations

import torch
from torch import Tensor


def class_means(features, labels, n_classes: int) -> tuple[Tensor, Tensor]:
    """features [N, d], labels [N] in 0..n_classes-1 -> (means [K, d] float64, counts [K])."""
    x = torch.as_tensor(features).to(dtype=torch.float64)
    lab = torch.as_tensor(labels, device=x.device).to(torch.int64)
    if x.ndim != 2 or lab.shape != (x.shape[0],):
        raise ValueError(f"features {tuple(x.shape)} and labels {tuple(lab.shape)}: "
                         "expected [N, d] and [N]")
    if n_classes < 2:
        raise ValueError(f"n_classes = {n_classes}, must be >= 2")
    if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got "
                         f"{int(lab.min())}..{int(lab.max())}")
    sums = torch.zeros(n_classes, x.shape[1], dtype=torch.float64, device=x.device)
    sums.index_add_(0, lab, x)
    counts = torch.bincount(lab, minlength=n_classes)
    return sums / counts.clamp(min=1)[:, None], counts


def class_selectivity(features, labels, n_classes: int, *, eps: float = 1e-12) -> Tensor:
    """Selectivity index per neuron: (mu_max - mu_rest) / (mu_max + mu_rest + eps).

    features [N, d] (post-ReLU, >= 0), labels [N] -> [d] float64 in [0, 1].
    mu_max: the largest class-mean activation; mu_rest: the mean of the other class means.
    Classes absent from `labels` have no mean and are left out (at least 2 must be present).
    A dead neuron (all class means 0) gets 0.
    Negative activations (e.g. pre-ReLU features): the index assumes means >= 0, so a neuron whose
    smallest class mean is negative is shifted by it (its smallest class mean becomes 0). Neurons
    with non-negative means are untouched, so on ReLU features this is exactly Morcos et al.
    """
    mu, counts = class_means(features, labels, n_classes)
    present = counts > 0
    k = int(present.sum())
    if k < 2:
        raise ValueError(f"class selectivity needs at least 2 classes present, got {k}")
    mu = mu[present]                                          # [k, d]
    mu = mu - mu.min(0).values.clamp(max=0.0)                 # shift only negative neurons
    top = mu.max(0).values                                    # [d]
    rest = (mu.sum(0) - top) / (k - 1)
    return (top - rest) / (top + rest + eps)


def class_mean_cosine(features, labels, n_classes: int) -> float:
    """Mean cosine similarity between the class-mean vectors of the classes present:
    features [N, d], labels [N] -> mean over the k (k - 1) ordered pairs of distinct classes of
    cos(mu_a, mu_b), mu_a = class a's mean feature vector (uncentred). 1 when every class has the
    same mean direction; near 0 for classes on orthogonal neurons. A class mean of norm 0 has no
    direction and is left out; fewer than 2 left: NaN."""
    mu, counts = class_means(features, labels, n_classes)
    mu = mu[counts > 0]
    norms = mu.norm(dim=1)
    mu = mu[norms > 0] / norms[norms > 0, None]
    k = mu.shape[0]
    if k < 2:
        return float("nan")
    c = mu @ mu.T
    return float((c.sum() - c.diagonal().sum()) / (k * (k - 1)))
