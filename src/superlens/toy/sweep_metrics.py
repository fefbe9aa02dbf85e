"""The few numbers a sweep point needs, from the study's own analysis functions (no line search, no
figures): per-feature gain and error, the learned strategy's ingredients and the optimal-gain theory."""
from __future__ import annotations

import numpy as np
import torch

from superlens.toy import theory
from superlens.toy.analysis import (cross_gain, evaluate, feature_cosines, gain_ratio_K, isolated_mse,
                                    offdiag_pairs, response_curves, response_grid, response_stats)
from superlens.toy.models import MLPParams
from superlens.toy.phases import GAIN_IGNORED


@torch.no_grad()
def point_metrics(params: MLPParams, *, p: float, loss_power: float, eval_samples: int,
                  seed: int) -> dict:
    """params: ONE instance ([1, ...]). Returns JSON-ready scalars plus per-feature 'gains' and
    'mse_active' lists (the sweep classifies the strategy from them)."""
    assert params.instances == 1
    n, h = params.n_features, params.n_hidden
    ev = evaluate(params, p=p, samples=eval_samples, seed=seed, powers=(loss_power,))
    t = response_grid(401, device=params.W_in.device, dtype=params.W_in.dtype)
    curves = response_curves(params, t)
    st = response_stats(t, curves)
    iso = isolated_mse(t, curves)["total"][0].double()
    gains = st["gain"][0].double().cpu().numpy()
    mse = ev["mse_active"][0].cpu().numpy()
    K = gain_ratio_K(cross_gain(params).double(), loss_power)[0].cpu().numpy()
    cos, zero = feature_cosines(params.W_in)
    pairs = offdiag_pairs(cos, zero)[0]
    mse_mean = float(np.nanmean(mse))
    iso_mean = float(iso.mean())
    return {
        "gains": gains.tolist(),
        "mse_active": mse.tolist(),
        "gain_mean": float(gains.mean()),
        "gain_std": float(gains.std()),
        "frac_ignored": float(np.mean(gains < GAIN_IGNORED)),
        "mse_active_mean": mse_mean,
        "mse_active_spread": float(np.nanmax(mse) - np.nanmin(mse)),
        "naive_mse_active_theory": theory.naive_mse_active_mean(n, h),
        "improvement_over_naive": theory.naive_mse_active_mean(n, h) / mse_mean if mse_mean > 0 else None,
        "isolated_mse_mean": iso_mean,
        "interference_share": 1.0 - iso_mean / mse_mean if mse_mean > 0 else None,
        "optimal_gain": float(theory.optimal_gain(float(np.mean(K[np.isfinite(K)])) if np.isfinite(K).any()
                                                  else np.inf, loss_power)),
        "abs_cos_mean": float(pairs.abs().mean()) if pairs.numel() else 0.0,
        "lq_loss": float(ev["lq"][0, 0]),
    }
