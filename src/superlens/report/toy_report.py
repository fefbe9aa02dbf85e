"""report.html of the compressed-computation study."""
from __future__ import annotations

from pathlib import Path

from superlens.report.html import details, fmt, figure, page, para, pm, run_info, section, table
from superlens.toy import theory


# the source report's own numbers that its 73 % is computed from (superposition-mlp-report.md)
SOURCE_GAIN, SOURCE_MSE = 0.43, 0.0745
SOURCE_RATIOS = {"l2": 2.7, "l4": 8.5}
DEFAULT_SETTING = (100, 10, 0.02, 4.0)  # (n, h, p, q) the source report's numbers belong to


def _m(metrics: dict, key: str):
    return metrics.get(key), metrics.get(key + "_std")


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _has(metrics: dict, *keys: str) -> bool:
    return all(isinstance(metrics.get(k), (int, float)) for k in keys)


def residual_ablation_sentence(inc: float, dec: float) -> str:
    """Open question (b) in words, from the measured signs and sizes only.

    inc = interference part of the ablated model minus the model's; dec = isolated MSE of the model
    minus the ablated one's. Their difference inc − dec is the change of the active training MSE, so
    every clause below is a restatement of a sign and never claims more than the numbers show."""
    def change(x: float, what: str) -> str:
        return (f"raises {what} by {fmt(abs(x))}" if x > 0 else f"lowers {what} by {fmt(abs(x))}"
                if x < 0 else f"leaves {what} unchanged")
    net = inc - dec
    text = (f"Removing the residual {change(-dec, 'the isolated error')} and "
            f"{change(inc, 'the interference part')}, so it {change(net, 'the active training MSE')}. ")
    if inc > 0 and dec > 0:
        text += ("Yes: the residual cancels more interference than it costs in isolation." if inc > dec
                 else "Not on balance: the residual cancels some interference, but less than it costs "
                      "in isolation.")
    elif inc > 0:
        text += "Yes: the residual cancels interference and costs nothing in isolation."
    else:
        text += ("No: the residual does not cancel interference (removing it does not raise the "
                 "interference part)" + (", though it lowers the isolated error." if dec < 0 else "."))
    return text


def optimal_gain_answer(m: dict, default_setting: bool) -> str:
    """Open question (a) in words: learned gain vs the closed form and the three line searches."""
    need = ("gain_mean", "weff_diag_mean", "optimal_gain", "optimal_gain_line_search",
            "optimal_gain_line_search_single", "optimal_gain_line_search_isolated")
    if not _has(m, *need):
        return ""
    g, wd, th = m["gain_mean"], m["weff_diag_mean"], m["optimal_gain"]
    ls, ls1, lsi = (m["optimal_gain_line_search"], m["optimal_gain_line_search_single"],
                    m["optimal_gain_line_search_isolated"])
    close = 0.01  # within this the two numbers are called equal (about the fine search's resolution)
    text = (f"Answer: the learned response slope (gain) is {fmt(g)}; W_eff's diagonal is {fmt(wd)}. "
            f"For one feature active alone at x > 0 the closed form γ* = 1/(1 + K^(1/(q−1))) gives "
            f"{fmt(th)} from the learned cross-gains. A line search over the output scale on exactly "
            f"that loss (each feature alone, x ~ U(0, 1]) finds {fmt(ls1)}, "
            + ("agreeing with the closed form. " if abs(ls1 - th) <= close else
               f"{fmt(ls1 - th)} from the closed form (which uses the mean K and so assumes equal "
               f"self-gains). ")
            + f"With negative inputs too (one feature, x ~ U(−1, 1)) the optimum is {fmt(lsi)}; "
              f"on the training distribution it is {fmt(ls)}"
            + (", where the model sits. " if abs(ls - g) <= close else
               f", {fmt(ls - g)} from the learned gain. ")
            + f"The gap between the single-feature optimum {fmt(ls1)} and the training-distribution "
              f"optimum {fmt(ls)} comes from what the closed form leaves out: co-active features "
              f"(interference) and their interaction in the hidden ReLU move the optimum by "
              f"{fmt(ls - lsi)}, negative inputs by {fmt(lsi - ls1)}. W_eff's diagonal exceeds the "
              f"slope for a bias-free "
              f"model by the magnitude of the response at x = −1 (neurons a positive input switches "
              f"off).")
    if default_setting and abs(wd - SOURCE_GAIN) < 0.015 and abs(g - SOURCE_GAIN) >= 0.015:
        text += " The source report's 'gain 0.43' matches this diagonal, not the measured slope."
    return text


