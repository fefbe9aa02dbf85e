"""Closed forms for the compressed-computation study (y = W_out ReLU(W_in x), target ReLU(x)).

Inputs: each of n features active with probability p, value x ~ U(-1, 1) when active. All functions are
pure and accept scalars or numpy arrays.
"""
from __future__ import annotations

import math

import numpy as np


def relu_moment_active(q: float = 2.0) -> float:
    """E[ReLU(x)^q | active] for x ~ U(-1, 1) = (1/2) * int_0^1 t^q dt = 1 / (2 (q + 1)).

    q = 2 gives 1/6: the squared error of outputting 0 for an active feature.
    """
    return 1.0 / (2.0 * (q + 1.0))


def naive_kept(n_features: int, n_hidden: int) -> int:
    """Features the naive model computes exactly (one neuron each)."""
    return min(n_features, n_hidden)


def naive_mse_active(n_features: int, n_hidden: int) -> np.ndarray:
    """Per-feature active-conditioned MSE of the naive model, [n]: 0 for the min(h, n) kept features
    (neuron k = ReLU(x_k) exactly), 1/6 for the rest (output 0 while the target is ReLU(x))."""
    out = np.full(n_features, relu_moment_active(2.0))
    out[: naive_kept(n_features, n_hidden)] = 0.0
    return out


def naive_mse_active_mean(n_features: int, n_hidden: int) -> float:
    """(n - min(h, n)) / n / 6: 0.15 for 100 -> 10 (the report's measured 0.1496)."""
    return float(naive_mse_active(n_features, n_hidden).mean())


def naive_mse_all_mean(n_features: int, n_hidden: int, p: float) -> float:
    """Unconditional per-feature MSE of the naive model, mean over features: an ignored feature is
    active with probability p, so it contributes p/6."""
    return p * naive_mse_active_mean(n_features, n_hidden)


def naive_lq_loss(n_features: int, n_hidden: int, p: float, q: float) -> float:
    """Training-distribution Lq loss (mean over samples and features of |y - ReLU(x)|^q) of the naive
    model: ignored features contribute p * E[ReLU(x)^q | active] = p / (2 (q + 1))."""
    ignored = (n_features - naive_kept(n_features, n_hidden)) / n_features
    return ignored * p * relu_moment_active(q)


def attenuated_isolated_mse(gain, negative_slope=0.0):
    """Isolated (one feature active) MSE of a bias-free feature whose response is gain * t for t > 0 and
    negative_slope * t for t < 0: (1/2) int_0^1 (1 - g)^2 t^2 dt + (1/2) int_0^1 s^2 t^2 dt
    = ((1 - g)^2 + s^2) / 6. With s = 0 this is the report's "pure-gain" attenuation error."""
    g = np.asarray(gain, dtype=float)
    s = np.asarray(negative_slope, dtype=float)
    return ((1.0 - g) ** 2 + s**2) / 6.0


def pure_gain_lq_ratio(n_features: int, n_hidden: int, gain, q: float):
    """Naive over attenuated per-feature Lq loss on active samples, interference left out.

    The naive model computes min(h, n) features exactly and outputs 0 for the rest: its mean over
    features of E[|y - ReLU(x)|^q ; feature active] is (n - min(h, n)) / n * E[ReLU(x)^q]. A model
    that outputs gain * ReLU(x) for every feature has |1 - gain|^q * E[ReLU(x)^q]; E cancels, so the
    ratio is (n - min(h, n)) / n / |1 - gain|^q (inf at gain = 1). E.g. 100 -> 10, gain 0.43:
    8.53 for q = 4 and 2.77 for q = 2.
    """
    g = np.asarray(gain, dtype=float)
    with np.errstate(divide="ignore"):
        out = (n_features - naive_kept(n_features, n_hidden)) / n_features / np.abs(1.0 - g) ** q
    return out if out.ndim else float(out)


def random_abs_cos_mean(dim: int) -> float:
    """E|cos| between two independent uniformly random directions in R^d:
    Gamma(d/2) / (sqrt(pi) Gamma((d + 1)/2)).

    cos is distributed like the first coordinate of a uniform point on S^{d-1}, density
    proportional to (1 - c^2)^{(d-3)/2}; integrating |c| gives the ratio above. d = 2: 2/pi, d = 3: 1/2,
    d = 10: 0.2587 (so the report's mean |cos| of 0.26 for 100 features in R^10 is what random directions
    give).
    """
    d = int(dim)
    if d < 1:
        raise ValueError(f"dim = {dim}, must be >= 1")
    if d == 1:
        return 1.0
    return math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)


