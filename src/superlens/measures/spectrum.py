"""How many directions the features use: effective rank and participation ratio.

Both are computed on centred features [N, d], from the singular values s of X - mean(X); the
covariance eigenvalues are lambda = s^2 / (N - 1), and the scale cancels in both measures.
An all-constant (or single-row) input has no spread: both measures are 0 for it.
"""
from __future__ import annotations

import torch


def _centred_singular_values(X) -> torch.Tensor:
    """X [N, d] -> singular values [min(N, d)] of the centred matrix, float64 (SVD, not the
    eigenvalues of X^T X, so tiny values stay tiny instead of becoming sqrt(eps) noise)."""
    x = torch.as_tensor(X).to(dtype=torch.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"X: shape {tuple(x.shape)}, expected [N, d] with N, d >= 1")
    return torch.linalg.svdvals(x - x.mean(0))


def effective_rank(X) -> float:
    """Roy & Vetterli (2007): exp(H(p)), p_k = s_k / sum s, H = -sum p_k log p_k (0 log 0 = 0).

    X: [N, d]. Between 1 (rank one) and min(N, d) (all singular values equal).
    """
    s = _centred_singular_values(X)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def participation_ratio(X) -> float:
    """(sum lambda)^2 / sum lambda^2 over the covariance eigenvalues lambda of X [N, d].

    Between 1 and min(N, d); d for isotropic data.
    """
    lam = _centred_singular_values(X) ** 2
    den = (lam * lam).sum()
    if den <= 0:
        return 0.0
    return float(lam.sum() ** 2 / den)
