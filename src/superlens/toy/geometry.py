"""Open question 2 of the report: do the feature directions (W_in's columns) form structured geometry?

W_in's columns are compared with random Gaussian frames and with a numerically optimised
near-equiangular frame of the same shape and column norms (measures/dimensionality.frame_comparison):
angles, per-feature dimensionality and the spectrum of the unit-column Gram matrix.
"""
from __future__ import annotations

import numpy as np
from torch import Tensor

from superlens.measures.dimensionality import frame_comparison



def _top_ratio(spec: list[float]) -> float:
    s = np.asarray(spec, dtype=float)
    return float(s[0] / s[1:].mean()) if len(s) > 1 and s[1:].mean() > 0 else float("nan")


def geometry_summary(W_in: Tensor, seed: int = 0) -> tuple[dict, dict]:
    """W_in [I, h, n] -> (metrics averaged over instances, instance 0's full comparison for figures)."""
    comps = [frame_comparison(W_in[i], seed=seed + i, optimize=(i == 0)) for i in range(W_in.shape[0])]
    mean = lambda f: float(np.mean([f(c) for c in comps]))  # noqa: E731
    first = comps[0]
    metrics = {
        "geometry_max_abs_cos": mean(lambda c: c["W"]["max_abs_cos"]),
        "geometry_max_abs_cos_random": mean(lambda c: c["random"]["max_abs_cos"]),
        "geometry_max_abs_cos_equiangular": first.get("optimized", {}).get("max_abs_cos"),
        "geometry_spectrum_cv": mean(lambda c: c["W"]["spectrum_cv"]),
        "geometry_spectrum_cv_random": mean(lambda c: c["random"]["spectrum_cv"]),
        "geometry_spectrum_cv_equiangular": first.get("optimized", {}).get("spectrum_cv"),
        "geometry_top_eigen_ratio": mean(lambda c: _top_ratio(c["W"]["gram_spectrum"])),
        "geometry_top_eigen_ratio_random": mean(lambda c: _top_ratio(c["random"]["gram_spectrum"])),
        "feature_dimensionality_mean": mean(lambda c: c["W"]["dim_mean"]),
        "feature_dimensionality_std": mean(lambda c: c["W"]["dim_std"]),
        "welch_bound_frame": first["welch_bound"],
    }
    return metrics, first