def random_cos_sq_mean(dim: int) -> float:
    """E[cos^2] between independent random directions in R^d = 1/d (the d coordinates share |u|^2 = 1)."""
    return 1.0 / int(dim)


def optimal_gain(K, q: float):
    """gamma* = argmin_{gamma >= 0} (1 - gamma)^q + K gamma^q = 1 / (1 + K^(1/(q-1))).

    One active feature i at value x > 0 with outputs scaled by c: loss x^q [(1 - c Pi_ii)^q +
    c^q sum_{k != i} |Pi_ki|^q]; with gamma = c Pi_ii and K = sum_{k != i} |Pi_ki|^q / |Pi_ii|^q the
    stationarity condition ((1 - gamma) / gamma)^(q-1) = K gives the formula (q > 1). For q = 1 the loss
    is linear in gamma on [0, 1]: gamma* = 1 if K < 1, 0 if K > 1, 1/2 (any point) at K = 1.
    K = inf (zero self-gain) -> 0. Accepts scalars or arrays.
    """
    K = np.asarray(K, dtype=float)
    if q < 1:
        raise ValueError(f"q = {q}, must be >= 1")
    if q == 1:
        out = np.where(K < 1, 1.0, np.where(K > 1, 0.0, 0.5))
    else:
        with np.errstate(over="ignore", divide="ignore"):
            out = 1.0 / (1.0 + np.power(K, 1.0 / (q - 1.0)))
    return out if out.ndim else float(out)


def optimal_gain_objective(gamma, K, q: float):
    """(1 - gamma)^q + K gamma^q, the single-active-feature loss (per x^q) that optimal_gain minimises."""
    g = np.asarray(gamma, dtype=float)
    return np.abs(1.0 - g) ** q + np.asarray(K, dtype=float) * np.abs(g) ** q


def first_order_interference_mse(g_pos, g_neg, p: float):
    """First-order interference received by each output j at sparsity p:
    p * (1/6) * sum_{i != j} (G+[j,i]^2 + G-[j,i]^2).

    g_pos, g_neg: [..., n, n] responses of output j (row) to x = +e_i and x = -e_i (column). Each other
    feature i is active w.p. p; at x_i = t > 0 it shifts output j by t G+[j,i] (positive homogeneity of a
    bias-free ReLU net), at t < 0 by |t| G-[j,i]; E[t^2 ; t > 0] = E[t^2 ; t < 0] = 1/6. Ignores
    co-activation effects inside the hidden ReLU and the cross term with the feature's own error.
    Returns [..., n].
    """
    gp, gn = np.asarray(g_pos, dtype=float), np.asarray(g_neg, dtype=float)
    sq = gp**2 + gn**2
    off = sq.sum(-1) - np.diagonal(sq, axis1=-2, axis2=-1)
    return p * off / 6.0


def eval_samples_for(p: float, n_features: int, min_active: int = 2000, minimum: int = 0,
                     cap: int = 5_000_000, confidence: float = 0.99) -> int:
    """Evaluation samples N such that, with probability >= confidence, every one of n_features
    features (each active independently with probability p) is active in at least min_active of
    them; then raised to `minimum` and lowered to `cap`.

    A feature's active count is Binomial(N, p), mean mu = N p, std sqrt(mu (1 - p)). With the
    one-sided normal quantile z for (1 - confidence) / n_features (a union bound over features),
    mu - z sqrt(mu (1 - p)) >= min_active holds for sqrt(mu) >= (z sqrt(1 - p) +
    sqrt(z^2 (1 - p) + 4 min_active)) / 2, so N = ceil(mu / p). Why: the per-feature active MSE and
    its spread over features are means over active samples; at a fixed N they get noisy as p falls
    (40,000 samples give ~120 active samples per feature at p = 0.003).
    E.g. n = 100: N = 108,579 at p = 0.02 (mu = 2,172), 724,370 at p = 0.003.
    """
    from statistics import NormalDist

    if not 0 < p <= 1:
        raise ValueError(f"p = {p}: expected a probability in (0, 1]")
    if n_features < 1 or min_active < 1:
        raise ValueError(f"n_features = {n_features}, min_active = {min_active}: expected >= 1")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence = {confidence}: expected a value in (0, 1)")
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / n_features)
    b = z * math.sqrt(1.0 - p)
    sqrt_mu = (b + math.sqrt(b * b + 4.0 * min_active)) / 2.0
    n = math.ceil(sqrt_mu * sqrt_mu / p - 1e-6)  # - 1e-6: no extra sample from rounding at p = 1
    return int(min(cap, max(minimum, n)))
