"""Figures of the compressed-computation study, drawn from a ToyAnalysis alone (no recomputation).

Single-model pictures show instance 0; bars over features carry error bars over instances where there
is more than one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from superlens.measures.dimensionality import welch_bound, welch_bound_mean_square
from superlens.report.plotting import plt, save
from superlens.report.toy_report import residual_ablation_sentence
from superlens.toy import theory
from superlens.toy.phases import GAIN_IGNORED
from superlens.toy.record import ToyAnalysis

C_TRAINED, C_NAIVE, C_L2, C_REF = "#1f77b4", "#d62728", "#2ca02c", "#555555"


def _err(a: np.ndarray) -> np.ndarray | None:
    """Std over instances (axis 0), or None for a single instance."""
    return a.std(0) if a.shape[0] > 1 else None


def _heat(ax, M: np.ndarray, title: str, fig, xlabel: str | None = None,
          ylabel: str | None = None) -> None:
    from matplotlib.ticker import MaxNLocator

    v = float(np.nanmax(np.abs(M))) or 1.0
    im = ax.imshow(M, cmap="RdBu_r", vmin=-v, vmax=v, aspect="auto", interpolation="nearest")
    ax.set_title(title, fontsize=10)
    # row / column indices are integers: no ticks at half a neuron
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=9)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)


def _label(ax, xlabel: str | None = None, ylabel: str | None = None, title: str | None = None, *,
           title_size: float | None = None, legend: bool = True) -> None:
    """The axis set-up every panel repeats: the labels and title given, then the legend at fontsize 8
    (legend=False: none, or the caller's own). title_size None keeps matplotlib's title size."""
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    if title is not None:
        # set_title(fontsize=None) would mean the body font size, not the title default: omit it
        ax.set_title(title, **({} if title_size is None else {"fontsize": title_size}))
    if legend:
        ax.legend(fontsize=8)


def fig_per_feature_mse(a: ToyAnalysis, outdir: Path) -> tuple[str, str]:
    mse = a.mse_active[0]
    order = np.argsort(mse)
    fig, axes = plt.subplots(1, 3, figsize=(17, 3.8))
    axes[1].sharey(axes[0])  # the unconditional MSE (third panel) is ~p times smaller: own axis
    ax = axes[0]
    ax.bar(np.arange(a.n_features), mse[order], color=C_TRAINED, width=1.0, label="trained (instance 0)")
    ax.axhline(1 / 6, color=C_REF, ls="--", lw=1, label="ignored feature, 1/6")
    ax.axhline(np.nanmean(mse), color="k", lw=1, label=f"mean {np.nanmean(mse):.4f}")
    _label(ax, "feature (sorted by MSE)", "MSE over samples where the feature is active", "Trained model, sorted")
    ax = axes[1]
    naive_order = np.argsort(a.naive_mse_active, kind="stable")
    ax.bar(np.arange(a.n_features), a.naive_mse_active[naive_order], color=C_NAIVE, alpha=0.45,
           width=1.0, label=f"naive (mean {np.nanmean(a.naive_mse_active):.4f})")
    ax.bar(np.arange(a.n_features), mse[naive_order], color=C_TRAINED, alpha=0.8, width=0.6,
           label="trained")
    _label(ax, "feature (naive model's order)", title="Naive vs trained, same ordering")
    ax = axes[2]
    mse_all = a.mse_all[0]
    order_all = np.argsort(mse_all)
    ax.bar(np.arange(a.n_features), mse_all[order_all], color=C_TRAINED, width=1.0,
           label=f"trained (mean {mse_all.mean():.3g})")
    ax.plot(np.arange(a.n_features), np.sort(a.naive_mse_all), color=C_NAIVE, lw=1.5,
            label=f"naive, sorted (mean {a.naive_mse_all.mean():.3g})")
    ax.axhline(a.p / 6, color=C_REF, ls="--", lw=1, label=f"ignored feature, p/6 = {a.p / 6:.3g}")
    _label(ax, "feature (sorted by MSE)", "MSE over all samples", "Over all samples (active or not)")
    m = a.per_instance()
    cap = (f"Per-feature MSE over samples where the feature is active (instance 0; {a.eval_samples:,} "
           f"evaluation samples at p = {a.p:g}). Trained: mean {np.mean(m['mse_active_mean']):.4f}, "
           f"min {np.mean(m['mse_active_min']):.4f}, max {np.mean(m['mse_active_max']):.4f} (means over "
           f"{a.instances} instance(s)); the naive model (h features exact, the rest 0) scores "
           f"{np.nanmean(a.naive_mse_active):.4f} on the same set (theory "
           f"{theory.naive_mse_active_mean(a.n_features, a.n_hidden):.4f}). Right: the MSE over all "
           f"samples, active or not (mse_all): trained {np.mean(m['mse_all_mean']):.3g}, naive "
           f"{np.mean(m['naive_mse_all_mean']):.3g} (theory "
           f"{theory.naive_mse_all_mean(a.n_features, a.n_hidden, a.p):.3g}).")
    return save(fig, outdir / "toy_per_feature_mse.png"), cap


def fig_response_overlay(a: ToyAnalysis, outdir: Path) -> tuple[str, str]:
    t, C = a.response_t, a.response_curves0
    g = a.gain[0]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    ax = axes[0]
    for c in C:
        ax.plot(t, c, color=C_TRAINED, alpha=0.15, lw=0.8)
    ax.plot(t, np.maximum(t, 0), color="k", lw=1.5, ls="--", label="ideal ReLU")
    ax.plot(t[t >= 0], g.mean() * t[t >= 0], color=C_NAIVE, lw=1.5,
            label=f"mean gain {g.mean():.3f} × t")
    ax.axhline(0, color=C_REF, lw=0.5)
    _label(ax, "input x_i (feature alone)", "output y_i", f"All {a.n_features} self-responses (instance 0)")
    ax = axes[1]
    idx = np.arange(a.n_features)
    ax.bar(idx, a.gain.mean(0), yerr=_err(a.gain), color=C_TRAINED, width=1.0, label="gain (t > 0)",
           error_kw={"lw": 0.5})
    ax.bar(idx, a.negative_residual.mean(0), yerr=_err(a.negative_residual), color=C_NAIVE, width=1.0,
           label="negative residual (mean over t < 0)", error_kw={"lw": 0.5})
    ax.axhline(1, color="k", ls="--", lw=1)
    _label(ax, "feature", title="Per-feature gain and negative residual"
           + (" (± std over instances)" if a.instances > 1 else ""))
    m = a.per_instance()
    cap = (f"Response curves: each feature swept alone over [−1, 1], output of the same feature. Gain "
           f"(least-squares slope on t > 0) {np.mean(m['gain_mean']):.3f} ± {np.mean(m['gain_std']):.3f} "
           f"over features; negative residual (mean output over t < 0) "
           f"{np.mean(m['negative_residual_mean']):.4f}, value at t = −1 "
           f"{np.mean(m['value_at_minus1_mean']):.4f}.")
    return save(fig, outdir / "toy_response_curves.png"), cap


def fig_response_grid(a: ToyAnalysis, outdir: Path) -> tuple[str, str]:
    k = min(a.n_features, 100)
    side = int(np.ceil(np.sqrt(k)))
    t, C = a.response_t, a.response_curves0
    fig, axes = plt.subplots(side, side, figsize=(1.1 * side + 1, 1.0 * side + 1), sharex=True,
                             sharey=True, squeeze=False)
    lo, hi = min(-0.1, float(C[:k].min())), max(1.0, float(C[:k].max()))
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= k:
            ax.axis("off")
            continue
        ax.plot(t, np.maximum(t, 0), color=C_REF, lw=0.6, ls="--")
        ax.plot(t, C[i], color=C_TRAINED, lw=1.0)
        ax.set_ylim(lo, hi)
        ax.text(0.03, 0.97, str(i), transform=ax.transAxes, fontsize=6, va="top")
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    cap = (f"Response curves of the first {k} features of instance 0 (blue; x from −1 to 1, y from "
           f"{lo:.2f} to {hi:.2f}) against the ideal ReLU (dashed).")
    return save(fig, outdir / "toy_response_grid.png"), cap


def fig_weights(a: ToyAnalysis, outdir: Path) -> tuple[str, str]:
    # constrained layout keeps each colour bar's labels clear of the next panel's y-axis
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), gridspec_kw={"width_ratios": [2.2, 1, 1.6]},
                             layout="constrained")
    _heat(axes[0], a.W_in0, f"W_in [{a.n_hidden} × {a.n_features}]", fig, "feature", "neuron")
    _heat(axes[1], a.W_out0, f"W_out [{a.n_features} × {a.n_hidden}]", fig, "neuron", "output feature")
    _heat(axes[2], a.weff0, "W_eff = W_out W_in", fig, "input feature", "output feature")
    fig.get_layout_engine().set(w_pad=0.12, wspace=0.08)
    m = a.per_instance()
    cap = (f"Weights of instance 0. W_eff diagonal {np.mean(m['weff_diag_mean']):.3f} ± "
           f"{np.mean(m['weff_diag_std']):.3f} over features; off-diagonal mean "
           f"{np.mean(m['weff_offdiag_mean']):.4f}, mean |.| {np.mean(m['weff_offdiag_abs_mean']):.4f}, "
           f"std {np.mean(m['weff_offdiag_std']):.4f} (means over instances).")
    return save(fig, outdir / "toy_weights.png"), cap


def fig_geometry(a: ToyAnalysis, outdir: Path) -> tuple[str, str]:
    e = a.cos_hist_edges
    mid, w = (e[:-1] + e[1:]) / 2, np.diff(e)
    fig, ax = plt.subplots(figsize=(7.5, 4))
    ax.bar(mid, a.cos_hist[0], width=w, color=C_TRAINED, alpha=0.6, label="trained W_in columns (inst. 0)")
    ax.step(e, np.r_[a.cos_hist_random, a.cos_hist_random[-1]], where="post", color=C_NAIVE,
            lw=1.3, label=f"{a.n_features} random directions in R^{a.n_hidden} (MC)")
    wb = welch_bound(a.n_features, a.n_hidden)
    for s in (-1, 1):
        ax.axvline(s * wb, color="k", ls="--", lw=1, label="± Welch bound on max |cos|" if s > 0 else None)
    _label(ax, "cos between feature directions (pairs i < j)", "density")
    m = a.per_instance()
    cap = (f"Pairwise cosines of W_in's columns. Mean |cos| {np.mean(m['abs_cos_mean']):.4f} vs "
           f"{theory.random_abs_cos_mean(a.n_hidden):.4f} for random directions in R^{a.n_hidden} "
           f"(closed form; MC {a.abs_cos_random_mc:.4f}); max |cos| {np.mean(m['max_abs_cos']):.3f} vs "
           f"Welch bound {wb:.3f}; mean cos² {np.mean(m['cos_sq_mean']):.4f} vs mean-square bound "
           f"{welch_bound_mean_square(a.n_features, a.n_hidden):.4f} and random "
           f"{1 / a.n_hidden:.4f}.")
    return save(fig, outdir / "toy_geometry.png"), cap


def fig_sparsity(a: ToyAnalysis, outdir: Path) -> tuple[str, str]:
    fig, ax = plt.subplots(figsize=(7.5, 4))
    ps = a.sweep_ps
    ax.errorbar(ps, np.nanmean(a.sweep_mse, 0), yerr=_err(a.sweep_mse), color=C_TRAINED, marker="o",
                ms=4, label=f"trained (L{a.loss_power:g})")
    ax.plot(ps, a.sweep_naive, color=C_NAIVE, marker="s", ms=3, label="naive")
    if a.sweep_l2 is not None:
        ax.errorbar(ps, np.nanmean(a.sweep_l2, 0), yerr=_err(a.sweep_l2), color=C_L2, marker="^", ms=4,
                    label="trained with L2")
    ax.axvline(a.p, color=C_REF, ls=":", lw=1, label=f"training p = {a.p:g}")
    ax.axhline(1 / 6, color=C_REF, ls="--", lw=0.8, label="1/6")
    ax.set_xscale("log")
    _label(ax, "p (feature probability at evaluation)", "mean active-conditioned per-feature MSE")
    j = int(np.argmin(np.abs(ps - a.p)))
    cap = (f"Sparsity sweep: the trained model evaluated at other p (each feature forced active in "
           f"1/n of the samples, the others active w.p. p). MSE {np.nanmean(a.sweep_mse[:, 0]):.4f} at "
           f"p = {ps[0]:g}, {np.nanmean(a.sweep_mse[:, j]):.4f} at the training p, "
           f"{np.nanmean(a.sweep_mse[:, -1]):.4f} at p = {ps[-1]:g}; the naive model stays at "
           f"{np.nanmean(a.sweep_naive):.4f}.")
    return save(fig, outdir / "toy_sparsity_sweep.png"), cap


def fig_losses(a: ToyAnalysis, outdir: Path) -> tuple[str, str]:
    m, ml2 = a.per_instance(), a.per_instance_l2()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0), layout="constrained")
    for ax, tag in zip(axes, ("l2", "l4")):
        names = ["naive", f"trained L{a.loss_power:g}"]
        vals = [np.mean(m[f"{tag}_loss_naive"]), np.mean(m[f"{tag}_loss_learned"])]
        errs = [0.0, np.std(m[f"{tag}_loss_learned"])]
        cols = [C_NAIVE, C_TRAINED]
        if ml2 is not None:
            names.append("trained L2 (= main)" if a.l2_from_main else "trained L2")
            vals.append(np.mean(ml2[f"l2_trained_{tag}_loss"]))
            errs.append(np.std(ml2[f"l2_trained_{tag}_loss"]))
            cols.append(C_L2)
        # a linear axis from 0: bar heights compare as the ratios the caption quotes
        ax.bar(names, vals, yerr=errs, color=cols, capsize=3)
        ax.set_ylim(0, 1.2 * max(v + e for v, e in zip(vals, errs)))
        ax.set_ylabel(f"{tag.upper()} loss", fontsize=9)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        ax.set_title(f"{tag.upper()} loss on the training distribution "
                     f"(naive / trained = {np.mean(m[f'{tag}_naive_over_learned']):.2f}×)", fontsize=9)
        for i, v in enumerate(vals):
            rel = "" if i == 0 or v <= 0 else f"\nnaive / this = {vals[0] / v:.2f}×"
            ax.text(i, v + errs[i], f"{v:.3g}{rel}", ha="center", va="bottom", fontsize=8)
    cap = (f"Lq loss = mean over samples and features of |y − ReLU(x)|^q at p = {a.p:g}, on linear "
           f"axes from 0 (bar heights compare as the ratios). Naive / trained: "
           f"L2 {np.mean(m['l2_naive_over_learned']):.2f}×, L4 {np.mean(m['l4_naive_over_learned']):.2f}×"
           + ("" if ml2 is None else
              f"; the L2-trained seeds reach gain {np.mean(ml2['l2_trained_gain_mean']):.3f} and "
              f"active MSE {np.mean(ml2['l2_trained_mse_active_mean']):.4f} (range over features "
              f"{np.mean(ml2['l2_trained_mse_active_range']):.4f})") + ".")
    return save(fig, outdir / "toy_losses.png"), cap


def fig_l2_strategy(a: ToyAnalysis, outdir: Path) -> tuple[str, str] | None:
    """Per-feature gain and active MSE of the L2-trained model, sorted, with the L-q model and the
    naive model overlaid; None (no figure) without L2 models."""
    if a.l2_gain is None:
        return None
    n, idx = a.n_features, np.arange(a.n_features)
    kept = theory.naive_kept(n, a.n_hidden)
    naive_gain = np.r_[np.ones(kept), np.zeros(n - kept)]  # by construction: kept exact, rest 0
    l2_name = "trained L2" + (" (= main model)" if a.l2_from_main else "") + " (instance 0)"
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    ax = axes[0]
    ax.plot(idx, np.sort(a.l2_gain[0])[::-1], color=C_L2, marker=".", ms=4, lw=1, label=l2_name)
    ax.plot(idx, np.sort(a.gain[0])[::-1], color=C_TRAINED, lw=1.2,
            label=f"trained L{a.loss_power:g} (instance 0)")
    ax.plot(idx, naive_gain, color=C_NAIVE, lw=1.2, ls="--", label="naive")
    ax.axhline(GAIN_IGNORED, color=C_REF, ls=":", lw=1, label=f"ignored below {GAIN_IGNORED}")
    _label(ax, "feature (sorted by gain, descending)", "gain (slope on t > 0)", "Per-feature gain", title_size=10)
    ax = axes[1]
    ax.plot(idx, np.sort(a.l2_mse_active[0]), color=C_L2, marker=".", ms=4, lw=1, label=l2_name)
    ax.plot(idx, np.sort(a.mse_active[0]), color=C_TRAINED, lw=1.2,
            label=f"trained L{a.loss_power:g} (instance 0)")
    ax.plot(idx, np.sort(a.naive_mse_active), color=C_NAIVE, lw=1.2, ls="--", label="naive")
    ax.axhline(1 / 6, color=C_REF, ls=":", lw=1, label="ignored feature, 1/6")
    _label(ax, "feature (sorted by MSE)", "MSE over samples where the feature is active", "Per-feature active MSE",
           title_size=10)
    ml2 = a.per_instance_l2()
    cap = (f"L2 vs L{a.loss_power:g}, per feature: the L2-trained model"
           + (" (the trained model itself, loss_power = 2)" if a.l2_from_main else "")
           + f" ignores {np.mean(ml2['l2_trained_ignored_features']):.3g} of {n} features (gain < "
           f"{GAIN_IGNORED}) and keeps the rest at gain "
           f"{np.mean(ml2['l2_trained_kept_gain_mean']):.3f} ± "
           f"{np.mean(ml2['l2_trained_kept_gain_std']):.3f} over features; per-feature active MSE "
           f"{np.mean(ml2['l2_trained_mse_active_mean']):.4f} (range "
           f"{np.mean(ml2['l2_trained_mse_active_range']):.4f}). Means over instances; the curves show "
           f"instance 0. Naive: {kept} features at gain 1, the rest 0.")
    return save(fig, outdir / "toy_l2_strategy.png"), cap


def fig_cross_gain(a: ToyAnalysis, outdir: Path) -> tuple[str, str]:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [1.2, 1.6],
                                                                  "wspace": 0.35})
    _heat(axes[0], a.cross_gain0, "G[j, i]: output j (row), only input i = +1 (column)", fig)
    ax = axes[1]
    idx = np.arange(a.n_features)
    ax.bar(idx, a.interference_rms.mean(0), yerr=_err(a.interference_rms), color=C_TRAINED, width=1.0,
           error_kw={"lw": 0.5})
    _label(ax, "feature j", "RMS over i ≠ j of G[j, i]", "Interference received per feature", legend=False)
    m = a.per_instance()
    cap = (f"Cross-gain matrix of instance 0 and the interference each feature receives. Self-gain "
           f"{np.mean(m['self_gain_mean']):.3f} ± {np.mean(m['self_gain_std']):.3f}; cross-gain mean "
           f"{np.mean(m['cross_gain_mean']):.4f}, mean |.| {np.mean(m['cross_gain_abs_mean']):.4f}, range "
           f"[{np.mean(m['cross_gain_min']):.3f}, {np.mean(m['cross_gain_max']):.3f}]. First-order "
           f"predicted interference MSE (the expected squared shift the other active features put on "
           f"an output, p/6 · Σ_i≠j (G+[j,i]² + G−[j,i]²)): "
           f"{np.mean(m['predicted_interference_mse_mean']):.4f}.")
    if a.p < 1:
        # an output whose feature is inactive has target 0, so its whole error is interference; its
        # MSE follows from the all-sample and active-sample MSEs: all = p active + (1 - p) inactive
        inactive = (np.mean(m["mse_all_mean"]) - a.p * np.mean(m["mse_active_mean"])) / (1 - a.p)
        cap += (f" It compares with the measured MSE of outputs whose feature is inactive, ≈ "
                f"{inactive:.4f} ((all − p · active) / (1 − p)), where the error is interference "
                f"alone — not with the active outputs' excess over isolated MSE "
                f"({np.mean(m['interference_mse_measured']):.4f}), which also holds how interference "
                f"interacts with the feature's own response inside the hidden ReLU.")
    return save(fig, outdir / "toy_cross_gain.png"), cap


def fig_interference(a: ToyAnalysis, outdir: Path) -> tuple[str, str]:
    fig, ax = plt.subplots(figsize=(11, 4))
    idx = np.arange(a.n_features)
    pos, neg = a.isolated_mse_positive.mean(0), a.isolated_mse_negative.mean(0)
    ax.bar(idx, pos, color=C_TRAINED, width=1.0, label="isolated MSE, x > 0 part")
    ax.bar(idx, neg, bottom=pos, color="#9ecae1", width=1.0, label="isolated MSE, x < 0 part")
    ax.plot(idx, np.nanmean(a.mse_active, 0), color=C_NAIVE, lw=0.8, marker=".", ms=3,
            label="training-distribution MSE (per feature)")
    m = a.per_instance()
    mse = np.mean(m["mse_active_mean"])
    ax.axhline(mse, color=C_NAIVE, ls="--", lw=1, label=f"mean training MSE {mse:.4f}")
    ax.axhline(np.mean(m["attenuation_mse_pure_gain"]), color="k", ls=":", lw=1,
               label="pure-gain theory (1 − g)²/6, g = slope")
    ax.axhline(np.mean(m["attenuation_mse_pure_gain_weff"]), color="k", ls="-.", lw=1,
               label="pure-gain theory, g = diag(W_eff)")
    _label(ax, "feature", "MSE (active samples)", legend=False)  # its own legend below, above the bars
    top = max(float(np.nanmax(np.nanmean(a.mse_active, 0))), float((pos + neg).max()), 1e-12)
    ax.set_ylim(0, 1.45 * top)  # headroom for the legend
    ax.legend(fontsize=8, loc="upper left", ncol=3)
    cap = (f"Isolated MSE (one feature active; mean over instances per feature) vs the training-"
           f"distribution MSE. Measured: isolated {np.mean(m['isolated_mse_mean']):.4f} = "
           f"{100 * np.mean(m['attenuation_share_measured']):.0f} % of {mse:.4f}, interference "
           f"{100 * np.mean(m['interference_share']):.0f} %; pure-gain theory "
           f"{np.mean(m['attenuation_mse_pure_gain']):.4f} = "
           f"{100 * np.mean(m['attenuation_share_pure_gain']):.0f} % at the measured slope g = "
           f"{np.mean(m['gain_mean']):.3f}, {np.mean(m['attenuation_mse_pure_gain_weff']):.4f} = "
           f"{100 * np.mean(m['attenuation_share_pure_gain_weff']):.0f} % at g = diag(W_eff) = "
           f"{np.mean(m['weff_diag_mean']):.3f}. The x < 0 part of the isolated "
           f"error is {np.mean(m['isolated_mse_negative_mean']):.5f}.")
    return save(fig, outdir / "toy_interference.png"), cap


def fig_optimal_gain(a: ToyAnalysis, outdir: Path) -> tuple[str, str]:
    m = a.per_instance()
    g0 = m["gain_mean"][0]
    x = a.line_search_scales[0] * g0
    single = a.single_line_search_scales is not None
    fig, axes = plt.subplots(1, 2 if single else 1, figsize=(14 if single else 7.5, 4), squeeze=False)
    ax = axes[0, 0]
    ax.plot(x, a.line_search_losses[0], color=C_TRAINED, lw=1.2, label=f"L{a.loss_power:g} loss of c·y")
    ax.axvline(g0, color="k", lw=1.2, label=f"learned gain (slope) {g0:.3f}")
    ax.axvline(m["optimal_gain_line_search"][0], color=C_L2, ls="--", lw=1.2,
               label=f"line-search optimum {m['optimal_gain_line_search'][0]:.3f}")
    ax.axvline(m["optimal_gain"][0], color=C_NAIVE, ls=":", lw=1.5,
               label=f"theory γ* = 1/(1+K^(1/(q−1))) = {m['optimal_gain'][0]:.3f}")
    ax.set_yscale("log")
    _label(ax, "implied gain c × learned gain", f"training-distribution L{a.loss_power:g} loss",
           "Training distribution", title_size=10)
    if single:
        ax = axes[0, 1]
        # each loss divided by its own minimum: the two live on different scales, their optima matter
        for sc, ls, col, name in ((a.single_line_search_scales, a.single_line_search_losses, C_TRAINED,
                                   "one feature, x ~ U(0, 1]"),
                                  (a.isolated_line_search_scales, a.isolated_line_search_losses, C_L2,
                                   "one feature, x ~ U(−1, 1)")):
            ax.plot(sc[0] * g0, ls[0] / ls[0].min(), color=col, lw=1.2, label=name)
        ax.axvline(m["optimal_gain"][0], color=C_NAIVE, ls=":", lw=1.5,
                   label=f"theory γ* = {m['optimal_gain'][0]:.3f}")
        ax.axvline(m["optimal_gain_line_search_single"][0], color=C_TRAINED, ls="--", lw=1.0,
                   label=f"x > 0 optimum {m['optimal_gain_line_search_single'][0]:.3f}")
        ax.axvline(m["optimal_gain_line_search_isolated"][0], color=C_L2, ls="--", lw=1.0,
                   label=f"U(−1, 1) optimum {m['optimal_gain_line_search_isolated'][0]:.3f}")
        ax.set_ylim(0.95, 2.0)
        _label(ax, "implied gain c × learned gain", "single-feature loss / its minimum",
               "One feature active alone (the closed form's setting)", title_size=10)
    cap = (f"Why the learned gain is {np.mean(m['gain_mean']):.3f} (the measured slope; W_eff's "
           f"diagonal is {np.mean(m['weff_diag_mean']):.3f}): the output scaled by c "
           f"(W_out, b_out × c), "
           f"loss as a function of the implied gain (instance 0). Means over instances: training-"
           f"distribution optimum {np.mean(m['optimal_gain_line_search']):.3f} "
           f"(best c = {np.mean(m['line_search_best_scale']):.3f}); single-feature theory γ* "
           f"{np.mean(m['optimal_gain']):.3f} (mean K = {np.mean(m['gain_ratio_K_mean']):.3g})"
           + ("" if not single else
              f", single-feature line search (x > 0) "
              f"{np.mean(m['optimal_gain_line_search_single']):.3f}, "
              f"with x < 0 too {np.mean(m['optimal_gain_line_search_isolated']):.3f}") + ".")
    return save(fig, outdir / "toy_optimal_gain.png"), cap


def fig_residual_ablation(a: ToyAnalysis, outdir: Path) -> tuple[str, str]:
    m = a.per_instance()
    parts = ["isolated_mse", "interference", "training_mse"]
    labels = ["isolated MSE", "interference part", "training MSE"]
    fig, ax = plt.subplots(figsize=(7.5, 4))
    w = 0.38
    for k, (who, col) in enumerate((("model", C_TRAINED), ("ablated", C_NAIVE))):
        vals = [m[f"residual_ablation_{p}_{who}"] for p in parts]
        ax.bar(np.arange(3) + (k - 0.5) * w, [np.mean(v) for v in vals], w,
               yerr=[np.std(v) for v in vals] if a.instances > 1 else None, color=col, capsize=3,
               label="model" if who == "model" else "negative residual removed")
    ax.set_xticks(np.arange(3), labels)
    _label(ax, ylabel="MSE (active samples)")
    inc = float(np.mean(m["residual_ablation_interference_increase"]))
    dec = float(np.mean(m["residual_ablation_isolated_decrease"]))
    cap = ("Does the negative-input residual reduce interference? Removal: y' = y − s(x) for x < 0, s "
           "the model's own isolated response (means over instances). "
           + residual_ablation_sentence(inc, dec))
    return save(fig, outdir / "toy_residual_ablation.png"), cap


FIGURES = (fig_per_feature_mse, fig_response_overlay, fig_response_grid, fig_weights, fig_geometry,
           fig_sparsity, fig_losses, fig_l2_strategy, fig_cross_gain, fig_interference,
           fig_optimal_gain, fig_residual_ablation)


def make_toy_figures(analysis: ToyAnalysis, outdir: Path) -> list[tuple[str, str]]:
    """Write every figure that applies as PNG into outdir (fig_l2_strategy needs L2 models); returns
    (filename, caption) in report order."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    return [fc for fc in (f(analysis, outdir) for f in FIGURES) if fc is not None]


def plot_frame_geometry(comp: dict, path) -> str:
    """The frame comparison of superlens.toy.geometry.geometry_summary (instance 0): Gram spectra
    and worst pairs of the learned, random and near-equiangular frames."""
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
