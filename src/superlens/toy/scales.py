"""The line search over the output scale c of a trained model (W_out and b_out times c): is the
trained gain the Lq-optimal one? Searched on the training distribution, on the single-active-feature
loss the closed form γ* assumes (x > 0 only), and on the isolated distribution (x ~ U(-1, 1)).

Each distribution is first reduced to a profile (one pass over its samples), from which the loss of
every scale follows without running the model again:

    prof = scale_profile(params, q=4, p=0.02, samples=200_000, seed=1)
    line_search_scale(prof, 4)["best"]       # [I] the best scale per instance
"""
from __future__ import annotations

import torch
from torch import Tensor

from superlens.measures.numeric import as_numpy
from superlens.toy.data import DEFAULT_CHUNK, eval_chunks
from superlens.toy.models import MLPParams, forward

LINE_SEARCH_RANGE = (0.3, 2.0)
LINE_SEARCH_COARSE = 35  # step 0.05
LINE_SEARCH_FINE = 41  # +- one coarse step around the coarse best, step 0.0025
SINGLE_POINTS = 256  # midpoint-rule nodes of U(0, 1] for the single-active-feature line search


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


def line_search_fields(params: MLPParams, *, q: float, p: float, samples: int, seed: int,
                       chunk: int) -> dict:
    """ToyAnalysis fields of the line search over the output scale: on the training distribution,
    on the single-active-feature loss the closed form γ* assumes (x > 0 only), and on the isolated
    distribution (x ~ U(-1, 1)); the steps between the three optima locate the gap."""
    dev, dt = params.W_in.device, params.W_in.dtype
    ls = line_search_scale(scale_profile(params, q=q, p=p, samples=samples, seed=seed, chunk=chunk), q)
    ls1 = line_search_scale(single_feature_profile(params, single_feature_values(device=dev, dtype=dt),
                                                   q), q)
    ls_iso = line_search_scale(single_feature_profile(
        params, single_feature_values(negative=True, device=dev, dtype=dt), q), q)
    return dict(
        line_search_scales=as_numpy(ls["scales"]), line_search_losses=as_numpy(ls["losses"]),
        line_search_best_scale=as_numpy(ls["best"]), line_search_at_edge=as_numpy(ls["at_edge"]),
        single_line_search_scales=as_numpy(ls1["scales"]), single_line_search_losses=as_numpy(ls1["losses"]),
        single_line_search_best_scale=as_numpy(ls1["best"]), single_line_search_at_edge=as_numpy(ls1["at_edge"]),
        isolated_line_search_scales=as_numpy(ls_iso["scales"]),
        isolated_line_search_losses=as_numpy(ls_iso["losses"]),
        isolated_line_search_best_scale=as_numpy(ls_iso["best"]))
