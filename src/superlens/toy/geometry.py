"""Open question 2 of the report: do the feature directions (W_in's columns) form structured geometry?

W_in's columns are compared with random Gaussian frames and with a numerically optimised
near-equiangular frame of the same shape and column norms (measures/dimensionality.frame_comparison):
angles, per-feature dimensionality and the spectrum of the unit-column Gram matrix.
"""
from __future__ import annotations

import numpy as np
from torch import Tensor

from superlens.measures.dimensionality import frame_comparison

GEOMETRY_DEFINITIONS = {
    "geometry_max_abs_cos": "Largest |cos| between two of W_in's columns (mean over seeds).",
    "geometry_max_abs_cos_random": "The same for random Gaussian frames of W_in's shape and norms.",
    "geometry_max_abs_cos_equiangular": "The same for a numerically optimised near-equiangular frame "
                                        "(the Welch bound is the least achievable).",
    "geometry_spectrum_cv": "std/mean of the m non-zero eigenvalues of the unit-column Gram matrix of "
                            "W_in: 0 for a tight frame (directions spread evenly over all of R^m).",
    "geometry_spectrum_cv_random": "The same for random Gaussian frames.",
    "geometry_spectrum_cv_equiangular": "The same for the optimised near-equiangular frame.",
    "geometry_top_eigen_ratio": "Largest Gram eigenvalue over the mean of the others: > 1 means the "
                                "features share a common direction (visible as a positive mean cosine).",
    "geometry_top_eigen_ratio_random": "The same for random Gaussian frames.",
    "feature_dimensionality_mean": "Mean over features of D_i = ||W_i||^2 / sum_j (Ŵ_i·W_j)^2 on W_in's "
                                   "columns (m/n = 0.1 when capacity is shared evenly).",
    "feature_dimensionality_std": "Std over features of D_i (mean over seeds); 0 when every feature "
                                  "gets the same share.",
    "welch_bound_frame": "Welch bound for the frame compared here: the least possible max |cos| of "
                         "n_live unit vectors in R^h, sqrt((n_live − h) / (h (n_live − 1))), "
                         "n_live the W_in columns of non-zero norm in seed 0 (0 when n_live ≤ h); "
                         "equals "
                         "welch_bound when no column is dead.",
}


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


def plot_frame_geometry(comp: dict, path) -> str:
    from superlens.report.plotting import plt, save

    fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
    k = np.arange(1, len(comp["W"]["gram_spectrum"]) + 1)
    for name, key, style in (("learned W_in", "W", "o-"), ("random", "random", "s--"),
                             ("near-equiangular", "optimized", "^:")):
        if key in comp:
            ax[0].plot(k, comp[key]["gram_spectrum"], style, label=name)
    ax[0].set(xlabel="eigenvalue rank", ylabel="eigenvalue of Û Ûᵀ",
              title="Gram spectrum of the unit feature directions")
    ax[0].legend(fontsize=8)
    names, vals = [], []
    for name, key in (("learned", "W"), ("random", "random"), ("equiangular", "optimized")):
        if key in comp:
            names.append(name)
            vals.append(comp[key]["max_abs_cos"])
    ax[1].bar(names, vals, color=["C0", "C1", "C2"][: len(vals)])
    ax[1].axhline(comp["welch_bound"], color="k", ls="--", label=f"Welch bound {comp['welch_bound']:.3f}")
    ax[1].set(ylabel="max |cos|", title="worst pair of feature directions")
    ax[1].legend(fontsize=8)
    return save(fig, path)
