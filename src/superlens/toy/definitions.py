"""What every number of the compressed-computation study means: the definition of each metrics.json key
(the toy run's analyses and its frame geometry). Reports quote these; a key without one is a bug
(tests/test_studies_toy.py checks).
"""
from __future__ import annotations

from superlens.toy.phases import GAIN_IGNORED

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
    "ignored_features": f"Features whose gain is below {GAIN_IGNORED:g} (counted as ignored); mean over "
                        "instances." + _STD,
    "kept_gain_mean": f"Mean gain over the features with gain ≥ {GAIN_IGNORED:g}; mean over "
                      "instances." + _STD,
    "kept_gain_std": f"Std over the features with gain ≥ {GAIN_IGNORED:g} of their gain, mean over "
                     "instances.",
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
    "l2_trained_ignored_features": f"L2-trained: features with gain < {GAIN_IGNORED:g} (ignored); mean over "
                                   "instances." + _STD,
    "l2_trained_kept_gain_mean": "L2-trained: mean gain over the features with gain ≥ "
                                 f"{GAIN_IGNORED:g}." + _STD,
    "l2_trained_kept_gain_std": "L2-trained: std over the features with gain ≥ "
                                f"{GAIN_IGNORED:g} of their gain, "
                                "mean over instances.",
    "l2_trained_kept_gain_min": "L2-trained: smallest gain among the features with gain ≥ "
                                f"{GAIN_IGNORED:g}." + _STD,
    "l2_trained_kept_gain_max": "L2-trained: largest gain among the features with gain ≥ "
                                f"{GAIN_IGNORED:g}." + _STD,
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
    "phase": "The strategy the trained models learned, by the one phase rule of superlens.toy.phases "
             "(all-dedicated / naive / ignore-some / attenuate-all / mixed, from per-feature gains and "
             "active MSEs); the majority over instances.",
    "l2_trained_phase": "The same phase rule applied to the L2-trained models (majority over "
                        "instances); null without them.",
    "verdicts": "One row per claim of the compressed-computation report (public repository "
                "`Manan-Wadhwa/superposition_analysis`): claim, source_value, measured, verdict "
                "(reproduced / not reproduced / contradicted / answered / not comparable / open here) "
                "and why; the rules are in superlens.toy.verdicts.",
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
NO_TWIN = {"gain_std", "weff_diag_std", "self_gain_std", "mse_active_feature_std", "l2_trained_gain_std",
            "l2_trained_weff_diag_std", "l2_trained_mse_active_feature_std", "line_search_at_edge",
            "line_search_single_at_edge", "kept_gain_std", "l2_trained_kept_gain_std",
            "l2_trained_from_main_model",
            "zero_norm_features", "naive_mse_active_theory", "naive_mse_all_theory",
            "abs_cos_random_theory", "abs_cos_random_mc", "cos_sq_random_theory", "welch_bound",
            "welch_bound_mean_square", "negative_residual_reduces_interference",
            "negative_residual_pays_for_itself",
            "negative_residual_reduces_interference_fraction", "sparsity_sweep", "n_features", "n_hidden",
            "instances", "p", "loss_power", "eval_samples", "train_seconds", "l2_train_seconds",
            "phase", "l2_trained_phase", "verdicts"}
for _k in list(METRIC_DEFINITIONS):
    if _k not in NO_TWIN and not _k.endswith("_mean_std") and _k + "_std" not in METRIC_DEFINITIONS:
        METRIC_DEFINITIONS[_k + "_std"] = (f"Std over instances of {_k} (population std; 0 for one "
                                           "instance).")


def metric_definition(key: str) -> str:
    """The definition of a metrics key, also for `<key>_std` twins and other loss powers."""
    if key in METRIC_DEFINITIONS:
        return METRIC_DEFINITIONS[key]
    if key.endswith("_std") and key[:-4] in METRIC_DEFINITIONS:
        return "Std over instances of " + key[:-4] + "."
    return ""


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
