"""Feature dimensionality and frame geometry of the columns of W (Elhage et al. 2022, "Toy Models of
Superposition", section "Feature Dimensionality"), batched over instances.

Column i of W [m, n] is feature i's direction. For the TMS model that is W; for the compressed-
computation model it is W_in [h, n] (feature -> neuron), whose columns the same measures apply to.

    D_i  = ||W_i||^2 / sum_j (Ŵ_i · W_j)^2 = G_ii^2 / sum_j G_ij^2      (G = W^T W)
    D*   = m / ||W||_F^2                                                   (dimensions per feature)

The second form of D_i needs no normalised column, so a dead feature (G_ii = 0) is given D_i = 0
rather than ARENA's 0 / 0 = NaN. For a unit-norm tight frame of n vectors in R^m, D_i = m / n for
every i, which is where the named fractions (2/5 pentagon, 3/8 square antiprism, ...) come from.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from superlens.measures.numeric import unit_vectors

# (value, name) of the geometries Elhage et al. observe, largest first
GEOMETRIES: tuple[tuple[float, str], ...] = (
    (1.0, "1: dedicated"),
    (3 / 4, "3/4: tetrahedron"),
    (2 / 3, "2/3: triangle"),
    (1 / 2, "1/2: antipodal pair"),
    (2 / 5, "2/5: pentagon"),
    (3 / 8, "3/8: square antiprism"),
    (0.0, "0: not represented"),
)
OTHER = "other"


def gram(W: Tensor) -> Tensor:
    """G = W^T W: W [..., m, n] -> [..., n, n]."""
    return W.transpose(-1, -2) @ W


def feature_dimensionality(W: Tensor, dead_tol: float = 1e-6) -> Tensor:
    """D_i = G_ii^2 / sum_j G_ij^2: W [I, m, n] (or [m, n]) -> [I, n] (or [n]).

    A feature with ||W_i|| <= dead_tol gets 0 (it takes no dimension), never NaN.
    """
    G = gram(W.to(torch.float64) if W.dtype != torch.float64 else W)
    diag = torch.diagonal(G, dim1=-2, dim2=-1)  # [..., n] = ||W_i||^2
    denom = (G * G).sum(-1)  # [..., n] >= diag^2 > 0 for a live feature
    live = diag > dead_tol**2
    D = torch.where(live, diag * diag / torch.where(live, denom, torch.ones_like(denom)),
                    torch.zeros_like(diag))
    return D.to(W.dtype)


def dimensions_per_feature(W: Tensor) -> Tensor:
    """D* = m / ||W||_F^2: W [I, m, n] (or [m, n]) -> [I] (or scalar); +inf for W = 0 (no feature
    stored: the m dimensions serve nothing)."""
    m = W.shape[-2]
    fro2 = (W.to(torch.float64) ** 2).sum((-2, -1))
    out = torch.where(fro2 > 0, m / torch.where(fro2 > 0, fro2, torch.ones_like(fro2)),
                      torch.full_like(fro2, math.inf))
    return out.to(W.dtype)


def superposition(W: Tensor, dead_tol: float = 1e-6) -> Tensor:
    """sum_{j != i} (Ŵ_i · W_j)^2, how much the other features interfere along feature i's direction:
    W [..., m, n] -> [..., n]; 0 for a dead feature."""
    G = gram(W.to(torch.float64))
    diag = torch.diagonal(G, dim1=-2, dim2=-1)
    live = diag > dead_tol**2
    s = ((G * G).sum(-1) - diag * diag) / torch.where(live, diag, torch.ones_like(diag))
    return torch.where(live, s.clamp_min(0), torch.zeros_like(s)).to(W.dtype)


# (features in the group, dimensions it spans) -> name: the shapes whose unit vectors form a tight
# frame of k vectors in r dimensions, so that each has D = r / k when the norms are equal
SHAPES: dict[tuple[int, int], str] = {
    (1, 1): "1: dedicated", (2, 1): "1/2: antipodal pair", (3, 2): "2/3: triangle",
    (4, 3): "3/4: tetrahedron", (5, 2): "2/5: pentagon", (8, 3): "3/8: square antiprism",
}
NOT_REPRESENTED = "0: not represented"


def geometry_classes(D, tol: float = 0.025, W=None, min_norm: float = 0.5,
                     cos_tol: float = 0.15) -> list[str] | list[list[str]]:
    """Name each feature's geometry.

    Without W (the old rule, kept for callers that only have D): the nearest known fractional
    dimensionality within tol, else "other". D: [n] -> n names; [I, n] -> one list per instance.
    The levels 3/8 and 2/5 are 0.025 apart, so a tol above 0.0125 only widens the acceptance band.
    D alone cannot tell a pentagon from an unequal antipodal pair (D = 0.6 / 0.4) or from five
    features that no two dimensions could hold, so callers that have W should pass it.

    With W [m, n] or [I, m, n]: the name comes from the space itself (see feature_geometry); D is
    then not used and may be None.
    """
    if W is not None:
        return feature_geometry(W, min_norm=min_norm, cos_tol=cos_tol, tol=tol)
    d = D.detach().cpu().double().numpy() if isinstance(D, Tensor) else np.asarray(D, dtype=float)
    if d.ndim == 2:
        return [geometry_classes(row, tol) for row in d]
    levels = np.array([v for v, _ in GEOMETRIES])
    names = [name for _, name in GEOMETRIES]
    out = []
    for v in d.reshape(-1):
        k = int(np.argmin(np.abs(levels - v)))
        out.append(names[k] if abs(levels[k] - v) <= tol else OTHER)
    return out


def feature_geometry(W, min_norm: float = 0.5, cos_tol: float = 0.15,
                     tol: float = 0.025) -> list[str] | list[list[str]]:
    """Name each feature (column of W [m, n]; [I, m, n] gives one list per instance) by the shape it
    actually forms with its partners, so that a name is only given where that shape can exist.

    - represented: ||W_i|| > min_norm (the TMS convention, the same threshold as n_represented and
      the figures); any other feature is "0: not represented" and is nobody's partner.
    - partners: represented features are joined when |cos(W_i, W_j)| > cos_tol (0.15: a partner
      at that angle would move D_i by ~0.02, about tol); a group is a connected set of partners.
    - a group of k features spanning r dimensions (eigenvalues of its unit columns' Û Û^T above
      10 % of the largest) is named by SHAPES[(k, r)] (r <= m always: the hidden dimension bounds
      it) only if its unit columns form a balanced tight frame: every unit column has dimensionality
      r / k within tol, and they sum to ~0 (|sum| <= 0.1 k) as the named shapes' do; otherwise,
      or for a (k, r) with no name, "other".

    Directions decide the name, norms do not: an antipodal pair of unequal norms (W = [1.02, -0.84]
    in 1-D, D = 0.60 / 0.40) is an antipodal pair, and its D values away from 1/2 show the norms.
    """
    W = torch.as_tensor(W).detach().to("cpu", torch.float64)
    if W.dim() == 3:
        return [feature_geometry(w, min_norm, cos_tol, tol) for w in W]
    if W.dim() != 2:
        raise ValueError(f"W: shape {tuple(W.shape)}, expected [m, n] or [I, m, n]")
    n = W.shape[1]
    norms = W.norm(dim=0)
    rep = [i for i in range(n) if float(norms[i]) > min_norm]
    names = [NOT_REPRESENTED] * n
    if not rep:
        return names
    U = W[:, rep] / norms[rep]
    linked = (U.T @ U).abs() > cos_tol  # [k, k], diagonal True
    seen: set[int] = set()
    for a in range(len(rep)):
        if a in seen:
            continue
        group, stack = [], [a]  # connected component of `a` in the partner graph
        seen.add(a)
        while stack:
            b = stack.pop()
            group.append(b)
            for c in torch.nonzero(linked[b]).flatten().tolist():
                if c not in seen:
                    seen.add(c)
                    stack.append(c)
        Ug = U[:, sorted(group)]
        k = Ug.shape[1]
        ev = torch.linalg.eigvalsh(Ug @ Ug.T)
        r = int((ev > 0.1 * ev.max()).sum())
        name = SHAPES.get((k, r), OTHER)
        if name != OTHER and k > 1:
            Du = feature_dimensionality(Ug)
            # tight (D = r / k each) and balanced (unit vectors summing to ~0, as every named
            # shape's do): two features along the same ray are no antipodal pair
            if float((Du - r / k).abs().max()) > tol or float(Ug.sum(1).norm()) > 0.1 * k:
                name = OTHER
        for b in group:
            names[rep[b]] = name
    return names


# ------------------------------------------------------------------------------ frame comparison

def welch_bound(n_vectors: int, dim: int) -> float:
    """Lower bound on max_{i != j} |cos(v_i, v_j)| for N unit vectors in R^d: sqrt((N - d) / (d (N - 1))).

    Welch (1974), k = 1. 0 when N <= d (orthonormal sets exist). Equality for equiangular tight frames,
    e.g. the simplex (N = d + 1, |cos| = 1/d) or the Mercedes-Benz frame (N = 3, d = 2, |cos| = 1/2).
    """
    return math.sqrt(welch_bound_mean_square(n_vectors, dim))


def welch_bound_mean_square(n_vectors: int, dim: int) -> float:
    """Lower bound on the mean off-diagonal cos^2 of N unit vectors in R^d: (N - d) / (d (N - 1)).

    From ||V^T V||_F^2 >= N^2 / d (the Gram matrix has rank <= d and trace N): the sum over all pairs of
    cos^2 is >= N^2/d, the diagonal takes N of it, and N (N - 1) ordered pairs share the rest.
    """
    N, d = int(n_vectors), int(dim)
    if N <= 1 or N <= d:
        return 0.0
    return (N - d) / (d * (N - 1))


def _unit_columns(W: Tensor, tol: float) -> tuple[Tensor, Tensor]:
    """W [m, n] -> (its live columns (norm > tol) at unit norm [m, n_live], live mask [n])."""
    U, dead = unit_vectors(W, dim=0, tol=tol)
    return U[:, ~dead], ~dead


def _cos_stats(U: Tensor) -> tuple[float, float]:
    """mean and max |cos| over distinct pairs of unit columns U [m, k]; (0, 0) when k < 2."""
    k = U.shape[1]
    if k < 2:
        return 0.0, 0.0
    C = (U.T @ U).abs()
    off = C[~torch.eye(k, dtype=torch.bool)]
    return float(off.mean()), float(off.max())


def _frame_stats(W: Tensor, tol: float) -> dict:
    """Angles, dimensionality and Gram spectrum of one frame W [m, n] (float64)."""
    U, live = _unit_columns(W, tol)
    mean_cos, max_cos = _cos_stats(U)
    D = feature_dimensionality(W, dead_tol=tol)
    q = torch.tensor([0.1, 0.5, 0.9], dtype=W.dtype)
    m = W.shape[0]
    # the non-zero spectrum of Û^T Û equals that of Û Û^T [m, m]: all n_live / m for a tight frame
    spec = torch.linalg.eigvalsh(U @ U.T).flip(0) if U.shape[1] else torch.zeros(m, dtype=W.dtype)
    return {
        "mean_abs_cos": mean_cos,
        "max_abs_cos": max_cos,
        "dim_mean": float(D.mean()),
        "dim_std": float(D.std(correction=0)),
        "dim_quantiles": dict(zip(("q10", "q50", "q90"), torch.quantile(D, q).tolist())),
        "gram_spectrum": spec.clamp_min(0).tolist(),
        "spectrum_cv": float(spec.std(correction=0) / spec.mean()) if spec.mean() > 0 else 0.0,
    }


def optimized_frame(n: int, m: int, seed: int = 0, steps: int = 500, lr: float = 0.02,
                    k_max: float = 128.0) -> Tensor:
    """A near-equiangular frame: n unit columns in R^m, [m, n] float64, that approximately minimise
    max |cos|. Adam (cosine-decayed lr) on the smooth maximum (1/k) log mean_{i<j} cos_ij^(2k) with k
    raised geometrically from 2 to k_max; columns renormalised every step. It finds the simplex
    (n = m + 1) and e.g. the 6 icosahedron diagonals in R^3 (max |cos| = 1/sqrt 5, the Welch bound);
    for larger n it is a good local optimum, not a certified one."""
    g = torch.Generator().manual_seed(int(seed))
    X = torch.randn(m, n, generator=g, dtype=torch.float64)
    X = (X / X.norm(dim=0)).requires_grad_(True)
    opt = torch.optim.Adam([X], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.01)
    iu = torch.triu_indices(n, n, 1)
    for t in range(steps):
        k = 2.0 * (k_max / 2.0) ** (t / max(1, steps - 1))
        U = X / X.norm(dim=0)
        c2 = (U.T @ U)[iu[0], iu[1]] ** 2
        # logsumexp of k log c2: no (c2)^k underflowing into slow denormals
        loss = torch.logsumexp(k * torch.log(c2.clamp_min(1e-30)), 0) / k
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            X /= X.norm(dim=0)
    return X.detach()


def frame_comparison(W: Tensor, seed: int = 0, n_random: int = 16, optimize: bool = True,
                     dead_tol: float = 1e-6) -> dict:
    """Compare the frame of columns of W [m, n] with references of the same shape.

    Returns {"W": stats, "random": stats (mean over n_random Gaussian frames), "optimized": stats
    (a numerically optimised near-equiangular frame; absent if optimize=False), "welch_bound": the
    least achievable max |cos| for the live columns, "n_live", "m", "n"}. The references carry W's
    column norms (dead columns stay dead), so norms are held fixed and only the angles differ;
    stats: mean_abs_cos / max_abs_cos over pairs of live columns, the feature-dimensionality
    distribution (dim_mean, dim_std, dim_quantiles) and the spectrum of the unit-column Gram matrix
    (gram_spectrum, its m non-zero eigenvalues, and spectrum_cv = std / mean, 0 for a tight frame).
    """
    if W.dim() != 2:
        raise ValueError(f"W: shape {tuple(W.shape)}, expected [m, n]")
    W = W.detach().to("cpu", torch.float64)
    m, n = W.shape
    norms = W.norm(dim=0)
    live = norms > dead_tol
    n_live = int(live.sum())
    g = torch.Generator().manual_seed(int(seed))
    rand = []
    for _ in range(n_random):
        R = torch.randn(m, n, generator=g, dtype=torch.float64)
        rand.append(_frame_stats(R / R.norm(dim=0) * norms, dead_tol))
    out = {"m": m, "n": n, "n_live": n_live, "welch_bound": welch_bound(n_live, m),
           "W": _frame_stats(W, dead_tol), "random": _mean_stats(rand)}
    if optimize and n_live >= 2:
        F = torch.zeros(m, n, dtype=torch.float64)
        F[:, live] = optimized_frame(n_live, m, seed=seed) * norms[live]
        out["optimized"] = _frame_stats(F, dead_tol)
    return out


def _mean_stats(stats: Sequence[dict]) -> dict:
    """Field-wise mean of _frame_stats dicts (lists and dicts averaged element-wise)."""
    out = {}
    for k, v in stats[0].items():
        if isinstance(v, dict):
            out[k] = {kk: float(np.mean([s[k][kk] for s in stats])) for kk in v}
        elif isinstance(v, list):
            out[k] = np.mean([s[k] for s in stats], axis=0).tolist()
        else:
            out[k] = float(np.mean([s[k] for s in stats]))
    return out
