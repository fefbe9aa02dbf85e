"""The result record of the compressed-computation analyses: `ToyAnalysis` holds every per-instance
result (numpy arrays), derives the per-instance scalars, the metrics (means and stds over instances, each
defined in superlens.toy.definitions) and reads and writes itself as JSON.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from superlens.measures.dimensionality import welch_bound, welch_bound_mean_square
from superlens.measures.numeric import json_clean, json_float
from superlens.toy import theory
from superlens.toy.definitions import NO_TWIN
from superlens.toy.phases import cc_phases, majority, strategy_stats


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
                m[k] = json_float(np.mean(v))
                if k not in NO_TWIN:
                    m[k + "_std"] = json_float(np.std(v))
        m["zero_norm_features"] = json_float(np.mean(self.zero_norm_features))
        m["naive_mse_active_theory"] = theory.naive_mse_active_mean(self.n_features, self.n_hidden)
        m["naive_mse_all_theory"] = theory.naive_mse_all_mean(self.n_features, self.n_hidden, self.p)
        m["abs_cos_random_theory"] = theory.random_abs_cos_mean(self.n_hidden)
        m["abs_cos_random_mc"] = json_float(self.abs_cos_random_mc)
        m["cos_sq_random_theory"] = theory.random_cos_sq_mean(self.n_hidden)
        m["welch_bound"] = welch_bound(self.n_features, self.n_hidden)
        m["welch_bound_mean_square"] = welch_bound_mean_square(self.n_features, self.n_hidden)
        # the verdict on the instance means (per-instance agreement alongside)
        inc = m["residual_ablation_interference_increase"]
        dec = m["residual_ablation_isolated_decrease"]
        m["negative_residual_reduces_interference"] = None if inc is None else bool(inc > 0)
        m["negative_residual_pays_for_itself"] = (None if inc is None or dec is None
                                                  else bool(inc > dec))
        pi = self.per_instance()
        m["negative_residual_reduces_interference_fraction"] = json_float(np.mean(
            pi["residual_ablation_interference_increase"] > 0))
        for k in ("l2_trained_gain_mean", "l2_trained_gain_std", "l2_trained_mse_active_mean",
                  "l2_trained_mse_active_feature_std", "l2_trained_mse_active_range",
                  "l2_trained_weff_diag_mean", "l2_trained_ignored_features",
                  "l2_trained_kept_gain_mean", "l2_trained_kept_gain_std"):
            m.setdefault(k, None)
        m["l2_trained_from_main_model"] = None if self.l2_gain is None else bool(self.l2_from_main)
        # the one phase rule (superlens.toy.phases), the majority over instances
        m["phase"] = majority(cc_phases(self.gain, self.mse_active, self.n_hidden))
        m["l2_trained_phase"] = (None if self.l2_gain is None else
                                 majority(cc_phases(self.l2_gain, self.l2_mse_active, self.n_hidden)))
        m["sparsity_sweep"] = [
            {"p": float(p), "mse_active_mean": json_float(np.nanmean(self.sweep_mse[:, j])),
             "mse_active_std": json_float(np.nanstd(self.sweep_mse[:, j])),
             "naive_mse_active_mean": json_float(self.sweep_naive[j]),
             "l2_trained_mse_active_mean": (None if self.sweep_l2 is None
                                            else json_float(np.nanmean(self.sweep_l2[:, j])))}
            for j, p in enumerate(self.sweep_ps)]
        return m


    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: arrays as {"__ndarray__": nested lists, "dtype"}; in arrays NaN is None and
        +-inf is "inf" / "-inf" (read back as such)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                out[f.name] = {"__ndarray__": json_clean(v.tolist()), "dtype": str(v.dtype)}
            elif isinstance(v, (float, np.floating)):
                out[f.name] = json_clean(float(v))
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