def interference_definitions_sentence(m: dict) -> str:
    """Which definition of the attenuation share gives the source report's 86 % and which its 73 %."""
    if not _has(m, "attenuation_share_measured", "attenuation_share_pure_gain",
                "attenuation_share_pure_gain_weff", "gain_mean", "weff_diag_mean"):
        return ""
    a, bg, bw = (m["attenuation_share_measured"], m["attenuation_share_pure_gain"],
                 m["attenuation_share_pure_gain_weff"])
    src73 = float(theory.attenuated_isolated_mse(SOURCE_GAIN)) / SOURCE_MSE
    return (f"Why the source report says both 86 % and 73 %: they are two definitions of the "
            f"attenuation share. (A) measured isolated MSE / training MSE gives {_pct(a)} here "
            f"(the report's 86 % "
            f"is this). (B) the pure-gain error (1 − g)²/6 / training MSE depends on the g put "
            f"in: at the measured response slope g = {fmt(m['gain_mean'])} it gives {_pct(bg)} "
            f"({abs(100 * (bg - a)):.0f} points from (A)); at g = diag(W_eff) = "
            f"{fmt(m['weff_diag_mean'])} it gives {_pct(bw)}. The report's 73 % is (B) at its g = "
            f"{SOURCE_GAIN} with its MSE {SOURCE_MSE}: (1 − {SOURCE_GAIN})²/6 / {SOURCE_MSE} = "
            f"{_pct(src73)}, i.e. (B) evaluated at the W_eff diagonal rather than at the slope.")


def l2_strategy_sentence(m: dict, n: int, h: int, q: float) -> str:
    """What the L2-trained model does, classified from its measured per-feature gains."""
    from superlens.toy.analysis import IGNORED_GAIN, classify_strategy

    keys = ("l2_trained_ignored_features", "l2_trained_kept_gain_mean", "l2_trained_kept_gain_std")
    if not _has(m, *keys):
        return ""
    ign, km, ks = (m[k] for k in keys)
    label = classify_strategy(ign, km, ks, n, h)
    what = {"naive": "the naive strategy (about h features computed at full gain, the rest ignored)",
            "uniform": "the uniform strategy (every feature kept at one reduced gain)",
            "mixed": "neither the naive strategy (h features at full gain, the rest 0) nor the uniform "
                     "one (every feature at one reduced gain), but a mix: some features dropped, the "
                     "rest in superposition at a reduced gain",
            "spread": "no feature dropped, but gains far from uniform",
            "none kept": "no feature kept"}[label]
    src = ("the trained models themselves (loss_power = 2, so no separate L2 run)"
           if m.get("l2_trained_from_main_model") else "the same seeds trained with L2")
    text = (f"Strategy under L2 ({src}): it ignores {fmt(ign)} of {n} features (gain < {IGNORED_GAIN}) "
            f"and keeps the other {fmt(n - ign)} at gain {fmt(km)} ± {fmt(ks, 2)} over features")
    if _has(m, "l2_trained_kept_gain_min", "l2_trained_kept_gain_max"):
        text += f" (range {fmt(m['l2_trained_kept_gain_min'])}–{fmt(m['l2_trained_kept_gain_max'])})"
    if _has(m, "l2_trained_mse_active_range"):
        text += (f"; its per-feature active MSE spans {fmt(m['l2_trained_mse_active_range'])} "
                 "(max − min)")
    text += f": {what} [{label}]."
    if _has(m, "ignored_features", "kept_gain_mean", "kept_gain_std") and q != 2.0:
        lab = classify_strategy(m["ignored_features"], m["kept_gain_mean"], m["kept_gain_std"], n, h)
        text += (f" The L{q:g}-trained model ignores {fmt(m['ignored_features'])} and keeps the rest at "
                 f"{fmt(m['kept_gain_mean'])} ± {fmt(m['kept_gain_std'], 2)} [{lab}].")
    return text


