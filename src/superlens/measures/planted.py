"""Planted features: activations whose feature count is known exactly, to calibrate a feature count.

K feature directions d_k in R^N (unit rows), each row of activations a sum of a few of them with
non-negative coefficients:

    x = sum_k a_k d_k,   a_k = b_k m_k,   b_k ~ Bernoulli(p_k),   m_k ~ the magnitude law (>= 0)

The truth is the effective number of features of the masses E[a_k] = p_k E[m]:

    q_k = E[a_k] / sum_j E[a_j],    F_true = exp(H(q))            (= K when every p_k is equal)

which is what F = exp(H(p)) of a sparse autoencoder (Bereska et al. 2025, arXiv 2512.13568; p_i a
latent's share of the mean code, unit decoder rows) reads when its latents are exactly the planted
features: then z_k = a_k and E[z_k] = E[a_k].

Families:
- directions "random": K independent uniform unit vectors (cosines ~ 1 / sqrt(N));
  "clustered": `clusters` random centres c_j, d_k = normalise(sqrt(overlap) c_j + sqrt(1 - overlap) u_k)
  with u_k random, so that two directions of one cluster have expected cosine ~ overlap.
- frequencies "uniform": p_k = active / K; "power": p_k proportional to (k + 1)^-alpha, scaled so that
  sum_k p_k = active (a feature's p is capped at 1; the truth uses the capped values).
- magnitudes "uniform" U(0, 1), "exponential" Exp(1), "halfnormal" |N(0, 1)|, "one" (always 1).
- co-occurrence c: feature 2j + 1 copies feature 2j's on/off draw with probability c (its own draw
  otherwise), so its frequency becomes c p_2j + (1 - c) p_{2j+1}; the truth uses that.

    spec = PlantedSpec(n=64, k=128, active=3.0)
    x, info = planted_activations(spec, rows=20_000)     # x [rows, N]; info["f_true"]
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from superlens.device import generator

MAGNITUDE_MEAN = {"uniform": 0.5, "exponential": 1.0, "halfnormal": math.sqrt(2 / math.pi), "one": 1.0}


@dataclass(frozen=True)
class PlantedSpec:
    """One planted setting. n: width N; k: features K; active: expected active features per row
    (sum_k p_k before capping at 1); frequency "uniform" or "power" (exponent alpha); magnitude law;
    directions "random" or "clustered" (clusters, overlap); cooccur in [0, 1]; seed."""

    n: int
    k: int
    active: float = 3.0
    frequency: str = "uniform"
    alpha: float = 1.0
    magnitude: str = "uniform"
    directions: str = "random"
    clusters: int = 8
    overlap: float = 0.3
    cooccur: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.n < 1 or self.k < 1:
            raise ValueError(f"PlantedSpec: n = {self.n}, k = {self.k}, both must be >= 1")
        if not 0 < self.active <= self.k:
            raise ValueError(f"PlantedSpec.active = {self.active!r}, must be in (0, k = {self.k}]")
        if self.frequency not in ("uniform", "power"):
            raise ValueError(f"PlantedSpec.frequency = {self.frequency!r}, must be 'uniform' or 'power'")
        if self.magnitude not in MAGNITUDE_MEAN:
            raise ValueError(f"PlantedSpec.magnitude = {self.magnitude!r}, must be one of "
                             f"{sorted(MAGNITUDE_MEAN)}")
        if self.directions not in ("random", "clustered"):
            raise ValueError(f"PlantedSpec.directions = {self.directions!r}, must be 'random' or "
                             "'clustered'")
        if not 0 <= self.overlap < 1 or self.clusters < 1:
            raise ValueError(f"PlantedSpec: overlap = {self.overlap!r} must be in [0, 1), clusters = "
                             f"{self.clusters!r} >= 1")
        if not 0 <= self.cooccur <= 1:
            raise ValueError(f"PlantedSpec.cooccur = {self.cooccur!r}, must be in [0, 1]")

    def as_dict(self) -> dict:
        return asdict(self)


def frequencies(spec: PlantedSpec) -> Tensor:
    """Each feature's own draw probability p_k [K] (float64), before co-occurrence."""
    if spec.frequency == "uniform":
        w = torch.ones(spec.k, dtype=torch.float64)
    else:
        w = torch.arange(1, spec.k + 1, dtype=torch.float64) ** -spec.alpha
    return (spec.active * w / w.sum()).clamp_max(1.0)


