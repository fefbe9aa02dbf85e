"""How well the SAE feature count F agrees with a known answer: correlations and ratios over a
validation table's models, and the calibration table (superlens.measures.sae_calibration) they make.

A validation model is a dict with "family" (tms, cc or planted), the known answers ("represented":
the count of ||W_i|| > 0.5 for toys, F_true = exp(H(q)) for planted features; "weight_entropy":
exp(H(p_i ∝ ||W_i||)) for the classic toy, the reference of Bereska et al. 2025, arXiv 2512.13568),
and F, F_raw: lists over AE seeds.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

FAMILIES = ("pooled", "tms", "cc", "planted")


def _corr(fn, a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.std() == 0 or b.std() == 0:  # a constant has no rank order: undefined, not an error
        return math.nan
    return float(fn(a, b)[0])


def pearson(a, b) -> float:
    """Pearson's r (scipy.stats.pearsonr); nan when either side is constant."""
    return _corr(stats.pearsonr, a, b)


def spearman(a, b) -> float:
    """Spearman's rho with average ranks for ties (scipy.stats.spearmanr); nan when constant."""
    return _corr(stats.spearmanr, a, b)


def correlations(models: list[dict], key: str = "F", known_key: str = "represented",
                 families: tuple[str, ...] = FAMILIES) -> dict:
    """Spearman rho and Pearson r of F (per AE seed) against the known answer, per family and
    pooled: {subset: {"n": models, "rho": [per seed], "r": [...], "rho_mean", "rho_std", "r_mean",
    "r_std"}} (std over AE seeds, ddof = 1). Pooled joins the toy families only (planted F_true is
    another kind of answer). Where models were fitted with different numbers of AE seeds (a spec
    may set ae_seeds per cell), the seeds all of them have are used."""
    out = {}
    for name in families:
        sub = [e for e in models if known_key in e and
               (e["family"] == name or (name == "pooled" and e["family"] in ("tms", "cc")))]
        if len(sub) < 3:
            continue
        known = [e[known_key] for e in sub]
        S = min(len(e[key]) for e in sub)
        rho = [spearman([e[key][s] for e in sub], known) for s in range(S)]
        r = [pearson([e[key][s] for e in sub], known) for s in range(S)]
        out[name] = {"n": len(sub), "rho": rho, "r": r,
                     "rho_mean": float(np.mean(rho)),
                     "rho_std": float(np.std(rho, ddof=1)) if S > 1 else 0.0,
                     "r_mean": float(np.mean(r)), "r_std": float(np.std(r, ddof=1)) if S > 1 else 0.0}
    return out


def correlation_tables(models: list[dict]) -> dict:
    """The correlation tables of a validation: F and F_raw against the represented count (planted:
    F_true), F against ||W||_F^2, and the classic toy's F against its weight entropy."""
    return {"correlations": correlations(models), "correlations_raw": correlations(models, "F_raw"),
            "correlations_frobenius": correlations(models, known_key="frobenius_sq",
                                                   families=("pooled", "tms", "cc")),
            "correlations_entropy": correlations(models, known_key="weight_entropy", families=("tms",)),
            "correlations_entropy_raw": correlations(models, "F_raw", known_key="weight_entropy",
                                                     families=("tms",))}


def is_sparse(e: dict) -> bool:
    """A planted setting counts as sparse when a row holds at most 8 features on average and at most
    a quarter of the layer's width (the targets are about these; dense settings are reported)."""
    return e["active"] <= min(8.0, e["width"] / 4)


def planted_ratios(models: list[dict], key: str = "F_mean") -> list[dict]:
    """Per planted model: width, K, F_true, F / F_true (F the mean over AE seeds), the spread over
    AE seeds as a share of F, whether the setting is sparse, and (tables that have them) the mean
    mcc and recovered share (superlens.measures.planted.feature_recovery)."""
    out = []
    for e in models:
        if e["family"] != "planted":
            continue
        f = e[key] if key != "F_raw_mean" else float(np.mean(e["F_raw"]))
        out.append({"width": e["width"], "k_features": e["k_features"], "f_true": e["represented"],
                    "ratio": f / e["represented"], "spread": e["F_std"] / max(e["F_mean"], 1e-12),
                    "sparse": is_sparse(e),
                    **{k: e[k + "_mean"] for k in ("mcc", "recovered") if k + "_mean" in e}})
    return out


def calibration_table(models: list[dict], targets: dict, command: str, recipe: dict) -> dict:
    """The calibration table (the format superlens.measures.sae_calibration reads) of a held-out
    validation: per width the sparse planted settings' median and largest |F / F_true - 1| (ok when
    within the targets), the pooled Spearman rho of F against F_true, the classic toy's r against
    its weight entropy and rho against the represented count, the largest spread over AE seeds;
    `met` says which target each figure met, and targets_met is their conjunction. A target with no
    setting to measure it is not met."""
    rat = [r for r in planted_ratios(models) if r["sparse"]]
    widths = {}
    for w in sorted({r["width"] for r in rat}):
        sub = [r for r in rat if r["width"] == w]
        err = np.abs(np.array([r["ratio"] for r in sub]) - 1)
        widths[str(w)] = {"settings": len(sub), "median_ratio": float(np.median([r["ratio"] for r in sub])),
                          "median_abs_error": float(np.median(err)), "max_abs_error": float(err.max()),
                          "seed_spread": float(max(r["spread"] for r in sub))}
        for k in ("mcc", "recovered"):  # are the latents the features (descriptive, no target)
            if all(k in r for r in sub):
                widths[str(w)]["median_" + k] = float(np.median([r[k] for r in sub]))
        widths[str(w)]["ok"] = bool(widths[str(w)]["median_abs_error"] <= targets["planted_median_abs_error"]
                                    and widths[str(w)]["max_abs_error"] <= targets["planted_max_abs_error"])
    measured: dict = {}
    if rat:
        err = np.abs(np.array([r["ratio"] for r in rat]) - 1)
        measured["planted_median_abs_error"] = float(max(v["median_abs_error"] for v in widths.values()))
        measured["planted_max_abs_error"] = float(err.max())
        measured["seed_spread"] = float(max(r["spread"] for r in rat))
    planted = [e for e in models if e["family"] == "planted" and is_sparse(e)]
    c = correlations(planted, families=("planted",)).get("planted")
    if c:
        measured["planted_rho"], measured["planted_rho_std"] = c["rho_mean"], c["rho_std"]
        measured["planted_r"], measured["planted_r_std"] = c["r_mean"], c["r_std"]
    ce = correlations(models, known_key="weight_entropy", families=("tms",)).get("tms")
    if ce:
        measured["tms_r_entropy"], measured["tms_r_entropy_std"] = ce["r_mean"], ce["r_std"]
    cc = correlations(models, families=("tms",)).get("tms")
    if cc:
        measured["tms_rho_count"], measured["tms_rho_count_std"] = cc["rho_mean"], cc["rho_std"]
    at_most = {"planted_median_abs_error", "planted_max_abs_error", "seed_spread"}
    met = {k: (k in measured and (measured[k] <= v if k in at_most else measured[k] >= v))
           for k, v in targets.items()}
    out = {"command": command, "recipe": recipe, "targets": dict(targets), "measured": measured,
           "met": met, "targets_met": bool(met) and all(met.values()), "widths": widths}
    if planted:  # the largest FVU at which F was checked: beyond it F is not read as a count
        out["fvu_max"] = float(max(np.mean(e["fvu"]) for e in planted))
    return out


__all__ = ["FAMILIES", "calibration_table", "correlation_tables", "correlations", "is_sparse",
           "pearson", "planted_ratios", "spearman"]