def loss_ratio_sentence(m: dict, q: float, default_setting: bool) -> str:
    """The naive / learned loss ratios measured here beside the source report's 2.7× and 8.5×."""
    if not _has(m, "l2_naive_over_learned", "l4_naive_over_learned"):
        return ""
    r2, r4 = m["l2_naive_over_learned"], m["l4_naive_over_learned"]
    text = (f"Naive / learned loss of the L{q:g}-trained model, measured: {r2:.2f}× under L2 and "
            f"{r4:.2f}× under L4; the source report claims ~{SOURCE_RATIOS['l2']}× and "
            f"{SOURCE_RATIOS['l4']}×")
    if default_setting:
        text += (f" ({100 * (r2 / SOURCE_RATIOS['l2'] - 1):+.0f} % and "
                 f"{100 * (r4 / SOURCE_RATIOS['l4'] - 1):+.0f} % from them).")
    else:
        text += ", for its default setting (100 → 10, p = 0.02, L4), not this one."
    if _has(m, "l2_trained_l2_naive_over_learned"):
        text += (f" Naive / L2-trained model under L2: "
                 f"{m['l2_trained_l2_naive_over_learned']:.2f}×.")
    return text


def toy_report_html(config: dict, meta: dict, metrics: dict, analysis, fig_dir: Path,
                    figures: list[tuple[str, str]]) -> str:
    from superlens.toy.analysis import METRIC_DEFINITIONS as ANALYSIS_DEFINITIONS
    from superlens.toy.geometry import GEOMETRY_DEFINITIONS

    from superlens.measures.sae import SAE_DEFINITIONS

    METRIC_DEFINITIONS = {**ANALYSIS_DEFINITIONS, **GEOMETRY_DEFINITIONS, **SAE_DEFINITIONS}

    n, h, q, p = config["n_features"], config["n_hidden"], config["loss_power"], config["p"]
    default_setting = (n, h, p, float(q)) == DEFAULT_SETTING
    intro = section(
        "What ran",
        para(f"{config['seeds']} seed(s) of y = W_out · ReLU(W_in · x), {n} features → {h} neurons, "
             f"bias {'on' if config['bias'] else 'off'}; inputs: each feature active with probability "
             f"p = {p}, value U(−1, 1); target ReLU(x); loss mean |y − ReLU(x)|^{q:g}; Adam lr "
             f"{config['lr']} with cosine annealing, {config['steps']} steps of batch "
             f"{config['batch_size']}. Seeds train together as instances of one tensor program. "
             "Numbers are means over seeds (± std over seeds unless a definition says otherwise)."),
        para("Reference values are those of the compressed-computation report "
             "(superposition-mlp-report.md); they apply to its default setting (100 → 10, p = 0.02, L4).",
             "def"),
    )
    rows = [(r["quantity"], r["superlens"], r["report"], r["definition"])
            for r in analysis.summary_rows()]
    summary = section("Quantitative summary (the report's table, re-measured)",
                      table(["quantity", "superlens", "report", "definition"], rows),
                      para(interference_definitions_sentence(metrics)))

    def rows_for(keys):
        return [(k, pm(*_m(metrics, k)) if isinstance(metrics.get(k), float) else fmt(metrics.get(k)),
                 METRIC_DEFINITIONS.get(k, "")) for k in keys if k in metrics]

    ablation_keys = [k for k in sorted(metrics)
                     if k.startswith("residual_ablation") and not k.endswith("_std")]
    answer_a = optimal_gain_answer(metrics, default_setting)
    inc = metrics.get("residual_ablation_interference_increase")
    dec = metrics.get("residual_ablation_isolated_decrease")
    answer_b = ("" if not _has(metrics, "residual_ablation_interference_increase",
                               "residual_ablation_isolated_decrease")
                else "Answer: " + residual_ablation_sentence(inc, dec))
    l2_vs_l4 = section(
        "L2 vs L4 (analysis 7)",
        para(l2_strategy_sentence(metrics, n, h, float(q))),
        para(loss_ratio_sentence(metrics, float(q), default_setting)),
        table(["quantity", "value (mean ± std over seeds)", "definition"],
              rows_for(["l2_naive_over_learned", "l4_naive_over_learned",
                        "l2_trained_l2_naive_over_learned", "l2_trained_from_main_model",
                        "ignored_features", "kept_gain_mean", "kept_gain_std",
                        "l2_trained_ignored_features", "l2_trained_kept_gain_mean",
                        "l2_trained_kept_gain_std", "l2_trained_kept_gain_min",
                        "l2_trained_kept_gain_max", "l2_trained_gain_mean",
                        "l2_trained_mse_active_mean", "l2_trained_mse_active_range",
                        "l2_trained_l2_loss", "l2_trained_l4_loss"])),
    )
    oq = section(
        "Open questions answered",
        "<h3>(a) Why that gain? (the source report: g ≈ 0.43)</h3>",
        para(answer_a),
        table(["quantity", "value (mean ± std over seeds)", "definition"],
              rows_for(["gain_mean", "weff_diag_mean", "optimal_gain", "optimal_gain_per_feature_mean",
                        "optimal_gain_line_search_single", "optimal_gain_line_search_isolated",
                        "optimal_gain_line_search", "gain_ratio_K_mean"])),
        "<h3>(b) Negative-input residual: does it reduce interference?</h3>",
        para(answer_b),
        table(["quantity", "value (mean ± std over seeds)", "definition"],
              rows_for(["negative_residual_mean", "value_at_minus1_mean",
                        "negative_residual_reduces_interference",
                        "negative_residual_pays_for_itself", *ablation_keys])),
        "<h3>Feature geometry (open question 2)</h3>",
        table(["quantity", "value", "definition"], rows_for(list(GEOMETRY_DEFINITIONS))),
        para("The neurons/features ratio at which the strategy changes, and how the loss exponent moves "
             "that boundary, are answered by sweeps: `superlens sweep examples/width_sparsity.toml` and "
             "`examples/l2_vs_l4.toml`.", "def"),
    )
    figs = section("Analyses", *[figure(fig_dir / name, cap) for name, cap in figures])

    metric_rows = []
    for key in sorted(metrics):
        val = metrics[key]
        twin = key.endswith("_std") and key[:-4] in metrics  # shown as the ± of its mean
        if twin or isinstance(val, (list, dict)):
            continue
        mean, std = _m(metrics, key)
        metric_rows.append((key, pm(mean, std) if isinstance(mean, float) else fmt(mean),
                            METRIC_DEFINITIONS.get(key, "")))
    sweep = metrics.get("sparsity_sweep") or []
    all_metrics = section(
        "Every metric with its definition (metrics.json)",
        table(["key", "value (mean ± std)", "definition"], metric_rows),
        details("sparsity sweep (p → mean active-conditioned per-feature MSE)",
                table(["p", "mse_active_mean"], [(d["p"], d["mse_active_mean"]) for d in sweep])),
    )
    return page("superlens — compressed computation study",
                [intro, summary, l2_vs_l4, oq, figs, all_metrics, run_info(config, meta)])
