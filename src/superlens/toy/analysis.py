"""Every analysis of the compressed-computation study, as pure functions of the weights.

Models carry an instance axis (MLPParams: W_in [I, h, n], W_out [I, n, h]); every function maps
per-instance weights to per-instance results. Quantities measured on data use one seeded evaluation set,
the same for every instance and every model, drawn in fixed-size chunks so memory stays bounded (the set
depends on (seed, chunk), so keep chunk fixed when comparing runs).

The line search over the output scale lives in superlens.toy.scales, the seeded evaluation set in
superlens.toy.data (eval_chunks). `analyze` runs them all and returns a `ToyAnalysis`
(superlens.toy.record: numpy arrays), whose `metrics()` are the numbers the report quotes, each
defined in superlens.toy.definitions.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from superlens.device import generator
from superlens.measures.numeric import as_numpy, unit_vectors
from superlens.toy import theory
from superlens.toy.data import DEFAULT_CHUNK, eval_chunks, sample_dense
from superlens.toy.models import MLPParams, forward, hidden, naive_params
from superlens.toy.record import ToyAnalysis
from superlens.toy.scales import line_search_fields

RESPONSE_POINTS = 2001  # 1 mod 4: t = 0 is a node and both halves have an odd node count (Simpson)
FIGURE_POINTS = 101  # response-curve samples kept for figures
COS_BINS = 80
DEFAULT_SWEEP_PS = tuple(float(v) for v in np.logspace(-3, 0, 13))

# ----------------------------------------------------------------------------- evaluation


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
    norms = W_in.norm(dim=1, keepdim=True)  # [I, 1, n]
    tol = 1e-8 * norms.amax(2, keepdim=True).clamp_min(torch.finfo(W_in.dtype).tiny)  # relative
    U, zero = unit_vectors(W_in, dim=1, tol=tol)
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


# ----------------------------------------------------------------------------- sparsity sweep


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


# ----------------------------------------------------------------------------- the analysis: its fields
# by group (each a dict of ToyAnalysis fields), then analyze


@torch.no_grad()
def response_fields(t: Tensor, curves: Tensor, s: Tensor) -> dict[str, np.ndarray]:
    """ToyAnalysis fields of the response curves [I, n, T] on the grid t [T]: gains, the negative
    residual, the isolated error, and that error with the negative self-response s removed."""
    rs = response_stats(t, curves)
    iso = isolated_mse(t, curves)
    iso_abl = isolated_mse(t, curves - s)
    stride = max(1, (t.shape[0] - 1) // (FIGURE_POINTS - 1))
    return dict(
        gain=as_numpy(rs["gain"]), gain_intercept=as_numpy(rs["intercept"]),
        negative_residual=as_numpy(rs["negative_residual"]), value_at_minus1=as_numpy(rs["value_at_minus1"]),
        response_t=as_numpy(t[::stride]), response_curves0=as_numpy(curves[0, :, ::stride]),
        isolated_mse=as_numpy(iso["total"]), isolated_mse_positive=as_numpy(iso["positive"]),
        isolated_mse_negative=as_numpy(iso["negative"]), ablated_isolated_mse=as_numpy(iso_abl["total"]))


def evaluate_models(params: MLPParams, naive: MLPParams, l2: MLPParams | None, s: Tensor, *, p: float,
                    samples: int, seed: int, powers: list[float],
                    chunk: int) -> tuple[dict[str, Tensor], dict[str, slice]]:
    """One pass over the evaluation set for the trained models, the same with the negative
    self-response s [I, n, T] removed (ablated), the naive baseline and the L2 models, stacked on the
    instance axis. (evaluate's results, the instance slice of each model family)."""
    I, I2 = params.instances, 0 if l2 is None else l2.instances
    n, T = s.shape[1], s.shape[2]
    models = [params, params, naive] + ([l2] if l2 is not None else [])
    corr = torch.cat([torch.zeros_like(s), s, torch.zeros_like(s[:1])]
                     + ([torch.zeros(I2, n, T, dtype=s.dtype, device=s.device)] if l2 is not None else []))
    ev = evaluate(stack_params(models), p=p, samples=samples, seed=seed, powers=powers, chunk=chunk,
                  negative_correction=corr)
    sl = {"trained": slice(0, I), "ablated": slice(I, 2 * I), "naive": slice(2 * I, 2 * I + 1),
          "l2": slice(2 * I + 1, 2 * I + 1 + I2)}
    return ev, sl


def evaluation_fields(ev: dict[str, Tensor], sl: dict[str, slice], powers: list[float]) -> dict:
    """ToyAnalysis fields of the evaluation pass: errors of the trained, naive and ablated models."""
    return dict(
        mse_active=as_numpy(ev["mse_active"][sl["trained"]]), mse_all=as_numpy(ev["mse_all"][sl["trained"]]),
        active_count=as_numpy(ev["active_count"]),
        naive_mse_active=as_numpy(ev["mse_active"][sl["naive"]][0]),
        naive_mse_all=as_numpy(ev["mse_all"][sl["naive"]][0]),
        lq_powers=np.array(powers), lq_trained=as_numpy(ev["lq"][sl["trained"]]),
        lq_naive=as_numpy(ev["lq"][sl["naive"]][0]),
        ablated_mse_active=as_numpy(ev["mse_active"][sl["ablated"]]))


def geometry_fields(params: MLPParams, seed: int) -> dict:
    """ToyAnalysis fields of the weights: W_eff = W_out W_in and its statistics, the cosines between
    W_in's columns (per-instance summaries and histogram) beside random directions in R^h."""
    _, h, n = params.W_in.shape
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
    return dict(
        W_in0=as_numpy(params.W_in[0]), W_out0=as_numpy(params.W_out[0]), weff0=as_numpy(weff[0]),
        weff_diag=as_numpy(ws["diag"]), weff_offdiag_mean=as_numpy(ws["off_mean"]),
        weff_offdiag_abs_mean=as_numpy(ws["off_abs_mean"]), weff_offdiag_std=as_numpy(ws["off_std"]),
        abs_cos_mean=np.array([c.abs().mean().item() if len(c) else nan for c in pairs]),
        cos_mean=np.array([c.mean().item() if len(c) else nan for c in pairs]),
        max_abs_cos=np.array([c.abs().max().item() if len(c) else nan for c in pairs]),
        cos_sq_mean=np.array([c.square().mean().item() if len(c) else nan for c in pairs]),
        zero_norm_features=as_numpy(zero_cols.sum(1)).astype(float),
        cos_hist_edges=edges, cos_hist=hist,
        cos_hist_random=(np.histogram(rand.numpy(), bins=edges, density=True)[0] if len(rand)
                         else np.zeros(COS_BINS)),
        abs_cos_random_mc=float(rand.abs().mean()) if len(rand) else nan)


def cross_gain_fields(params: MLPParams, q: float, p: float) -> dict:
    """ToyAnalysis fields of the cross-gain G (positive inputs) and G- (negative inputs): its
    statistics, the interference they predict, the gain ratio K and the optimal gain γ* it implies."""
    G, Gm = cross_gain(params, 1.0), cross_gain(params, -1.0)
    gs = matrix_stats(G)
    K_np = as_numpy(gain_ratio_K(G, q))
    return dict(
        cross_gain0=as_numpy(G[0]), self_gain=as_numpy(gs["diag"]), cross_gain_mean=as_numpy(gs["off_mean"]),
        cross_gain_abs_mean=as_numpy(gs["off_abs_mean"]), cross_gain_min=as_numpy(gs["off_min"]),
        cross_gain_max=as_numpy(gs["off_max"]), interference_rms=as_numpy(interference_rms(G)),
        predicted_interference_mse=theory.first_order_interference_mse(as_numpy(G), as_numpy(Gm), p),
        gain_ratio_K=K_np, gamma_star=np.asarray(theory.optimal_gain(K_np, q), dtype=float),
        gamma_star_mean_K=np.asarray(theory.optimal_gain(K_np.mean(1), q),
                                     dtype=float).reshape(params.instances))


def add_l2_fields(out: ToyAnalysis, l2: MLPParams | None, t: Tensor, ev: dict[str, Tensor],
                  sl: dict[str, slice], sweep_l2: Tensor | None) -> None:
    """The L2 fields of `out`, in place: from the same seeds trained under L2 when given; copies of
    the main fields (flagged l2_from_main) when the models were trained under L2 themselves."""
    if l2 is not None:
        c2 = response_curves(l2, t)
        out.l2_gain = as_numpy(response_stats(t, c2)["gain"])
        out.l2_mse_active = as_numpy(ev["mse_active"][sl["l2"]])
        out.l2_weff_diag = as_numpy(torch.diagonal(effective_weights(l2), dim1=1, dim2=2))
        out.l2_isolated_mse = as_numpy(isolated_mse(t, c2)["total"])
        out.l2_lq = as_numpy(ev["lq"][sl["l2"]])
        out.sweep_l2 = as_numpy(sweep_l2)
    elif out.loss_power == 2.0:
        # trained under L2 already: the L2-trained models are these models (no second training run),
        # so the L2 fields are copies of the main ones and flagged as such
        out.l2_gain, out.l2_mse_active, out.l2_weff_diag = out.gain, out.mse_active, out.weff_diag
        out.l2_isolated_mse, out.l2_lq, out.sweep_l2 = out.isolated_mse, out.lq_trained, out.sweep_mse
        out.l2_from_main = True


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

    t = response_grid(response_points, device=dev, dtype=dt)
    curves = response_curves(params, t)
    s = negative_self_response(t, curves)  # the ablation removes it
    response = response_fields(t, curves, s)
    ev, sl = evaluate_models(params, naive, l2, s, p=p, samples=eval_samples, seed=seed, powers=powers,
                             chunk=chunk)
    geometry = geometry_fields(params, seed)
    gains = cross_gain_fields(params, q, p)
    scales = line_search_fields(params, q=q, p=p, samples=eval_samples, seed=seed, chunk=chunk)
    # sparsity sweep: trained, naive (and L2) on the same conditioned samples
    ps = list(DEFAULT_SWEEP_PS if sweep_ps is None else sweep_ps)
    ps = sorted({round(float(v), 12) for v in ps} | {round(float(p), 12)})
    sw = sparsity_sweep(stack_params([params, naive] + ([l2] if l2 is not None else [])), ps,
                        samples=sweep_samples or eval_samples, seed=seed, chunk=chunk)

    out = ToyAnalysis(
        n_features=n, n_hidden=h, instances=I, p=float(p), loss_power=q, eval_samples=int(eval_samples),
        seed=int(seed), bias=params.b_in is not None or params.b_out is not None,
        **evaluation_fields(ev, sl, powers), **response, **geometry, **gains, **scales,
        sweep_ps=np.array(ps), sweep_mse=as_numpy(sw[:I]), sweep_naive=as_numpy(sw[I]),
    )
    add_l2_fields(out, l2, t, ev, sl, sw[I + 1:] if l2 is not None else None)
    return out