def marginal_frequencies(spec: PlantedSpec) -> Tensor:
    """P(a_k > 0) [K] after co-occurrence: feature 2j + 1 takes feature 2j's draw with probability c."""
    p = frequencies(spec).clone()
    c = spec.cooccur
    if c > 0:
        p[1::2] = c * p[0:2 * (spec.k // 2):2] + (1 - c) * p[1::2]
    return p


def true_masses(spec: PlantedSpec) -> Tensor:
    """E[a_k] = P(b_k = 1) E[m]: [K] float64."""
    return marginal_frequencies(spec) * MAGNITUDE_MEAN[spec.magnitude]


def f_true(spec: PlantedSpec) -> float:
    """exp(H(q)), q_k = E[a_k] / sum_j E[a_j]."""
    q = true_masses(spec)
    q = q / q.sum()
    q = q[q > 0]
    return float(torch.exp(-(q * q.log()).sum()))


def directions(spec: PlantedSpec) -> Tensor:
    """The K unit feature directions [K, N] (float32) of the spec's seed."""
    g = generator(spec.seed)
    u = torch.randn(spec.k, spec.n, generator=g, dtype=torch.float64)
    u /= u.norm(dim=1, keepdim=True)
    if spec.directions == "clustered":
        c = torch.randn(spec.clusters, spec.n, generator=g, dtype=torch.float64)
        c /= c.norm(dim=1, keepdim=True)
        member = torch.arange(spec.k) % spec.clusters
        u = math.sqrt(spec.overlap) * c[member] + math.sqrt(1 - spec.overlap) * u
        u /= u.norm(dim=1, keepdim=True)
    return u.to(torch.float32)


def _magnitudes(law: str, shape, g) -> Tensor:
    if law == "uniform":
        return torch.rand(shape, generator=g)
    if law == "exponential":
        return torch.empty(shape).exponential_(1.0, generator=g)
    if law == "halfnormal":
        return torch.randn(shape, generator=g).abs_()
    return torch.ones(shape)


def planted_activations(spec: PlantedSpec, rows: int, chunk: int = 4096) -> tuple[Tensor, dict]:
    """rows activations of the spec: (x [rows, N] float32, info). info: f_true, the masses
    E[a_k] [K], the directions [K, N], and the rows per feature (rows * min_k P(a_k > 0)).
    Coefficients are drawn in chunks of rows, so K = 8N at N = 512 stays small in memory."""
    if rows < 1:
        raise ValueError(f"rows = {rows}, must be >= 1")
    dirs = directions(spec)
    p = frequencies(spec).to(torch.float32)
    g = generator(spec.seed + 1_000_003)
    out = torch.empty(rows, spec.n)
    pairs = 2 * (spec.k // 2)
    for s in range(0, rows, chunk):
        b = min(chunk, rows - s)
        on = torch.rand(b, spec.k, generator=g) < p
        if spec.cooccur > 0:
            copy = torch.rand(b, spec.k // 2, generator=g) < spec.cooccur
            on[:, 1:pairs:2] = torch.where(copy, on[:, 0:pairs:2], on[:, 1:pairs:2])
        a = on * _magnitudes(spec.magnitude, (b, spec.k), g)
        out[s:s + b] = a @ dirs
    pm = marginal_frequencies(spec)
    return out, {"f_true": f_true(spec), "masses": true_masses(spec), "directions": dirs,
                 "rows_per_feature": float(rows * pm.min())}


# a planted feature counts as recovered when its matched latent's decoder row is at least this close
RECOVERED_COS = 0.9


def feature_recovery(decoder: Tensor, mass: Tensor, dirs: Tensor, cos_min: float = RECOVERED_COS) -> dict:
    """Are a fitted SAE's latents the planted features, not only as many? decoder [D, N] (unit rows),
    mass [D] (mean code; latents with mass 0 never fired and are left out), dirs [K, N] the planted
    unit directions. Each feature is matched to at most one live latent and each latent to at most
    one feature, maximising the summed cosine (the Hungarian algorithm, scipy's
    linear_sum_assignment), as the mean correlation coefficient of SAELens' synthetic-data
    evaluation and O'Neill et al. 2024 (arXiv 2411.13117) is; the cosine is signed and clamped at 0
    here (a latent's code is >= 0, so a row along -d_k does not carry feature k). Returns
    mcc: the mean over the K features of the matched cosine (0 for a feature left without a latent)
    and recovered: the fraction of the K features whose matched cosine is >= cos_min."""
    from scipy.optimize import linear_sum_assignment

    live = mass > 0
    k = dirs.shape[0]
    if not bool(live.any()):
        return {"mcc": 0.0, "recovered": 0.0}
    cos = (dirs.to(torch.float64) @ decoder[live].to(torch.float64).T).clamp_min(0).cpu().numpy()
    rows, cols = linear_sum_assignment(cos, maximize=True)
    matched = cos[rows, cols]
    return {"mcc": float(matched.sum() / k), "recovered": float((matched >= cos_min).sum() / k)}


__all__ = ["MAGNITUDE_MEAN", "PlantedSpec", "RECOVERED_COS", "directions", "f_true", "feature_recovery",
           "frequencies", "marginal_frequencies", "planted_activations", "true_masses"]
