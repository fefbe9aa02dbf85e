"""Every analysis of the compressed-computation study, as pure functions of the weights.

Models carry an instance axis (MLPParams: W_in [I, h, n], W_out [I, n, h]); every function maps
per-instance weights to per-instance results. Quantities measured on data use one seeded evaluation set,
the same for every instance and every model, drawn in fixed-size chunks so memory stays bounded (the set
depends on (seed, chunk), so keep chunk fixed when comparing runs).

`analyze` runs them all and returns a `ToyAnalysis` (numpy arrays), whose `metrics()` are the numbers the
report quotes, each defined in `METRIC_DEFINITIONS`.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, fields
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from superlens.device import generator
from superlens.toy import theory
from superlens.toy.data import sample_dense
from superlens.toy.models import MLPParams, forward, hidden, naive_params

DEFAULT_CHUNK = 20_000
RESPONSE_POINTS = 2001  # 1 mod 4: t = 0 is a node and both halves have an odd node count (Simpson)
FIGURE_POINTS = 101  # response-curve samples kept for figures
COS_BINS = 80
LINE_SEARCH_RANGE = (0.3, 2.0)
LINE_SEARCH_COARSE = 35  # step 0.05
LINE_SEARCH_FINE = 41  # +- one coarse step around the coarse best, step 0.0025
DEFAULT_SWEEP_PS = tuple(float(v) for v in np.logspace(-3, 0, 13))
SINGLE_POINTS = 256  # midpoint-rule nodes of U(0, 1] for the single-active-feature line search
IGNORED_GAIN = 0.05  # a feature whose gain is below this is counted as ignored (strategy summary)


# ----------------------------------------------------------------------------- evaluation set


def eval_chunks(n_features: int, p: float, samples: int, seed: int, *, chunk: int = DEFAULT_CHUNK,
                device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Iterator[Tensor]:
    """The seeded evaluation set at sparsity p, chunk by chunk: x [1, b, n] (sum of b = samples).

    One generator seeded with `seed` feeds every chunk in order, so each call replays the same set.
    """
    if samples < 1:
        raise ValueError(f"samples = {samples}, must be >= 1")
    g = generator(seed, device)
    done = 0
    while done < samples:
        b = min(chunk, samples - done)
        yield sample_dense([g], b, n_features, p, device=device, dtype=dtype)
        done += b


def stack_params(models: Sequence[MLPParams]) -> MLPParams:
    """Concatenate models along the instance axis (zero biases where one model has none), so one pass
    over the evaluation set scores them all; instances never interact."""
    def cat(name: str) -> Tensor | None:
        ts = [getattr(m, name) for m in models]
        if all(t is None for t in ts):
            return None
        ref = next(t for t in ts if t is not None)
        return torch.cat([t if t is not None else
                          torch.zeros(m.instances, *ref.shape[1:], dtype=ref.dtype, device=ref.device)
                          for t, m in zip(ts, models)])
    return MLPParams(cat("W_in"), cat("W_out"), cat("b_in"), cat("b_out"))


def interp_curves(curves: Tensor, cols: Tensor, values: Tensor) -> Tensor:
    """curves [I, n, V] sampled on linspace(-1, 1, V), read at K points: feature cols [K] at values [K]
    (linear interpolation). Returns [I, K]."""
    V = curves.shape[-1]
    pos = (values.clamp(-1, 1) + 1) * ((V - 1) / 2)
    i0 = pos.floor().long().clamp_(0, V - 2)
    frac = (pos - i0).to(curves.dtype)
    v0, v1 = curves[:, cols, i0], curves[:, cols, i0 + 1]
    return v0 + frac * (v1 - v0)


@torch.no_grad()
def evaluate(params: MLPParams, *, p: float, samples: int, seed: int,
             powers: Sequence[float] = (2.0, 4.0), chunk: int = DEFAULT_CHUNK,
             negative_correction: Tensor | None = None) -> dict[str, Tensor]:
    """Per-feature errors of every instance on the shared evaluation set.

    e_ik = (y_ik - ReLU(x_ik))^2. Returns (float64):
      mse_active [I, n]  mean of e_ik over samples with x_ik != 0 (NaN for a feature never active)
      mse_all    [I, n]  mean of e_ik over all samples
      active_count [n]   samples in which each feature is active
      lq         [I, Q]  mean over samples and features of |y - ReLU(x)|^q for q in powers
    negative_correction [I, n, V] (optional): y_i - s_i(x_i) is scored instead of y_i, s_i interpolated
    from its grid on [-1, 1] and applied only where x_i < 0 (the residual ablation).
    """
    I, n = params.instances, params.n_features
    dev, dt = params.W_in.device, params.W_in.dtype
    f64 = torch.float64
    sq_act = torch.zeros(I, n, dtype=f64, device=dev)
    sq_all = torch.zeros(I, n, dtype=f64, device=dev)
    lq = torch.zeros(I, len(powers), dtype=f64, device=dev)
    count = torch.zeros(n, dtype=torch.int64, device=dev)
    for x in eval_chunks(n, p, samples, seed, chunk=chunk, device=dev, dtype=dt):
        y = forward(params, x.expand(I, -1, -1))
        x0 = x[0]  # [b, n]
        if negative_correction is not None:
            neg = x0 < 0  # ~1 % of entries: correct them sparsely
            y[:, neg] -= interp_curves(negative_correction, neg.nonzero()[:, 1], x0[neg])
        r = y.sub_(torch.relu(x))  # [I, b, n], in place
        sq = r.square()
        act = x0 != 0
        sq_all += sq.sum(1, dtype=f64)
        sq_act.index_add_(1, act.nonzero()[:, 1], sq[:, act].double())
        count += act.sum(0)
        for j, q in enumerate(powers):
            e = sq if q == 2 else sq.square() if q == 4 else r.abs().pow(q)
            lq[:, j] += e.sum((1, 2), dtype=f64)
    mse_active = sq_act / count.clamp_min(1)
    mse_active[:, count == 0] = float("nan")  # empty set: no estimate
    return {"mse_active": mse_active, "mse_all": sq_all / samples, "active_count": count,
            "lq": lq / (samples * n)}


# ----------------------------------------------------------------------------- response curves


def response_grid(points: int = RESPONSE_POINTS, device=None, dtype=torch.float32) -> Tensor:
    """linspace(-1, 1, points), points = 1 mod 4 (t = 0 on the grid, Simpson on each half)."""
    if points < 5 or points % 4 != 1:
        raise ValueError(f"response points = {points}, must be >= 5 and 1 mod 4 (e.g. 2001)")
    return torch.linspace(-1, 1, points, device=device, dtype=dtype)


@torch.no_grad()
def response_curves(params: MLPParams, t: Tensor) -> Tensor:
    """Self-response y_i(t e_i): feature i swept alone over t [V], output of the same feature.

    Built from the weights directly: with x = t e_i the pre-activation is t W_in[:, i] + b_in.
    Returns [I, n, V]. (Equals forward() on superlens.toy.data.single_feature_batch.)
    """
    I, h, n = params.W_in.shape
    cols = params.W_in.transpose(1, 2)  # [I, n, h]
    out = torch.empty(I, n, t.shape[0], dtype=cols.dtype, device=cols.device)
    step = max(1, 16_000_000 // max(1, I * t.shape[0] * h))  # features per block: bounds [I, f, V, h]
    for s in range(0, n, step):
        pre = t[None, None, :, None] * cols[:, s:s + step, None, :]  # [I, f, V, h]
        if params.b_in is not None:
            pre = pre + params.b_in[:, None, None, :]
        out[:, s:s + step] = torch.einsum("ifvh,ifh->ifv", torch.relu(pre), params.W_out[:, s:s + step])
    if params.b_out is not None:
        out += params.b_out[:, :, None]
    return out


def response_stats(t: Tensor, curves: Tensor) -> dict[str, Tensor]:
    """From curves [I, n, V] on grid t [V]:
      gain [I, n]             least-squares slope (with intercept) of output vs input over t > 0
      intercept [I, n]        that fit's intercept
      negative_residual [I, n] mean output over the grid points with t < 0
      value_at_minus1 [I, n]  output at t = -1
    """
    pos, neg = t > 0, t < 0
    tp, yp = t[pos], curves[..., pos]
    tc = tp - tp.mean()
    gain = (yp * tc).sum(-1) / tc.square().sum()
    intercept = yp.mean(-1) - gain * tp.mean()
    return {"gain": gain, "intercept": intercept, "negative_residual": curves[..., neg].mean(-1),
            "value_at_minus1": curves[..., 0]}


def _simpson(y: Tensor, dx: float) -> Tensor:
    """Simpson's rule along the last axis (odd node count): exact for piecewise quadratics whose kinks
    are nodes, e.g. the squared error of a bias-free model."""
    w = torch.ones(y.shape[-1], dtype=y.dtype, device=y.device)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return (y * w).sum(-1) * (dx / 3)


def isolated_mse(t: Tensor, curves: Tensor) -> dict[str, Tensor]:
    """Isolated MSE_i = E_{x~U(-1,1)} (y_i(x e_i) - ReLU(x))^2 by Simpson quadrature over the grid,
    split into the x > 0 and x < 0 parts (which sum to it). curves [I, n, V] -> each [I, n]."""
    V = t.shape[0]
    mid = (V - 1) // 2
    dx = float(t[1] - t[0])
    err = (curves - torch.relu(t)).square()
    pos = 0.5 * _simpson(err[..., mid:], dx)  # density 1/2 on [-1, 1]
    neg = 0.5 * _simpson(err[..., : mid + 1], dx)
    return {"total": pos + neg, "positive": pos, "negative": neg}


def negative_self_response(t: Tensor, curves: Tensor) -> Tensor:
    """s_i(t) = y_i(t e_i) - y_i(0) for t < 0, 0 for t >= 0: the residual the ablation removes (the
    baseline y_i(0), nonzero only with biases, stays). [I, n, V]."""
    mid = (t.shape[0] - 1) // 2
    return (curves - curves[..., mid:mid + 1]) * (t < 0)


# ----------------------------------------------------------------------------- weights


def effective_weights(params: MLPParams) -> Tensor:
    """W_eff = W_out @ W_in: [I, n, n], the linear map if the hidden ReLU were removed."""
    return torch.bmm(params.W_out, params.W_in)


def _offdiag(M: Tensor) -> Tensor:
    """[I, n, n] -> [I, n (n - 1)] off-diagonal entries."""
    n = M.shape[-1]
    mask = ~torch.eye(n, dtype=torch.bool, device=M.device)
    return M[:, mask]


def matrix_stats(M: Tensor) -> dict[str, Tensor]:
    """Diagonal [I, n]; off-diagonal mean, mean |.|, std, min, max [I] (NaN when n = 1)."""
    off = _offdiag(M)
    if off.shape[1] == 0:
        nan = torch.full((M.shape[0],), float("nan"), dtype=M.dtype, device=M.device)
        return {"diag": torch.diagonal(M, dim1=1, dim2=2), "off_mean": nan, "off_abs_mean": nan,
                "off_std": nan, "off_min": nan, "off_max": nan}
    return {"diag": torch.diagonal(M, dim1=1, dim2=2), "off_mean": off.mean(1),
            "off_abs_mean": off.abs().mean(1), "off_std": off.std(1, correction=0),
            "off_min": off.amin(1), "off_max": off.amax(1)}


def feature_cosines(W_in: Tensor) -> tuple[Tensor, Tensor]:
    """Pairwise cosine of W_in's columns: W_in [I, h, n] -> cos [I, n, n], zero [I, n].

    A column with (numerically) zero norm has no direction: its cosines are set to 0 and it is
    flagged in `zero`."""
    norms = W_in.norm(dim=1)  # [I, n]
    scale = norms.amax(1, keepdim=True).clamp_min(torch.finfo(W_in.dtype).tiny)
    zero = norms <= 1e-8 * scale
    U = W_in / torch.where(zero, torch.ones_like(norms), norms)[:, None, :]
    U = U * (~zero)[:, None, :]
    return torch.bmm(U.transpose(1, 2), U), zero


def offdiag_pairs(cos: Tensor, zero: Tensor) -> list[Tensor]:
    """Per instance, cosines of unordered pairs i < j of non-zero columns (a list: counts may differ)."""
    n = cos.shape[-1]
    iu = torch.triu_indices(n, n, 1, device=cos.device)
    out = []
    for c, z in zip(cos, zero):
        keep = ~(z[iu[0]] | z[iu[1]])
        out.append(c[iu[0], iu[1]][keep])
    return out


def random_direction_cosines(n_vectors: int, dim: int, draws: int, seed: int) -> Tensor:
    """Monte Carlo reference: `draws` sets of N Gaussian (uniformly random) directions in R^d,
    the cosines of all pairs i < j of each set, concatenated. [draws * N (N - 1) / 2] float64 (CPU)."""
    g = generator(seed)
    v = torch.randn(draws, dim, n_vectors, generator=g, dtype=torch.float64)
    cos, zero = feature_cosines(v)
    return torch.cat(offdiag_pairs(cos, zero))


def cross_gain(params: MLPParams, sign: float = 1.0) -> Tensor:
    """G[j, i] = y_j(sign * e_i) - y_j(0): output j when only feature i is active at value sign.

    For a bias-free ReLU net y_j(0) = 0 and the response is positively homogeneous, so G (sign +1) is
    the slope of output j in input i on x_i > 0. [I, n (output j), n (input i)]."""
    pre = sign * params.W_in  # [I, h, n]: column i is the pre-activation for x = sign e_i
    base = torch.zeros_like(pre[:, :, :1])
    if params.b_in is not None:
        pre = pre + params.b_in[:, :, None]
        base = torch.relu(params.b_in)[:, :, None]
    return torch.bmm(params.W_out, torch.relu(pre) - base)


def interference_rms(G: Tensor) -> Tensor:
    """RMS over i != j of G[j, i]: interference received per output j. [I, n, n] -> [I, n]."""
    n = G.shape[-1]
    if n < 2:
        return torch.zeros(G.shape[:2], dtype=G.dtype, device=G.device)
    off = G.square().sum(-1) - torch.diagonal(G, dim1=1, dim2=2).square()
    return (off.clamp_min(0) / (n - 1)).sqrt()


def gain_ratio_K(G: Tensor, q: float) -> Tensor:
    """K_i = sum_{k != i} |G[k, i]|^q / |G[i, i]|^q: how much output feature i's input leaks into the other
    outputs, relative to its own (Lq-weighted). inf where the self-gain is 0. [I, n, n] -> [I, n]."""
    A = G.abs().pow(q)
    self_ = torch.diagonal(A, dim1=1, dim2=2)
    leak = A.sum(1) - self_  # column sums minus the diagonal
    return torch.where(self_ > 0, leak / self_.clamp_min(torch.finfo(G.dtype).tiny),
                       torch.full_like(self_, float("inf")))


# ----------------------------------------------------------------------------- data sweeps


@torch.no_grad()
def scale_profile(params: MLPParams, *, q: float, p: float, samples: int, seed: int,
                  chunk: int = DEFAULT_CHUNK) -> dict[str, Tensor]:
    """What the Lq loss of the output-scaled model c * y needs, for every c, from one pass:

    loss(c) = [c^q S0 + sum_{t > 0} |c y - t|^q] / (samples n), with t = ReLU(x). Entries with t = 0
    (~99 % of them at p = 0.02) contribute c^q |y|^q, summed once into S0; the few positive targets
    are kept. Returns s0 [I] float64, y_pos [I, K], t_pos [K], norm (= samples n).
    """
    I, n = params.instances, params.n_features
    dev, dt = params.W_in.device, params.W_in.dtype
    s0 = torch.zeros(I, dtype=torch.float64, device=dev)
    ys, ts = [], []
    for x in eval_chunks(n, p, samples, seed, chunk=chunk, device=dev, dtype=dt):
        y = forward(params, x.expand(I, -1, -1))
        pos = x[0] > 0
        s0 += (y.abs().pow(q) * ~pos).sum((1, 2), dtype=torch.float64)
        ys.append(y[:, pos])
        ts.append(x[0][pos])
    return {"s0": s0, "y_pos": torch.cat(ys, 1), "t_pos": torch.cat(ts), "norm": float(samples * n)}


def single_feature_values(points: int = SINGLE_POINTS, *, negative: bool = False, device=None,
                          dtype=torch.float32) -> Tensor:
    """Equal-weight nodes of the value distribution of one active feature: midpoints (j - 1/2) / V of
    U(0, 1] (the closed form's x > 0), or, with negative, those and their negatives (U(-1, 1)).

    For a bias-free net each output is linear in x on each side of 0, so every error term is |x|^q
    times a constant per side; the nodes then only set the common factor E|x|^q (equal on both sides
    by symmetry) and the minimising output scale does not depend on their number."""
    v = (torch.arange(points, device=device, dtype=dtype) + 0.5) / points
    return torch.cat([-v.flip(0), v]) if negative else v


@torch.no_grad()
def single_feature_profile(params: MLPParams, values: Tensor, q: float) -> dict[str, Tensor]:
    """scale_profile for the single-active-feature distribution: every feature i alone at every value
    v in `values` (equal weights), x = v e_i, target ReLU(x). Same keys, so scaled_lq_loss and
    line_search_scale apply unchanged; norm = n V n (mean over samples and features)."""
    I, n = params.instances, params.n_features
    V = values.shape[0]
    dev = params.W_in.device
    values = values.to(dev, params.W_in.dtype)
    s0 = torch.zeros(I, dtype=torch.float64, device=dev)
    ys, ts = [], []
    step = max(1, 4_000_000 // max(1, I * V * n))  # features per block: bounds y at [I, f V, n]
    for s in range(0, n, step):
        f = torch.arange(s, min(n, s + step), device=dev)
        x = torch.zeros(len(f), V, n, dtype=values.dtype, device=dev)
        x[torch.arange(len(f), device=dev), :, f] = values
        x = x.reshape(-1, n)
        y = forward(params, x.expand(I, -1, -1))  # [I, f V, n]
        pos = x > 0  # the entries whose target ReLU(x) is positive: only (i, i) with v > 0
        s0 += (y.abs().pow(q) * ~pos).sum((1, 2), dtype=torch.float64)
        ys.append(y[:, pos])
        ts.append(x[pos])
    return {"s0": s0, "y_pos": torch.cat(ys, 1), "t_pos": torch.cat(ts), "norm": float(n * V * n)}


def scaled_lq_loss(profile: dict[str, Tensor], scales: Tensor, q: float) -> Tensor:
    """Lq loss of c * y for scales [C] (shared) or [I, C] (per instance) -> [I, C] float64."""
    s0, yp, tp = profile["s0"], profile["y_pos"].double(), profile["t_pos"].double()
    c = scales.to(s0.device, torch.float64)
    if c.dim() == 1:
        c = c.expand(s0.shape[0], -1)
    out = c.pow(q) * s0[:, None]
    for j in range(c.shape[1]):  # a loop over C keeps memory at [I, K]
        out[:, j] += (c[:, j:j + 1] * yp - tp).abs().pow(q).sum(1)
    return out / profile["norm"]


def line_search_scale(profile: dict[str, Tensor], q: float, *, lo: float = LINE_SEARCH_RANGE[0],
                      hi: float = LINE_SEARCH_RANGE[1], coarse: int = LINE_SEARCH_COARSE,
                      fine: int = LINE_SEARCH_FINE) -> dict[str, Tensor]:
    """1-D search over the output scale c (W_out and b_out times c): a coarse grid on [lo, hi], then a
    fine grid of +- one coarse step around each instance's coarse best.

    Returns scales [I, coarse + fine] (sorted), losses [I, same], best [I], at_edge [I] (bool: the best
    is an end of [lo, hi], so the true optimum may lie outside)."""
    dev = profile["s0"].device
    cg = torch.linspace(lo, hi, coarse, dtype=torch.float64, device=dev)
    cl = scaled_lq_loss(profile, cg, q)
    step = (hi - lo) / max(coarse - 1, 1)
    b0 = cg[cl.argmin(1)]  # [I]
    fg = (b0[:, None] + torch.linspace(-step, step, fine, dtype=torch.float64, device=dev)[None, :]
          ).clamp(lo, hi)
    fl = scaled_lq_loss(profile, fg, q)
    scales, losses = torch.cat([cg.expand_as(cl), fg], 1), torch.cat([cl, fl], 1)
    order = scales.argsort(1)
    scales, losses = scales.gather(1, order), losses.gather(1, order)
    best = scales.gather(1, losses.argmin(1, keepdim=True))[:, 0]
    at_edge = (best <= lo + 1e-12) | (best >= hi - 1e-12)
    return {"scales": scales, "losses": losses, "best": best, "at_edge": at_edge}


@torch.no_grad()
def sparsity_sweep(params: MLPParams, ps: Sequence[float], *, samples: int, seed: int,
                   chunk: int = DEFAULT_CHUNK) -> Tensor:
    """Mean over features of the active-conditioned per-feature MSE at each sparsity p: [I, P] float64.

    Conditioning, so that tiny p still gives every feature samples: sample s designates feature
    k = s mod n and forces it active with a fresh U(-1, 1) value; the other features are active
    independently w.p. p. The designated feature's squared error is then a draw from exactly the
    active-conditioned distribution at p, and every feature gets samples / n of them at every p. The
    same uniforms are reused at every p (one seed), so the curve over p is smooth.
    """
    I, n = params.instances, params.n_features
    dev, dt = params.W_in.device, params.W_in.dtype
    out = torch.zeros(I, len(ps), dtype=torch.float64, device=dev)
    for j, p in enumerate(ps):
        if not 0 < p <= 1:
            raise ValueError(f"sweep p = {p}, must be in (0, 1]")
        g = generator(seed, dev)
        sums = torch.zeros(I, n, dtype=torch.float64, device=dev)
        count = torch.zeros(n, dtype=torch.int64, device=dev)
        done = 0
        while done < samples:
            b = min(chunk, samples - done)
            x = sample_dense([g], b, n, p, device=dev, dtype=dt)[0]  # [b, n]
            forced = torch.rand(b, device=dev, generator=g, dtype=dt) * 2 - 1
            k = (torch.arange(b, device=dev) + done) % n
            rows = torch.arange(b, device=dev)
            x[rows, k] = forced
            a = hidden(params, x.expand(I, -1, -1))  # [I, b, h]
            yk = (a * params.W_out[:, k, :]).sum(-1)  # [I, b]: only the designated output
            if params.b_out is not None:
                yk = yk + params.b_out[:, k]
            sums.index_add_(1, k, (yk - torch.relu(forced)).square().double())
            count.index_add_(0, k, torch.ones_like(k))
            done += b
        per_feature = sums[:, count > 0] / count[count > 0]
        out[:, j] = per_feature.mean(1) if per_feature.shape[1] else float("nan")
    return out


# ----------------------------------------------------------------------------- strategy


def strategy_stats(gain: np.ndarray, ignored_below: float = IGNORED_GAIN) -> dict[str, np.ndarray]:
    """From per-feature gains [I, n]: ignored [I] (features with gain < ignored_below), and over the
    other ("kept") features their mean, std, min and max gain [I] (NaN when none is kept)."""
    g = np.asarray(gain, dtype=float)
    kept = g >= ignored_below
    with warnings.catch_warnings():  # an instance with no kept feature: NaN, by design
        warnings.simplefilter("ignore", RuntimeWarning)
        kg = np.where(kept, g, np.nan)
        return {"ignored": (~kept).sum(1).astype(float), "kept_mean": np.nanmean(kg, 1),
                "kept_std": np.nanstd(kg, 1), "kept_min": np.nanmin(kg, 1),
                "kept_max": np.nanmax(kg, 1)}


def classify_strategy(ignored: float, kept_mean: float, kept_std: float, n_features: int,
                      n_hidden: int) -> str:
    """Name the strategy from its measured gains (means over instances of strategy_stats):
      "naive"    at most h features kept (rounded), at a gain >= 0.8 (each computed almost exactly);
      "uniform"  no feature ignored (rounded) and the gains' std <= 25 % of their mean;
      "mixed"    some features ignored and the rest kept: neither of the two above;
      "spread"   none ignored but gains far from uniform.
    Thresholds are the definition, not fitted: they separate the report's two reference strategies."""
    kept = n_features - ignored
    if not np.isfinite(kept_mean):
        return "none kept"
    if round(kept) <= n_hidden and kept_mean >= 0.8:
        return "naive"
    if round(ignored) == 0:
        return "uniform" if kept_std <= 0.25 * kept_mean else "spread"
    return "mixed"


# ----------------------------------------------------------------------------- the analysis record

_REPORT = {  # the compressed-computation report's values (superposition-mlp-report.md)
    "gain": "0.43 ± 0.01", "weff_diag": "0.43 ± 0.01", "abs_cos": "0.26", "mse": "0.0745",
    "mse_spread": "0.0671 / 0.0808 (std 0.0029)", "naive": "0.1496",
    "isolated": "0.0642 (86 %)", "interference_measured": "0.0103 (14 %)",
    # the report's pure-gain numbers are (1 - g)^2 / 6 at its g = 0.43, i.e. at the W_eff diagonal
    "attenuation_pure_gain_weff": "~0.054 (73 %)", "interference_pure_gain_weff": "~0.020 (27 %)",
    "l4_ratio": "8.5×", "l2_ratio": "~2.7×", "mse_ratio": "2.0×", "negative_residual": "≈ −0.04",
}


@dataclass
class ToyAnalysis:
    """Per-instance results of every analysis (numpy). I = instances, n = features, h = neurons.

    Single-model pictures use instance 0 (fields ending in 0); L2 fields are None without l2_params.
    """

    n_features: int
    n_hidden: int
    instances: int
    p: float
    loss_power: float
    eval_samples: int
    seed: int
    bias: bool
    # 1-2: per-feature MSE on the evaluation set, and the naive model on the same set
    mse_active: np.ndarray  # [I, n]
    mse_all: np.ndarray  # [I, n]
    active_count: np.ndarray  # [n]
    naive_mse_active: np.ndarray  # [n]
    naive_mse_all: np.ndarray  # [n]
    lq_powers: np.ndarray  # [Q]
    lq_trained: np.ndarray  # [I, Q]
    lq_naive: np.ndarray  # [Q]
    # 3: response curves
    gain: np.ndarray  # [I, n]
    gain_intercept: np.ndarray  # [I, n]
    negative_residual: np.ndarray  # [I, n]
    value_at_minus1: np.ndarray  # [I, n]
    response_t: np.ndarray  # [V'] (subsampled grid)
    response_curves0: np.ndarray  # [n, V']
    # 4: weights
    W_in0: np.ndarray  # [h, n]
    W_out0: np.ndarray  # [n, h]
    weff0: np.ndarray  # [n, n]
    weff_diag: np.ndarray  # [I, n]
    weff_offdiag_mean: np.ndarray  # [I]
    weff_offdiag_abs_mean: np.ndarray  # [I]
    weff_offdiag_std: np.ndarray  # [I]
    # 5: geometry
    abs_cos_mean: np.ndarray  # [I]
    cos_mean: np.ndarray  # [I]
    max_abs_cos: np.ndarray  # [I]
    cos_sq_mean: np.ndarray  # [I]
    zero_norm_features: np.ndarray  # [I]
    cos_hist_edges: np.ndarray  # [B + 1]
    cos_hist: np.ndarray  # [I, B] density
    cos_hist_random: np.ndarray  # [B] density
    abs_cos_random_mc: float
    # 8: cross-gain
    cross_gain0: np.ndarray  # [n, n] G[j, i] of instance 0
    self_gain: np.ndarray  # [I, n]
    cross_gain_mean: np.ndarray  # [I]
    cross_gain_abs_mean: np.ndarray  # [I]
    cross_gain_min: np.ndarray  # [I]
    cross_gain_max: np.ndarray  # [I]
    interference_rms: np.ndarray  # [I, n]
    predicted_interference_mse: np.ndarray  # [I, n]
    # 9: isolated error
    isolated_mse: np.ndarray  # [I, n]
    isolated_mse_positive: np.ndarray  # [I, n]
    isolated_mse_negative: np.ndarray  # [I, n]
    # 10: optimal gain
    gain_ratio_K: np.ndarray  # [I, n]
    gamma_star: np.ndarray  # [I, n]
    gamma_star_mean_K: np.ndarray  # [I]
    line_search_scales: np.ndarray  # [I, C]
    line_search_losses: np.ndarray  # [I, C]
    line_search_best_scale: np.ndarray  # [I]
    line_search_at_edge: np.ndarray  # [I] bool
    # 11: residual ablation
    ablated_isolated_mse: np.ndarray  # [I, n]
    ablated_mse_active: np.ndarray  # [I, n]
    # 6: sparsity sweep
    sweep_ps: np.ndarray  # [P]
    sweep_mse: np.ndarray  # [I, P]
    sweep_naive: np.ndarray  # [P]
    # 7: the same seeds trained with L2 (None without l2_params)
    l2_gain: np.ndarray | None = None  # [I2, n]
    l2_mse_active: np.ndarray | None = None  # [I2, n]
    l2_weff_diag: np.ndarray | None = None  # [I2, n]
    l2_isolated_mse: np.ndarray | None = None  # [I2, n]
    l2_lq: np.ndarray | None = None  # [I2, Q]
    sweep_l2: np.ndarray | None = None  # [I2, P]
    l2_from_main: bool = False  # True: loss_power = 2, so the L2 fields are the trained models' own
    # 10b: line searches on single-active-feature losses (None in analyses written before them)
    single_line_search_scales: np.ndarray | None = None  # [I, C], one feature active, x ~ U(0, 1]
    single_line_search_losses: np.ndarray | None = None  # [I, C]
    single_line_search_best_scale: np.ndarray | None = None  # [I]
    single_line_search_at_edge: np.ndarray | None = None  # [I] bool
    isolated_line_search_scales: np.ndarray | None = None  # [I, C], one feature active, x ~ U(-1, 1)
    isolated_line_search_losses: np.ndarray | None = None  # [I, C]
    isolated_line_search_best_scale: np.ndarray | None = None  # [I]

    # ------------------------------------------------------------------ derived per-instance values

    def _lq(self, q: float, which: str) -> np.ndarray:
        j = int(np.argmin(np.abs(self.lq_powers - q)))
        if abs(self.lq_powers[j] - q) > 1e-9:
            raise KeyError(f"L{q:g} loss not evaluated (have {list(self.lq_powers)})")
        return {"trained": self.lq_trained[:, j], "naive": np.full(self.instances, self.lq_naive[j]),
                "l2": None if self.l2_lq is None else self.l2_lq[:, j]}[which]

    def per_instance(self) -> dict[str, np.ndarray]:
        """Every scalar result per instance [I] (the metrics are their means and stds over instances).
        Ratios with a zero denominator (an exact model) are NaN, reported as null."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._per_instance()

    def _per_instance(self) -> dict[str, np.ndarray]:
        mse = self.mse_active.mean(1)
        iso = self.isolated_mse.mean(1)
        g = self.gain.mean(1)
        att_pure = theory.attenuated_isolated_mse(g)
        naive = np.full(self.instances, np.nanmean(self.naive_mse_active))
        abl_iso, abl_mse = self.ablated_isolated_mse.mean(1), np.nanmean(self.ablated_mse_active, 1)
        att_weff = theory.attenuated_isolated_mse(self.weff_diag.mean(1))
        nan = np.full(self.instances, np.nan)
        single = (nan if self.single_line_search_best_scale is None
                  else self.single_line_search_best_scale)
        single_edge = (nan if self.single_line_search_at_edge is None
                       else self.single_line_search_at_edge.astype(float))
        iso_ls = (nan if self.isolated_line_search_best_scale is None
                  else self.isolated_line_search_best_scale)
        st = strategy_stats(self.gain)
        d = {
            "mse_active_mean": np.nanmean(self.mse_active, 1),
            "mse_active_min": np.nanmin(self.mse_active, 1),
            "mse_active_max": np.nanmax(self.mse_active, 1),
            "mse_active_feature_std": np.nanstd(self.mse_active, 1),
            "mse_all_mean": self.mse_all.mean(1),
            "naive_mse_active_mean": naive,
            "naive_mse_all_mean": np.full(self.instances, self.naive_mse_all.mean()),
            "mse_improvement_over_naive": naive / np.nanmean(self.mse_active, 1),
            "gain_mean": g,
            "gain_std": self.gain.std(1),
            "gain_intercept_mean": self.gain_intercept.mean(1),
            "negative_residual_mean": self.negative_residual.mean(1),
            "value_at_minus1_mean": self.value_at_minus1.mean(1),
            "weff_diag_mean": self.weff_diag.mean(1),
            "weff_diag_std": self.weff_diag.std(1),
            "weff_offdiag_mean": self.weff_offdiag_mean,
            "weff_offdiag_abs_mean": self.weff_offdiag_abs_mean,
            "weff_offdiag_std": self.weff_offdiag_std,
            "abs_cos_mean": self.abs_cos_mean,
            "cos_mean": self.cos_mean,
            "max_abs_cos": self.max_abs_cos,
            "cos_sq_mean": self.cos_sq_mean,
            "zero_norm_features": self.zero_norm_features,
            "self_gain_mean": self.self_gain.mean(1),
            "self_gain_std": self.self_gain.std(1),
            "cross_gain_mean": self.cross_gain_mean,
            "cross_gain_abs_mean": self.cross_gain_abs_mean,
            "cross_gain_min": self.cross_gain_min,
            "cross_gain_max": self.cross_gain_max,
            "interference_rms_mean": self.interference_rms.mean(1),
            "predicted_interference_mse_mean": self.predicted_interference_mse.mean(1),
            "isolated_mse_mean": iso,
            "isolated_mse_positive_mean": self.isolated_mse_positive.mean(1),
            "isolated_mse_negative_mean": self.isolated_mse_negative.mean(1),
            "interference_mse_measured": mse - iso,
            "attenuation_share_measured": iso / mse,
            "interference_share": 1 - iso / mse,
            "attenuation_mse_pure_gain": att_pure,
            "attenuation_share_pure_gain": att_pure / mse,
            "interference_mse_pure_gain": mse - att_pure,
            "attenuation_mse_pure_gain_weff": att_weff,
            "attenuation_share_pure_gain_weff": att_weff / mse,
            "interference_mse_pure_gain_weff": mse - att_weff,
            "gain_ratio_K_mean": self.gain_ratio_K.mean(1),
            "optimal_gain": self.gamma_star_mean_K,
            "optimal_gain_per_feature_mean": self.gamma_star.mean(1),
            "optimal_gain_line_search": self.line_search_best_scale * g,
            "line_search_best_scale": self.line_search_best_scale,
            "line_search_at_edge": self.line_search_at_edge.astype(float),
            "optimal_gain_line_search_single": single * g,
            "line_search_single_best_scale": single,
            "line_search_single_at_edge": single_edge,
            "optimal_gain_line_search_isolated": iso_ls * g,
            "ignored_features": st["ignored"],
            "kept_gain_mean": st["kept_mean"],
            "kept_gain_std": st["kept_std"],
            "residual_ablation_isolated_mse_model": iso,
            "residual_ablation_isolated_mse_ablated": abl_iso,
            "residual_ablation_training_mse_model": mse,
            "residual_ablation_training_mse_ablated": abl_mse,
            "residual_ablation_interference_model": mse - iso,
            "residual_ablation_interference_ablated": abl_mse - abl_iso,
            "residual_ablation_interference_increase": (abl_mse - abl_iso) - (mse - iso),
            "residual_ablation_isolated_decrease": iso - abl_iso,
        }
        # L2 and L4 always, "lq" at the training loss power (the same as one of them when q is 2 or 4)
        for tag, q in (("l2", 2.0), ("l4", 4.0), ("lq", self.loss_power)):
            d[f"{tag}_loss_learned"] = self._lq(q, "trained")
            d[f"{tag}_loss_naive"] = self._lq(q, "naive")
            d[f"{tag}_naive_over_learned"] = self._lq(q, "naive") / self._lq(q, "trained")
        return d

    def per_instance_l2(self) -> dict[str, np.ndarray] | None:
        """L2-trained scalars per L2 instance, or None."""
        if self.l2_gain is None:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._per_instance_l2()

    def _per_instance_l2(self) -> dict[str, np.ndarray]:
        st = strategy_stats(self.l2_gain)
        d = {
            "l2_trained_ignored_features": st["ignored"],
            "l2_trained_kept_gain_mean": st["kept_mean"],
            "l2_trained_kept_gain_std": st["kept_std"],
            "l2_trained_kept_gain_min": st["kept_min"],
            "l2_trained_kept_gain_max": st["kept_max"],
            "l2_trained_gain_mean": self.l2_gain.mean(1),
            "l2_trained_gain_std": self.l2_gain.std(1),
            "l2_trained_mse_active_mean": np.nanmean(self.l2_mse_active, 1),
            "l2_trained_mse_active_feature_std": np.nanstd(self.l2_mse_active, 1),
            "l2_trained_mse_active_range": (np.nanmax(self.l2_mse_active, 1)
                                            - np.nanmin(self.l2_mse_active, 1)),
            "l2_trained_weff_diag_mean": self.l2_weff_diag.mean(1),
            "l2_trained_weff_diag_std": self.l2_weff_diag.std(1),
            "l2_trained_isolated_mse_mean": self.l2_isolated_mse.mean(1),
        }
        for tag, q in (("l2", 2.0), ("l4", 4.0), ("lq", self.loss_power)):
            d[f"l2_trained_{tag}_loss"] = self._lq(q, "l2")
        d["l2_trained_l2_naive_over_learned"] = self._lq(2.0, "naive") / self._lq(2.0, "l2")
        return d

    # ------------------------------------------------------------------ metrics

    def metrics(self) -> dict[str, Any]:
        """JSON-ready: mean over instances of every per-instance value, with `<key>_std` = std over
        instances (population std; 0 for one instance). gain_std / weff_diag_std are spreads over
        features (mean over instances) and get no _std twin; their over-instance spread of the mean is
        gain_mean_std / weff_diag_mean_std. NaN / inf (e.g. a ratio over an exact model) become null."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._metrics()

    def _metrics(self) -> dict[str, Any]:
        m: dict[str, Any] = {
            "n_features": self.n_features, "n_hidden": self.n_hidden, "instances": self.instances,
            "p": self.p, "loss_power": self.loss_power, "eval_samples": self.eval_samples,
        }
        for src in (self.per_instance(), self.per_instance_l2() or {}):
            for k, v in src.items():
                m[k] = _num(np.mean(v))
                if k not in _NO_TWIN:
                    m[k + "_std"] = _num(np.std(v))
        m["zero_norm_features"] = _num(np.mean(self.zero_norm_features))
        m["naive_mse_active_theory"] = theory.naive_mse_active_mean(self.n_features, self.n_hidden)
        m["naive_mse_all_theory"] = theory.naive_mse_all_mean(self.n_features, self.n_hidden, self.p)
        m["abs_cos_random_theory"] = theory.random_abs_cos_mean(self.n_hidden)
        m["abs_cos_random_mc"] = _num(self.abs_cos_random_mc)
        m["cos_sq_random_theory"] = theory.random_cos_sq_mean(self.n_hidden)
        m["welch_bound"] = theory.welch_bound(self.n_features, self.n_hidden)
        m["welch_bound_mean_square"] = theory.welch_bound_mean_square(self.n_features, self.n_hidden)
        # the verdict on the instance means (per-instance agreement alongside)
        inc = m["residual_ablation_interference_increase"]
        dec = m["residual_ablation_isolated_decrease"]
        m["negative_residual_reduces_interference"] = None if inc is None else bool(inc > 0)
        m["negative_residual_pays_for_itself"] = (None if inc is None or dec is None
                                                  else bool(inc > dec))
        pi = self.per_instance()
        m["negative_residual_reduces_interference_fraction"] = _num(np.mean(
            pi["residual_ablation_interference_increase"] > 0))
        for k in ("l2_trained_gain_mean", "l2_trained_gain_std", "l2_trained_mse_active_mean",
                  "l2_trained_mse_active_feature_std", "l2_trained_mse_active_range",
                  "l2_trained_weff_diag_mean", "l2_trained_ignored_features",
                  "l2_trained_kept_gain_mean", "l2_trained_kept_gain_std"):
            m.setdefault(k, None)
        m["l2_trained_from_main_model"] = None if self.l2_gain is None else bool(self.l2_from_main)
        m["sparsity_sweep"] = [
            {"p": float(p), "mse_active_mean": _num(np.nanmean(self.sweep_mse[:, j])),
             "mse_active_std": _num(np.nanstd(self.sweep_mse[:, j])),
             "naive_mse_active_mean": _num(self.sweep_naive[j]),
             "l2_trained_mse_active_mean": (None if self.sweep_l2 is None
                                            else _num(np.nanmean(self.sweep_l2[:, j])))}
            for j, p in enumerate(self.sweep_ps)]
        return m

    def summary_rows(self) -> list[dict[str, str]]:
        """The report's quantitative summary, re-measured: rows {quantity, superlens (mean ± std over
        instances unless stated), report, definition}."""
        pi = self.per_instance()

        def ms(k: str, digits: int = 4) -> str:
            v = pi[k]
            return f"{np.mean(v):.{digits}g} ± {np.std(v):.2g}"

        def share(k_mse: str, k_share: str) -> str:
            return f"{ms(k_mse)} ({100 * np.mean(pi[k_share]):.0f} %)"

        g, gf = np.mean(pi["gain_mean"]), np.mean(pi["gain_std"])
        wd, wf = np.mean(pi["weff_diag_mean"]), np.mean(pi["weff_diag_std"])
        rows = [
            ("Per-feature gain (positive inputs)", f"{g:.4g} ± {gf:.2g} (± over features)", "gain",
             "Least-squares slope (with intercept) of the self-response on t > 0; ± is the spread over "
             "features, as in the report."),
            ("W_eff diagonal (linear self-gain)", f"{wd:.4g} ± {wf:.2g} (± over features)", "weff_diag",
             "diag(W_out W_in); ± is the spread over features."),
            ("Mean pairwise |cos| of W_in columns", ms("abs_cos_mean", 3)
             + f" (random: {theory.random_abs_cos_mean(self.n_hidden):.4f})", "abs_cos",
             "Mean |cos| over pairs of features; random directions in R^h give the value in brackets."),
            ("Trained per-feature MSE (active)", ms("mse_active_mean"), "mse",
             "Mean over features of the MSE over samples where that feature is active."),
            ("  min / max (std) over features", f"{np.mean(pi['mse_active_min']):.4g} / "
             f"{np.mean(pi['mse_active_max']):.4g} (std {np.mean(pi['mse_active_feature_std']):.2g})",
             "mse_spread", "Smallest and largest per-feature active MSE and their std over features "
             "(mean over instances)."),
            ("Naive per-feature MSE (active)", ms("naive_mse_active_mean"), "naive",
             "The hand-coded naive model on the same evaluation set; theory (n - h)/n/6."),
            ("Isolated MSE (measured attenuation)", share("isolated_mse_mean",
                                                          "attenuation_share_measured"), "isolated",
             "One feature active, x ~ U(-1, 1), by quadrature over the response curve; share of the "
             "trained MSE."),
            ("Interference MSE (trained − isolated)", share("interference_mse_measured",
                                                            "interference_share"),
             "interference_measured", "Trained active MSE minus isolated MSE; share of the trained MSE."),
            ("Attenuation MSE, pure-gain theory at g = gain", share("attenuation_mse_pure_gain",
                                                                    "attenuation_share_pure_gain"),
             None, "(1 − g)^2 / 6 with g the mean response slope (ignores the negative residual "
             "and the hidden ReLU); share of the trained MSE."),
            ("Interference MSE, trained − pure-gain theory at g = gain",
             ms("interference_mse_pure_gain"), None, "Trained active MSE minus (1 − g)^2 / 6."),
            ("Attenuation MSE, pure-gain theory at g = diag(W_eff)",
             share("attenuation_mse_pure_gain_weff", "attenuation_share_pure_gain_weff"),
             "attenuation_pure_gain_weff", "(1 − g)^2 / 6 with g the mean of diag(W_out W_in); share "
             "of the trained MSE."),
            ("Interference MSE, trained − pure-gain theory at g = diag(W_eff)",
             ms("interference_mse_pure_gain_weff"), "interference_pure_gain_weff",
             "Trained active MSE minus (1 − g)^2 / 6 with g = mean diag(W_eff)."),
            (f"L{self.loss_power:g} improvement over naive", ms("lq_naive_over_learned", 3) + "×",
             "l4_ratio" if self.loss_power == 4 else None,
             f"Naive / learned L{self.loss_power:g} loss (mean over samples and features of "
             f"|y − ReLU(x)|^{self.loss_power:g}) on the training distribution."),
            ("L2 (MSE) loss improvement over naive", ms("l2_naive_over_learned", 3) + "×", "l2_ratio",
             "Naive / learned unconditional MSE on the training distribution."),
            ("Per-feature MSE improvement over naive", ms("mse_improvement_over_naive", 3) + "×",
             "mse_ratio", "Naive / trained mean active-conditioned per-feature MSE."),
            ("Negative-input residual", ms("negative_residual_mean", 3), "negative_residual",
             "Mean self-response over the grid points t < 0."),
        ]
        return [{"quantity": q, "superlens": v, "report": _REPORT.get(r, "—") if r else "—",
                 "definition": d} for q, v, r, d in rows]

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: arrays as {"__ndarray__": nested lists, "dtype"}; in arrays NaN is None and
        +-inf is "inf" / "-inf" (read back as such)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                out[f.name] = {"__ndarray__": _clean(v.tolist()), "dtype": str(v.dtype)}
            elif isinstance(v, (float, np.floating)):
                out[f.name] = _clean(float(v))
            elif isinstance(v, (np.integer, np.bool_)):
                out[f.name] = v.item()
            else:
                out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ToyAnalysis":
        kw = {}
        names = {f.name for f in fields(cls)}
        for k, v in d.items():
            if k not in names:
                continue  # written by a newer version: ignore
            if isinstance(v, dict) and "__ndarray__" in v:
                kw[k] = np.array(v["__ndarray__"], dtype=float if v["dtype"].startswith("float")
                                 else v["dtype"])
            elif k == "abs_cos_random_mc":
                kw[k] = float("nan") if v is None else float(v)  # float("inf") parses "inf"
            else:
                kw[k] = v
        return cls(**kw)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def _num(v) -> float | None:
    """A JSON-safe float: NaN and inf become None."""
    v = float(v)
    return v if math.isfinite(v) else None


def _clean(x):
    """Nested lists for JSON: NaN -> None, +-inf -> "inf" / "-inf" (numpy parses both back)."""
    if isinstance(x, list):
        return [_clean(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


# ----------------------------------------------------------------------------- entry point


def _np(t: Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float64).numpy() if t.dtype.is_floating_point else t.cpu().numpy()


@torch.no_grad()
def analyze(params: MLPParams, *, p: float, loss_power: float, eval_samples: int, seed: int,
            l2_params: MLPParams | None = None, sweep_ps: Sequence[float] | None = None,
            sweep_samples: int | None = None, chunk: int = DEFAULT_CHUNK,
            response_points: int = RESPONSE_POINTS) -> ToyAnalysis:
    """Every analysis of trained models (and optionally the same seeds trained under L2).

    params: the trained models, I instances, on any device (the analysis runs there).
    p, loss_power: the training distribution's sparsity and the training loss exponent q.
    eval_samples: size of the seeded evaluation set (drawn in chunks of `chunk`, generator seeded with
    `seed`); sweep_samples: samples per p of the sparsity sweep (default eval_samples).
    sweep_ps: sparsities for the sweep (default logspace(-3, 0, 13)); the training p is always added.
    """
    if not 0 < p <= 1:
        raise ValueError(f"p = {p}, must be in (0, 1]")
    if loss_power < 1:
        raise ValueError(f"loss_power = {loss_power}, must be >= 1")
    params = params.detach()
    I, h, n = params.W_in.shape
    dev, dt = params.W_in.device, params.W_in.dtype
    q = float(loss_power)
    powers = sorted({2.0, 4.0, q})
    naive = naive_params(n, h, 1, device=dev, dtype=dt)
    l2 = None if l2_params is None else l2_params.detach().to(dev, dt)
    if l2 is not None and (l2.n_features, l2.n_hidden) != (n, h):
        raise ValueError(f"l2_params: {l2.n_features} -> {l2.n_hidden}, expected {n} -> {h}")
    I2 = 0 if l2 is None else l2.instances

    # response curves, isolated error and the ablation's correction
    t = response_grid(response_points, device=dev, dtype=dt)
    curves = response_curves(params, t)
    rs = response_stats(t, curves)
    iso = isolated_mse(t, curves)
    s = negative_self_response(t, curves)
    iso_abl = isolated_mse(t, curves - s)

    # one pass over the evaluation set: trained, ablated, naive, L2 stacked on the instance axis
    models = [params, params, naive] + ([l2] if l2 is not None else [])
    zero = torch.zeros_like(s)
    corr = torch.cat([zero, s, torch.zeros_like(s[:1])]
                     + ([torch.zeros(I2, n, t.shape[0], dtype=dt, device=dev)] if l2 is not None else []))
    ev = evaluate(stack_params(models), p=p, samples=eval_samples, seed=seed, powers=powers, chunk=chunk,
                  negative_correction=corr)
    sl = {"trained": slice(0, I), "ablated": slice(I, 2 * I), "naive": slice(2 * I, 2 * I + 1),
          "l2": slice(2 * I + 1, 2 * I + 1 + I2)}

    # weights, geometry, cross-gain
    weff = effective_weights(params)
    ws = matrix_stats(weff)
    cos, zero_cols = feature_cosines(params.W_in)
    pairs = [c.double().cpu() for c in offdiag_pairs(cos, zero_cols)]
    edges = np.linspace(-1, 1, COS_BINS + 1)
    nan = float("nan")
    hist = np.stack([np.histogram(c.numpy(), bins=edges, density=True)[0] if len(c)
                     else np.zeros(COS_BINS) for c in pairs])
    pairs_n = n * (n - 1) // 2
    rand = random_direction_cosines(n, h, max(1, min(200, math.ceil(50_000 / max(pairs_n, 1)))), seed) \
        if n > 1 else torch.zeros(0, dtype=torch.float64)
    G, Gm = cross_gain(params, 1.0), cross_gain(params, -1.0)
    gs = matrix_stats(G)
    K = gain_ratio_K(G, q)

    # line search over the output scale on the training distribution
    prof = scale_profile(params, q=q, p=p, samples=eval_samples, seed=seed, chunk=chunk)
    ls = line_search_scale(prof, q)
    # ... and on the single-active-feature loss the closed form γ* assumes (x > 0 only), plus the
    # isolated distribution (x ~ U(-1, 1)): the steps between the three optima locate the gap
    ls1 = line_search_scale(single_feature_profile(params, single_feature_values(device=dev, dtype=dt),
                                                   q), q)
    ls_iso = line_search_scale(single_feature_profile(
        params, single_feature_values(negative=True, device=dev, dtype=dt), q), q)

    # sparsity sweep: trained, naive (and L2) on the same conditioned samples
    ps = list(DEFAULT_SWEEP_PS if sweep_ps is None else sweep_ps)
    ps = sorted({round(float(v), 12) for v in ps} | {round(float(p), 12)})
    sw = sparsity_sweep(stack_params([params, naive] + ([l2] if l2 is not None else [])), ps,
                        samples=sweep_samples or eval_samples, seed=seed, chunk=chunk)

    stride = max(1, (t.shape[0] - 1) // (FIGURE_POINTS - 1))
    K_np = _np(K)
    out = ToyAnalysis(
        n_features=n, n_hidden=h, instances=I, p=float(p), loss_power=q, eval_samples=int(eval_samples),
        seed=int(seed), bias=params.b_in is not None or params.b_out is not None,
        mse_active=_np(ev["mse_active"][sl["trained"]]), mse_all=_np(ev["mse_all"][sl["trained"]]),
        active_count=_np(ev["active_count"]),
        naive_mse_active=_np(ev["mse_active"][sl["naive"]][0]),
        naive_mse_all=_np(ev["mse_all"][sl["naive"]][0]),
        lq_powers=np.array(powers), lq_trained=_np(ev["lq"][sl["trained"]]),
        lq_naive=_np(ev["lq"][sl["naive"]][0]),
        gain=_np(rs["gain"]), gain_intercept=_np(rs["intercept"]),
        negative_residual=_np(rs["negative_residual"]), value_at_minus1=_np(rs["value_at_minus1"]),
        response_t=_np(t[::stride]), response_curves0=_np(curves[0, :, ::stride]),
        W_in0=_np(params.W_in[0]), W_out0=_np(params.W_out[0]), weff0=_np(weff[0]),
        weff_diag=_np(ws["diag"]), weff_offdiag_mean=_np(ws["off_mean"]),
        weff_offdiag_abs_mean=_np(ws["off_abs_mean"]), weff_offdiag_std=_np(ws["off_std"]),
        abs_cos_mean=np.array([c.abs().mean().item() if len(c) else nan for c in pairs]),
        cos_mean=np.array([c.mean().item() if len(c) else nan for c in pairs]),
        max_abs_cos=np.array([c.abs().max().item() if len(c) else nan for c in pairs]),
        cos_sq_mean=np.array([c.square().mean().item() if len(c) else nan for c in pairs]),
        zero_norm_features=_np(zero_cols.sum(1)).astype(float),
        cos_hist_edges=edges, cos_hist=hist,
        cos_hist_random=(np.histogram(rand.numpy(), bins=edges, density=True)[0] if len(rand)
                         else np.zeros(COS_BINS)),
        abs_cos_random_mc=float(rand.abs().mean()) if len(rand) else nan,
        cross_gain0=_np(G[0]), self_gain=_np(gs["diag"]), cross_gain_mean=_np(gs["off_mean"]),
        cross_gain_abs_mean=_np(gs["off_abs_mean"]), cross_gain_min=_np(gs["off_min"]),
        cross_gain_max=_np(gs["off_max"]), interference_rms=_np(interference_rms(G)),
        predicted_interference_mse=theory.first_order_interference_mse(_np(G), _np(Gm), p),
        isolated_mse=_np(iso["total"]), isolated_mse_positive=_np(iso["positive"]),
        isolated_mse_negative=_np(iso["negative"]),
        gain_ratio_K=K_np, gamma_star=np.asarray(theory.optimal_gain(K_np, q), dtype=float),
        gamma_star_mean_K=np.asarray(theory.optimal_gain(K_np.mean(1), q), dtype=float).reshape(I),
        line_search_scales=_np(ls["scales"]), line_search_losses=_np(ls["losses"]),
        line_search_best_scale=_np(ls["best"]), line_search_at_edge=_np(ls["at_edge"]),
        single_line_search_scales=_np(ls1["scales"]), single_line_search_losses=_np(ls1["losses"]),
        single_line_search_best_scale=_np(ls1["best"]), single_line_search_at_edge=_np(ls1["at_edge"]),
        isolated_line_search_scales=_np(ls_iso["scales"]),
        isolated_line_search_losses=_np(ls_iso["losses"]),
        isolated_line_search_best_scale=_np(ls_iso["best"]),
        ablated_isolated_mse=_np(iso_abl["total"]), ablated_mse_active=_np(ev["mse_active"][sl["ablated"]]),
        sweep_ps=np.array(ps), sweep_mse=_np(sw[:I]), sweep_naive=_np(sw[I]),
    )
    if l2 is not None:
        c2 = response_curves(l2, t)
        out.l2_gain = _np(response_stats(t, c2)["gain"])
        out.l2_mse_active = _np(ev["mse_active"][sl["l2"]])
        out.l2_weff_diag = _np(torch.diagonal(effective_weights(l2), dim1=1, dim2=2))
        out.l2_isolated_mse = _np(isolated_mse(t, c2)["total"])
        out.l2_lq = _np(ev["lq"][sl["l2"]])
        out.sweep_l2 = _np(sw[I + 1:])
    elif q == 2.0:
        # trained under L2 already: the L2-trained models are these models (no second training run),
        # so the L2 fields are copies of the main ones and flagged as such
        out.l2_gain, out.l2_mse_active, out.l2_weff_diag = out.gain, out.mse_active, out.weff_diag
        out.l2_isolated_mse, out.l2_lq, out.sweep_l2 = out.isolated_mse, out.lq_trained, out.sweep_mse
        out.l2_from_main = True
    return out


# ----------------------------------------------------------------------------- definitions

_STD = " `<key>_std` is its std over instances."
METRIC_DEFINITIONS: dict[str, str] = {
    "n_features": "Number of input/output features n.",
    "n_hidden": "Number of hidden neurons h.",
    "instances": "Number of independently trained models (seeds) analysed.",
    "p": "Training sparsity: probability that a feature is active; the evaluation set uses it.",
    "loss_power": "Training loss exponent q (loss = mean over samples and features of |y − ReLU(x)|^q).",
    "eval_samples": "Samples in the seeded evaluation set (shared by all instances and models).",
    "mse_active_mean": "Per-feature MSE over samples where that feature is active (x_k ≠ 0), the "
                       "report's definition; mean over features, then over instances." + _STD,
    "mse_active_min": "Smallest per-feature active MSE of an instance, mean over instances." + _STD,
    "mse_active_max": "Largest per-feature active MSE of an instance, mean over instances." + _STD,
    "mse_active_feature_std": "Std over features of the per-feature active MSE, mean over instances "
                              "(the report's 0.0029).",
    "mse_all_mean": "Per-feature MSE over all samples (active or not), mean over features." + _STD,
    "naive_mse_active_mean": "The hand-coded naive model (one neuron per feature for the first "
                             "min(h, n) features, 0 for the rest) scored like mse_active_mean on the "
                             "same evaluation set." + _STD,
    "naive_mse_active_theory": "Closed form for the naive model: (n − min(h, n)) / n × 1/6, since "
                               "E[ReLU(x)^2] = 1/6 for x ~ U(−1, 1).",
    "naive_mse_all_mean": "The naive model's unconditional per-feature MSE (mean over features)." + _STD,
    "naive_mse_all_theory": "Closed form: p × (n − min(h, n)) / n × 1/6.",
    "mse_improvement_over_naive": "naive_mse_active_mean / mse_active_mean per instance (the "
                                  "report's 2.0×)." + _STD,
    "gain_mean": "Per feature, the least-squares slope (with intercept) of the self-response y_i(t e_i) "
                 "against t over the grid points t > 0 (2,001-point grid on [−1, 1]); mean over "
                 "features, then instances. `gain_mean_std`: std over instances of that mean.",
    "gain_std": "Std over features of the per-feature gain (the report's ± 0.01), mean over instances. "
                "Not a spread over instances: that is gain_mean_std.",
    "gain_intercept_mean": "Intercept of the positive-side gain fit (0 for a bias-free model)." + _STD,
    "negative_residual_mean": "Negative-input residual: the self-response's mean over the grid points "
                              "t < 0 (for a bias-free model, half its value at t = −1); mean over "
                              "features." + _STD,
    "value_at_minus1_mean": "Self-response at t = −1, mean over features." + _STD,
    "weff_diag_mean": "Mean over features of diag(W_eff), W_eff = W_out W_in (the linear self-gain). "
                      "`weff_diag_mean_std`: std over instances of that mean.",
    "weff_diag_std": "Std over features of diag(W_eff), mean over instances (the report's ± 0.01).",
    "weff_offdiag_mean": "Mean of the off-diagonal entries of W_eff." + _STD,
    "weff_offdiag_abs_mean": "Mean |.| of the off-diagonal entries of W_eff." + _STD,
    "weff_offdiag_std": "Std of the off-diagonal entries of W_eff." + _STD,
    "abs_cos_mean": "Mean |cos| between W_in's columns (feature directions) over pairs i < j; columns "
                    "of zero norm are excluded (counted in zero_norm_features). Random directions in "
                    "R^h give abs_cos_random_theory (0.2587 for h = 10), so the report's 0.26 is what "
                    "random directions give." + _STD,
    "cos_mean": "Mean signed cos over pairs of feature directions." + _STD,
    "max_abs_cos": "Largest |cos| over pairs of feature directions (≥ welch_bound for any "
                   "configuration)." + _STD,
    "cos_sq_mean": "Mean cos^2 over pairs (≥ welch_bound_mean_square for any configuration; random "
                   "directions give 1/h)." + _STD,
    "zero_norm_features": "Features whose W_in column has (numerically) zero norm: no direction, cosines "
                          "set to 0 and left out of the cosine statistics; mean over instances.",
    "abs_cos_random_theory": "E|cos| of two uniformly random directions in R^h: "
                             "Γ(h/2) / (√π Γ((h+1)/2)).",
    "abs_cos_random_mc": "Monte Carlo check: mean |cos| over pairs of n Gaussian random directions in "
                         "R^h (repeated draws, seeded).",
    "cos_sq_random_theory": "E[cos^2] of random directions in R^h: 1/h.",
    "welch_bound": "Welch bound: any n unit vectors in R^h have max |cos| ≥ sqrt((n − h) / (h (n − 1))) "
                   "(0 when n ≤ h).",
    "welch_bound_mean_square": "Mean-square Welch bound: mean off-diagonal cos^2 ≥ (n − h) / (h (n − 1)).",
    "self_gain_mean": "Mean of diag(G), G[j, i] = y_j(e_i) − y_j(0) (output j with only feature i "
                      "active at +1; the slope for a bias-free net)." + _STD,
    "self_gain_std": "Std over features of diag(G), mean over instances.",
    "cross_gain_mean": "Mean of the off-diagonal entries of G." + _STD,
    "cross_gain_abs_mean": "Mean |.| of the off-diagonal entries of G." + _STD,
    "cross_gain_min": "Smallest off-diagonal entry of G." + _STD,
    "cross_gain_max": "Largest off-diagonal entry of G." + _STD,
    "interference_rms_mean": "Interference received by output j: RMS over i ≠ j of G[j, i]; mean over "
                             "features." + _STD,
    "predicted_interference_mse_mean": "First-order interference MSE of feature j at the training p: "
                                       "p × (1/6) × Σ_{i≠j} (G+[j,i]^2 + G−[j,i]^2), G− the response to "
                                       "x = −e_i (each other feature is active w.p. p and shifts output "
                                       "j by |x_i| G±; co-activation inside the hidden ReLU ignored); "
                                       "mean over features." + _STD,
    "isolated_mse_mean": "Isolated MSE_i = E_{x~U(−1,1)} (y_i(x e_i) − ReLU(x))^2, one feature active "
                         "(Simpson quadrature over the 2,001-point response curve); mean over "
                         "features." + _STD,
    "isolated_mse_positive_mean": "Part of the isolated MSE from x > 0 (attenuation of the positive "
                                  "side)." + _STD,
    "isolated_mse_negative_mean": "Part of the isolated MSE from x < 0 (the negative-input "
                                  "residual)." + _STD,
    "interference_mse_measured": "mse_active_mean − isolated_mse_mean per instance." + _STD,
    "attenuation_share_measured": "Definition (A): isolated_mse_mean / mse_active_mean per instance "
                                  "(the report's 0.0642 / 0.0745 = 86 %)." + _STD,
    "interference_share": "Definition (A): 1 − attenuation_share_measured, the share of the trained "
                          "active MSE not present when features are active alone." + _STD,
    "attenuation_mse_pure_gain": "Definition (B): (1 − g)^2 / 6 with g = the instance's mean gain "
                                 "(the measured response slope; ignores the negative residual and the "
                                 "hidden ReLU)." + _STD,
    "attenuation_share_pure_gain": "Definition (B) at the measured slope: attenuation_mse_pure_gain / "
                                   "mse_active_mean." + _STD,
    "interference_mse_pure_gain": "mse_active_mean − attenuation_mse_pure_gain." + _STD,
    "attenuation_mse_pure_gain_weff": "Definition (B) at g = weff_diag_mean: (1 − g)^2 / 6 with g the "
                                      "instance's mean of diag(W_out W_in)." + _STD,
    "attenuation_share_pure_gain_weff": "attenuation_mse_pure_gain_weff / mse_active_mean (the source "
                                        "report's 0.054 / 0.0745 = 73 % is this at its g = "
                                        "0.43)." + _STD,
    "interference_mse_pure_gain_weff": "mse_active_mean − attenuation_mse_pure_gain_weff (the source "
                                       "report's ~0.020)." + _STD,
    "gain_ratio_K_mean": "K_i = Σ_{k≠i} |G[k,i]|^q / |G[i,i]|^q with q = loss_power: the leak of feature "
                         "i into the other outputs relative to its own output; mean over features." + _STD,
    "optimal_gain": "Theory γ* = 1 / (1 + K^{1/(q−1)}) with K the instance's mean K_i: the output scale "
                    "minimising the Lq loss (1 − γ)^q + K γ^q when one feature is active alone." + _STD,
    "optimal_gain_per_feature_mean": "Mean over features of γ*_i = 1 / (1 + K_i^{1/(q−1)})." + _STD,
    "optimal_gain_line_search": "Check on the real model: W_out (and b_out) scaled by c, the training-"
                                "distribution Lq loss minimised over c (grid 0.3–2.0 step 0.05, then "
                                "step 0.0025 around the best); best c × gain_mean." + _STD,
    "line_search_best_scale": "The best output scale c of the line search (1 = the learned "
                              "model is already optimal along this direction)." + _STD,
    "line_search_at_edge": "Fraction of instances whose best c lies on an end of [0.3, 2.0] (the optimum "
                           "may then lie outside).",
    "optimal_gain_line_search_single": "The same line search on the loss the closed form γ* assumes: "
                                       "one feature active alone at x ~ U(0, 1] (256 midpoint nodes; "
                                       "every feature in turn, equal weight), Lq loss over all outputs; "
                                       "best c × gain_mean. Equals optimal_gain when every feature has "
                                       "the same self-gain and K_i." + _STD,
    "line_search_single_best_scale": "Best output scale c of the single-active-feature (x > 0) line "
                                     "search." + _STD,
    "line_search_single_at_edge": "Fraction of instances whose single-feature best c lies on an end of "
                                  "[0.3, 2.0].",
    "optimal_gain_line_search_isolated": "The same line search with one feature active at "
                                         "x ~ U(−1, 1) (the isolated distribution: adds the "
                                         "negative inputs the "
                                         "closed form leaves out); best c × gain_mean." + _STD,
    "ignored_features": "Features whose gain is below 0.05 (counted as ignored); mean over "
                        "instances." + _STD,
    "kept_gain_mean": "Mean gain over the features with gain ≥ 0.05; mean over instances." + _STD,
    "kept_gain_std": "Std over the features with gain ≥ 0.05 of their gain, mean over instances.",
    "residual_ablation_isolated_mse_model": "Ablation: the model's isolated MSE "
                                            "(= isolated_mse_mean)." + _STD,
    "residual_ablation_isolated_mse_ablated": "Isolated MSE after removing the negative residual: "
                                              "y'_i = y_i − s_i(x_i), s_i(t) = y_i(t e_i) − y_i(0) for "
                                              "t < 0 (linear interpolation of the response curve), 0 "
                                              "otherwise." + _STD,
    "residual_ablation_training_mse_model": "The model's active-conditioned per-feature MSE on the "
                                            "evaluation set (= mse_active_mean)." + _STD,
    "residual_ablation_training_mse_ablated": "The ablated output y' scored like mse_active_mean on "
                                              "the same evaluation set." + _STD,
    "residual_ablation_interference_model": "Training minus isolated MSE of the model." + _STD,
    "residual_ablation_interference_ablated": "Training minus isolated MSE of the ablated model." + _STD,
    "residual_ablation_interference_increase": "Interference part of the ablated model minus that of "
                                               "the model (> 0: removing the residual adds "
                                               "interference)." + _STD,
    "residual_ablation_isolated_decrease": "Isolated MSE of the model minus that of the ablated "
                                           "model (what removing the residual saves in "
                                           "isolation)." + _STD,
    "negative_residual_reduces_interference": "True exactly when "
                                              "residual_ablation_interference_increase > 0 (instance "
                                              "means, on one paired evaluation set; its sampling noise "
                                              "is not subtracted): removing the residual raises the "
                                              "interference part, so the residual cancels some "
                                              "interference.",
    "negative_residual_pays_for_itself": "True exactly when residual_ablation_interference_increase "
                                         "> residual_ablation_isolated_decrease (instance means), "
                                         "equivalently when removing the residual raises the active "
                                         "training MSE: the interference it cancels outweighs its "
                                         "isolated cost.",
    "negative_residual_reduces_interference_fraction": "Fraction of instances whose interference part "
                                                       "rises when the residual is removed.",
    "l2_loss_learned": "Unconditional MSE (L2 loss: mean over samples and features of "
                       "(y − ReLU(x))^2) of the trained model on the training distribution." + _STD,
    "l2_loss_naive": "The naive model's L2 loss on the same evaluation set.",
    "l2_naive_over_learned": "Naive / learned L2 loss (the report's ~2.7×)." + _STD,
    "l4_loss_learned": "L4 loss (mean over samples and features of |y − ReLU(x)|^4) of the trained "
                       "model on the training distribution." + _STD,
    "l4_loss_naive": "The naive model's L4 loss on the same evaluation set.",
    "l4_naive_over_learned": "Naive / learned L4 loss (the report's 8.5×)." + _STD,
    "lq_loss_learned": "Lq loss at the training power q = loss_power (mean over samples and features of "
                       "|y − ReLU(x)|^q) of the trained model on the training distribution." + _STD,
    "lq_loss_naive": "The naive model's Lq loss (q = loss_power) on the same evaluation set.",
    "lq_naive_over_learned": "Naive / learned Lq loss at q = loss_power." + _STD,
    "l2_trained_from_main_model": "True when loss_power = 2: the trained models are already L2-trained, "
                                  "no separate L2 run is made and every l2_trained_* key is computed "
                                  "from the trained models themselves; null without L2 models.",
    "l2_trained_ignored_features": "L2-trained: features with gain < 0.05 (ignored); mean over "
                                   "instances." + _STD,
    "l2_trained_kept_gain_mean": "L2-trained: mean gain over the features with gain ≥ 0.05." + _STD,
    "l2_trained_kept_gain_std": "L2-trained: std over the features with gain ≥ 0.05 of their gain, "
                                "mean over instances.",
    "l2_trained_kept_gain_min": "L2-trained: smallest gain among the features with gain ≥ "
                                "0.05." + _STD,
    "l2_trained_kept_gain_max": "L2-trained: largest gain among the features with gain ≥ 0.05." + _STD,
    "l2_trained_lq_loss": "L2-trained: Lq loss at q = loss_power on the training distribution." + _STD,
    "l2_trained_gain_mean": "The same seeds trained with the L2 loss (with loss_power = 2, the trained "
                            "models themselves: l2_trained_from_main_model): mean gain (as "
                            "gain_mean)." + _STD,
    "l2_trained_gain_std": "L2-trained: std over features of the gain, mean over instances.",
    "l2_trained_mse_active_mean": "L2-trained: mean per-feature active MSE (as mse_active_mean)." + _STD,
    "l2_trained_mse_active_feature_std": "L2-trained: std over features of the per-feature active MSE.",
    "l2_trained_mse_active_range": "L2-trained: max − min over features of the per-feature active "
                                   "MSE." + _STD,
    "l2_trained_weff_diag_mean": "L2-trained: mean of diag(W_out W_in)." + _STD,
    "l2_trained_weff_diag_std": "L2-trained: std over features of diag(W_eff), mean over instances.",
    "l2_trained_isolated_mse_mean": "L2-trained: isolated MSE (as isolated_mse_mean)." + _STD,
    "l2_trained_l2_loss": "L2-trained: L2 loss on the training distribution." + _STD,
    "l2_trained_l4_loss": "L2-trained: L4 loss on the training distribution." + _STD,
    "l2_trained_l2_naive_over_learned": "Naive / L2-trained model's L2 loss on the training "
                                        "distribution." + _STD,
    "train_seconds": "Wall-clock seconds of training the models (all instances at once).",
    "l2_train_seconds": "Wall-clock seconds of training the L2 comparison models.",
    "sparsity_sweep": "Per p: mean over features of the active-conditioned per-feature MSE of the trained "
                      "model (mean and std over instances), of the naive model and of the L2-trained "
                      "model. Each sample designates one feature (cycling) forced active with a fresh "
                      "U(−1, 1) value, the others active w.p. p, so every feature gets "
                      "samples / n conditioned samples at every p; the same uniforms at every p.",
}


METRIC_DEFINITIONS["gain_mean_std"] = ("Std over instances of the per-instance mean gain (the spread "
                                       "over features is gain_std).")
METRIC_DEFINITIONS["weff_diag_mean_std"] = ("Std over instances of the per-instance mean of diag(W_eff) "
                                            "(the spread over features is weff_diag_std).")
# every other `<key>_std` twin that metrics() writes: the std over instances
_NO_TWIN = {"gain_std", "weff_diag_std", "self_gain_std", "mse_active_feature_std", "l2_trained_gain_std",
            "l2_trained_weff_diag_std", "l2_trained_mse_active_feature_std", "line_search_at_edge",
            "line_search_single_at_edge", "kept_gain_std", "l2_trained_kept_gain_std",
            "l2_trained_from_main_model",
            "zero_norm_features", "naive_mse_active_theory", "naive_mse_all_theory",
            "abs_cos_random_theory", "abs_cos_random_mc", "cos_sq_random_theory", "welch_bound",
            "welch_bound_mean_square", "negative_residual_reduces_interference",
            "negative_residual_pays_for_itself",
            "negative_residual_reduces_interference_fraction", "sparsity_sweep", "n_features", "n_hidden",
            "instances", "p", "loss_power", "eval_samples", "train_seconds", "l2_train_seconds"}
for _k in list(METRIC_DEFINITIONS):
    if _k not in _NO_TWIN and not _k.endswith("_mean_std") and _k + "_std" not in METRIC_DEFINITIONS:
        METRIC_DEFINITIONS[_k + "_std"] = (f"Std over instances of {_k} (population std; 0 for one "
                                           "instance).")


def metric_definition(key: str) -> str:
    """The definition of a metrics key, also for `<key>_std` twins and other loss powers."""
    if key in METRIC_DEFINITIONS:
        return METRIC_DEFINITIONS[key]
    if key.endswith("_std") and key[:-4] in METRIC_DEFINITIONS:
        return "Std over instances of " + key[:-4] + "."
    return ""
