"""The SAE measure's validation page: F against the known answers (toy models, planted features),
in figures and words. Reads a validation table (superlens.studies.sae_validation.run_validation or
a sweep's rows via table_from_rows); computes nothing but summaries of it."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from superlens.measures.planted import RECOVERED_COS

RECIPE_HISTORY = (
    "How the recipe was fixed: BatchTopK with k = 2 (latents per non-zero row on average), dictionary "
    "8 × width, unit-norm decoder rows without a decoder bias, latents with decoder cosine ≥ 0.95 "
    "pooled, was chosen on the development grid (examples/sae_calibration_dev.toml: widths 16 and "
    "64, U(0, 1) magnitudes, model seed 0; k = 2 against 4) and then run on a first held-out grid "
    "(other K / N, exponential magnitudes, model seed 100). That grid was looked at three times while "
    "the recipe changed, so it stopped being held out. Second look: the compute cap per autoencoder "
    "went from 100 to 2000 GFLOP (100 had left a 512-wide layer 124 steps, and F read 1.6–3.4× the "
    "truth there), and BatchTopK's budget counts only the minibatch's non-zero rows. Third look: 8000 "
    "Adam steps instead of 2000 (the cap still rules the 512-wide layers: 2483 steps of 128 rows), and "
    "minibatches drawn only among non-zero rows (both chosen on development settings, where the "
    "2000-step fits had not converged). The third look met the planted targets at widths 64–512 "
    "(median |F / F_true − 1| ≤ 0.09) but read the classic toy model 1.5–1.9× its weight entropy at "
    "p = 0.02–0.1 (r 0.80). Then, on the development grid with the classic toy model's model seeds 0 "
    "and 1 added, k = 1, 2 and 3 side by side showed why: a budget above the features a row holds "
    "splits them, a budget below costs FVU but hardly F. The fewest-latents rule followed: where the "
    "fit at k = 2 reaches FVU ≤ 0.02, a fit at k = 1 is tried and kept when it reaches it too "
    "(picked from separate development fits at k = 1 and 2: TMS r 0.76 → 0.95, any threshold in "
    "0.01–0.06 ≥ 0.90; the rule itself on the development models, 3 AE seeds: r 0.88 ± 0.03). "
    "With that rule frozen, a second held-out grid (model seeds 200–202, half-normal magnitudes, "
    "K / N = 0.75, 3, 5) was run once: median |F / F_true − 1| 0.283 / 0.003 / 0.008 / 0.102 at widths "
    "16 / 64 / 128 / 512, largest 0.48 / 0.06 / 0.02 / 0.17, Spearman ρ 0.986, seed spread 6.9 %; "
    "the classic toy model r 0.843 ± 0.016 against its weight entropy, ρ 0.867 ± 0.038 against the "
    "count. A dictionary of 16 or 32 × width was tried on the development "
    "grid's width 16 and did not help (K / N = 4 read 0.58–0.60 of F_true at 8, 16 and 32 × width). "
    "After that run, on development settings only: 4 × the steps (examples/"
    "sae_calibration_dev_steps.toml, 32,000 against 8,000) raised width 16 at K / N = 4 from 0.59 to "
    "0.72 of F_true (K / N = 8: 0.33 to 0.37; width 64 at K / N = 4: 0.97 to 0.99) but lowered the "
    "classic toy model's development models from r 0.935 to 0.873 against the weight entropy (ρ 0.935 "
    "to 0.903): at p ≤ 0.02 the longer fits reconstruct the same rows (FVU ≤ 0.02) with fewer, "
    "heavier latents and read 0.67–0.88, so the steps stay at 8,000. Resampling dead latents onto "
    "badly reconstructed rows (Anthropic's 2023 rule, tried and not kept) revived latents without "
    "moving F (a 512-wide planted layer, K / N = 4: 0.767 → 0.770 of F_true, FVU 0.25 → 0.27–0.29; "
    "the toy's development models within their noise): the dead latents are surplus, not features "
    "the fit missed. Two other ways to stop k = 2 from splitting the toy's features were tried there "
    "and not kept: an L1 term beside BatchTopK (0.01 or 0.03 × the mean code; r 0.77–0.80, the toy "
    "at p = 0.01–0.1 still read 1.1–1.8×) and pooling latents whose activations correlate ≥ 0.8–0.95 "
    "over the rows (r 0.91–0.93 at k = 2, 0.84 at k = 1, against 0.925 with the rule on the same "
    "models). Then the wide layers: a development grid with widths 128 and 512 added "
    "(examples/sae_calibration_dev_k.toml: K / N = 0.25, 1, 4, 8, U(0, 1) magnitudes, model seed 0, "
    "each point fitted at k = 1, 2, 3, 4, 8 and 16 on its own) showed that k = 2 merges features where "
    "rows hold 3 of them in a wide layer (512 wide: 0.63–0.89 of F_true at K / N ≥ 1, FVU 0.12–0.30; "
    "k = 3: 0.77–1.02, FVU ≤ 0.23) while higher k splits them where k = 2 already reconstructs. The "
    "more-latents rule followed, read off the fits alone: where the fit at k = 2 leaves FVU > 0.1, k = 3 "
    "then 4 are tried and the first that reaches FVU ≤ 0.1 is kept (the k = 4 fit where none does). "
    "Picked from those separate fits, it moved the sparse planted settings' median / largest error at "
    "width 512 from 0.163 / 0.367 to 0.030 / 0.150 (128: 0.013 / 0.097 to 0.013 / 0.066; 64: 0.034 / "
    "0.140 to 0.027 / 0.104), any threshold from 0.08 to 0.15 giving a median ≤ 0.08 and a largest "
    "≤ 0.15 at 512; the classic toy model's development r stayed at 0.954 (its dense end, p = 0.999, "
    "from 0.69–0.71 to 0.91–1.04 of the weight entropy), and width 16 got slightly worse (median 0.347 "
    "→ 0.375: crowded layers reconstruct badly at any k, and a higher k reads fewer features there). "
    "Letting k go on to 8 read the 64-wide dense setting right but split features elsewhere (largest "
    "error at width 64 0.22, with 16: 0.58), so k stops at 4. With both rules frozen, a third "
    "held-out grid (examples/sae_calibration.toml: model seeds 400–402, Exp(1) magnitudes, K / N = "
    "0.625, 2.5, 5.5, none of them seen before) was run once; its figures are the ones on this page.")
KNOWN_ANSWER = ("the count of feature columns with ‖W_i‖ > {} (TMS: W; compressed computation: "
                "sqrt(‖W_in,i‖ ‖W_out,i‖), which W_in a, W_out / a leaves unchanged)")



def plot_validation(table: dict, path: Path) -> str:
    """F (mean +- std over AE seeds) against the represented count, coloured by regime; and F / D."""
    from superlens.report.plotting import plt, save

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    ms = [e for e in table["models"] if e["family"] != "planted"]  # toys only
    styles = {}
    for e in ms:
        if e["family"] == "tms":
            lab = f"TMS 20→5, {e['importance']} importance"
        else:
            lab = f"compressed computation, L{e['loss_power']:g}"
        styles.setdefault(lab, []).append(e)
    markers = "osD^v<>"
    for k, (lab, sub) in enumerate(styles.items()):
        xk = np.array([e["represented"] for e in sub], float)
        jitter = (np.random.default_rng(k).random(len(sub)) - 0.5) * 0.3
        c = [math.log10(e["p"]) for e in sub]
        sc = axes[0].scatter(xk + jitter, [e["F_mean"] for e in sub], c=c, cmap="viridis", vmin=-2,
                             vmax=0, marker=markers[k % len(markers)], label=lab, edgecolor="k", lw=0.4)
        axes[0].errorbar(xk + jitter, [e["F_mean"] for e in sub], yerr=[e["F_std"] for e in sub],
                         fmt="none", ecolor="gray", lw=0.8, zorder=0)
        axes[1].scatter(xk + jitter, [e["F_over_dict"] for e in sub], c=c, cmap="viridis", vmin=-2,
                        vmax=0, marker=markers[k % len(markers)], edgecolor="k", lw=0.4)
    top = max(max(e["represented"] for e in ms), max(e["F_mean"] for e in ms)) * 1.05
    axes[0].plot([0, top], [0, top], "k--", lw=0.8, label="F = represented count")
    axes[0].set_xlabel(f"represented features (||W_i|| > {table['represented_norm']})")
    axes[0].set_ylabel("SAE feature count F = exp(H(p)), mean ± std over AE seeds")
    axes[0].legend(fontsize=8, loc="upper left")
    axes[1].set_xlabel("represented features")
    axes[1].set_ylabel("F / dictionary size (1 = the cap)")
    axes[1].set_ylim(0, 1.05)
    fig.colorbar(sc, ax=axes, label="log10 feature probability p", shrink=0.8)
    c = table["correlations"]["pooled"]
    fig.suptitle(f"SAE measure vs known answer: pooled Spearman ρ = {c['rho_mean']:.3f} ± "
                 f"{c['rho_std']:.3f}, Pearson r = {c['r_mean']:.3f} ± {c['r_std']:.3f} "
                 f"({c['n']} models, {len(table['ae_seeds'])} AE seeds)")
    return save(fig, path)


def trust_findings(table: dict) -> list[str]:
    """Where F is and is not a count of the represented features, in words, from the table."""
    out = []
    for fam, name in (("tms", "classic toy model"), ("cc", "compressed-computation model")):
        sub = [e for e in table["models"] if e["family"] == fam]
        if not sub:
            continue
        ratio = np.array([e["F_mean"] / max(e["represented"], 1) for e in sub])
        off = [e for e, r in zip(sub, ratio) if not 0.67 <= r <= 1.5]
        c = table["correlations"].get(fam)
        text = (f"{name}: F / represented count has median {np.median(ratio):.2f} (range "
                f"{ratio.min():.2f}–{ratio.max():.2f})")
        if c:
            text += (f"; ρ = {c['rho_mean']:.3f} ± {c['rho_std']:.3f}, "
                     f"r = {c['r_mean']:.3f} ± {c['r_std']:.3f}")
        if off:
            cells = sorted({(e["p"], e["importance"] if fam == "tms" else f"L{e['loss_power']:g}",
                             e["width"]) for e in off})
            text += ("; off by more than a factor 1.5 in " + f"{len(off)} of {len(sub)} models: " +
                     ", ".join(f"p = {p:g} {k} width {w}" for p, k, w in cells))
        out.append(text + ".")
    cc = [e for e in table["models"] if e["family"] == "cc"]
    if cc:
        crowded = [e for e in cc if e["represented"] > 4 * e["width"]]
        if crowded:
            r = np.median([e["F_mean"] / e["represented"] for e in crowded])
            out.append("Not trustworthy where features are crowded: compressed-computation models with "
                       f"more than 4 represented features per neuron read F at a median {r:.2f} of the count "
                       "(the SAE recovers about as many directions as the activations let it decode, "
                       "growing with the width rather than with the count). Their signed inputs also give "
                       "each feature two ReLU half-directions, so where features are resolved F can reach "
                       "up to twice the count.")
    out += recovery_findings(table)
    dense = [e for e in table["models"] if e["family"] == "tms" and e["p"] >= 0.99]
    if dense:
        ratio = float(np.median([e["F_mean"] / e["represented"] for e in dense]))
        fvu = float(np.median([np.mean(e["fvu"]) for e in dense]))
        why = ("every row holds all the features, more than the autoencoder's k latents a row can "
               "carry, so the heaviest directions take the mass (a bias downward)" if ratio < 1 else
               "dense non-negative mixtures invite extra 'corner' latents that sit between "
               "features (a bias upward)")
        out.append("Dense inputs (p = 1) read " + ", ".join(
            f"{e['F_mean']:.1f}" for e in dense) + " for " + ", ".join(
            str(e["represented"]) for e in dense) + f" represented features (median F / count "
            f"{ratio:.2f}, FVU {fvu:.2f}): {why}.")
    return out


def recovery_findings(table: dict, share_ok: float = 0.9) -> list[str]:
    """Planted settings (sparse, with MCC) where F / F_true is within the median target but fewer
    than share_ok of the planted directions were recovered (matched at cosine >= RECOVERED_COS):
    the right count from other latents."""
    from superlens.measures.sae_agreement import is_sparse
    from superlens.measures.sae_calibration import TARGETS

    tol = TARGETS["planted_median_abs_error"]
    planted = [e for e in table["models"] if e["family"] == "planted" and is_sparse(e)
               and "recovered_mean" in e]
    if not planted:
        return []
    right = [e for e in planted if abs(e["F_mean"] / e["represented"] - 1) <= tol]
    wrong = [e for e in right if e["recovered_mean"] < share_ok]
    good = sorted({e["width"] for e in right if e["recovered_mean"] >= share_ok})
    text = (f"Are the latents the features? Of the {len(planted)} sparse planted settings, {len(right)} "
            f"read F within {tol:g} of F_true; in {len(right) - len(wrong)} of them at least "
            f"{100 * share_ok:.0f} % of the planted directions have their own latent within cosine "
            f"{RECOVERED_COS:g} (widths {', '.join(map(str, good)) or 'none'})")
    if wrong:
        text += ("; in " + ", ".join(
            f"width {e['width']} K = {e['k_features']} (F / F_true {e['F_mean'] / e['represented']:.2f}, "
            f"{100 * e['recovered_mean']:.0f} % recovered, MCC {e['mcc_mean']:.2f})"
            for e in sorted(wrong, key=lambda e: (e["width"], e["k_features"]))) +
            " the count comes out right while many planted directions have no latent of their own: "
            "F is an entropy of the code's mass and does not check what the latents are, so there "
            "it counts well without the latents being the features")
    return [text + "."]


def _verdict(c: dict) -> str:
    ok = c["rho_mean"] >= 0.9
    return ("meets the target (pooled ρ ≥ 0.9)" if ok else
            f"does NOT meet the target (pooled ρ ≥ 0.9): ρ = {c['rho_mean']:.3f}")


def report_markdown(table: dict, command: str) -> str:
    c = table["correlations"]
    lines = [f"# SAE measure validation ({table['grid_name']} grid)", "",
             f"Command: `{command}`", "",
             f"Verdict: the measure {_verdict(c['pooled'])} on this grid.", "",
             "| subset | models | Spearman ρ (mean ± std over AE seeds) | Pearson r |",
             "|---|---|---|---|"]
    for name, v in sorted(c.items(), key=lambda kv: ["pooled", "tms", "cc"].index(kv[0])):
        lines.append(f"| {name} | {v['n']} | {v['rho_mean']:.3f} ± {v['rho_std']:.3f} | "
                     f"{v['r_mean']:.3f} ± {v['r_std']:.3f} |")
    cr = table["correlations_raw"].get("pooled")
    if cr:
        lines += ["", f"Without pooling parallel latents (the paper's plain F): pooled ρ = "
                      f"{cr['rho_mean']:.3f} ± {cr['rho_std']:.3f}, r = {cr['r_mean']:.3f} ± "
                      f"{cr['r_std']:.3f}."]
    cf = table.get("correlations_frobenius", {}).get("pooled")
    if cf:
        lines += ["", f"Against ‖W‖²_F instead of the count: pooled ρ = {cf['rho_mean']:.3f} ± "
                      f"{cf['rho_std']:.3f}, r = {cf['r_mean']:.3f} ± {cf['r_std']:.3f}."]
    lines += ["", "Where it is and is not trustworthy:", ""] + [f"- {t}" for t in trust_findings(table)]
    lines += ["", "Recipe: `" + json.dumps(table["recipe"]) + "`", "",
              "| family | p | importance | width | L | seed | represented | ‖W‖²_F | F | F std | F_raw | "
              "F / D | FVU | L0 | dead |", "|" + "---|" * 15]
    for e in table["models"]:
        lines.append(
            f"| {e['family']} | {e['p']:g} | {e['importance']} | {e['width']} | "
            f"{'' if e['loss_power'] is None else format(e['loss_power'], 'g')} | {e['model_seed']} | "
            f"{e['represented']} | {e['frobenius_sq']:.2f} | {e['F_mean']:.2f} | {e['F_std']:.2f} | "
            f"{np.mean(e['F_raw']):.2f} | {e['F_over_dict']:.2f} | {np.mean(e['fvu']):.3f} | "
            f"{np.mean(e['l0']):.2f} | {np.mean(e['dead_fraction']):.2f} |")
    lines += ["", "Known answer: " + KNOWN_ANSWER.format(table["represented_norm"]) + ". Times: models "
                  f"{table['train_seconds']:.0f} s, SAEs {table['sae_seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def report_html(table: dict, fig: Path, command: str) -> str:
    from superlens.report.html import code_block, esc, page, para, section

    secs = validation_sections(table, fig)
    secs.append(section("How", para("Known answer: " + KNOWN_ANSWER.format(table["represented_norm"]) +
                                    ". The SAE is fitted on fresh activations of the hidden layer."),
                        para(f"Command: {command}"), code_block({"recipe": table["recipe"],
                                                                 "grid": table["grid"]})))
    return page(f"SAE measure validation — {esc(table['grid_name'])} grid", secs)


PLANTED_CAPTION = ("Planted features, one panel per layer width: F (mean ± std over AE seeds; filled: "
                   "sparse settings, open: dense) against the exact F_true = exp(H(q)) on log–log "
                   "axes; dashed: F = F_true, dotted: ±30 %.")


def plot_planted(table: dict, path: Path) -> str:
    """Per width, F against F_true on log-log axes with the y = x line (planted models only)."""
    from superlens.report.plotting import plt, save

    ms = [e for e in table["models"] if e["family"] == "planted"]
    widths = sorted({e["width"] for e in ms})
    fig, axes = plt.subplots(1, len(widths), figsize=(4.2 * len(widths), 4.2), squeeze=False)
    for ax, w in zip(axes[0], widths):
        sub = [e for e in ms if e["width"] == w]
        for e in sub:
            sparse = e["active"] <= min(8.0, w / 4)
            ax.errorbar(e["represented"], e["F_mean"], yerr=e["F_std"], fmt="o" if sparse else "o",
                        mfc=None if sparse else "none", color="C0" if e["directions"] == "random"
                        else "C3", ms=5, lw=0.8)
        lo = min(min(e["represented"] for e in sub), min(e["F_mean"] for e in sub)) / 1.5
        hi = max(max(e["represented"] for e in sub), max(e["F_mean"] for e in sub)) * 1.5
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.plot([lo, hi], [0.7 * lo, 0.7 * hi], "k:", lw=0.6)
        ax.plot([lo, hi], [1.3 * lo, 1.3 * hi], "k:", lw=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"width N = {w}")
        ax.set_xlabel("F_true = exp(H(q))")
    axes[0][0].set_ylabel("SAE feature count F")
    axes[0][0].plot([], [], "o", color="C0", label="random directions")
    axes[0][0].plot([], [], "o", color="C3", label="clustered directions")
    axes[0][0].legend(fontsize=8, loc="upper left")
    return save(fig, path)


def _fmt_target(k: str, v: float) -> str:
    return f"≤ {v:g}" if k in ("planted_median_abs_error", "planted_max_abs_error", "seed_spread") else f"≥ {v:g}"


def recipe_comparison(groups: list[list[dict]], cals: list[dict], frozen: bool) -> str:
    """One HTML section comparing the recipes a sweep fitted: per recipe (the fields that differ
    between them), its models and calibration_table's measured figures (cals, one per group)."""
    from superlens.report.html import para, section, table as html_table

    recipes = [g[0]["recipe"] for g in groups]
    keys = [k for k in recipes[0]
            if k != "architecture" and len({json.dumps(r.get(k)) for r in recipes}) > 1]

    def fmt(m: dict, k: str) -> str:
        return (f"{m[k]:.3f}" + (f" ± {m[k + '_std']:.3f}" if k + "_std" in m else "")) if k in m else "–"

    rows = []
    for g, r, cal in zip(groups, recipes, cals):
        m = cal["measured"]
        widths = " · ".join(f"{w}: {v['median_abs_error']:.3f}"
                            for w, v in sorted(cal["widths"].items(), key=lambda kv: int(kv[0])))
        rows.append([*(r.get(k) for k in keys), len(g), fmt(m, "tms_r_entropy"), fmt(m, "tms_rho_count"),
                     widths or "–", fmt(m, "planted_max_abs_error"),
                     f"{100 * m['seed_spread']:.1f} %" if "seed_spread" in m else "–"])
    first = "the frozen recipe's (SAERecipe's defaults)" if frozen else "the first row's recipe's"
    return section(
        "Recipes compared",
        para(f"This sweep fitted {len(groups)} SAE recipes, which differ in: {', '.join(keys)}. Each "
             "row's figures are computed on its own points only (TMS: r against the weight entropy, ρ "
             "against the represented count; planted: median |F / F_true − 1| per width, largest, "
             "and the largest spread over AE seeds, sparse settings only). The sections and figures "
             f"below, and this run's `sae_calibration.json`, are {first}; `table.json` holds every row."),
        html_table([*keys, "models", "TMS r (entropy)", "TMS ρ (count)", "planted median error per width",
                    "largest", "seed spread"], rows))


RECOVERY_WORDS = (
    "MCC / recovered: are the latents the planted features, not only as many of them? Each planted "
    "direction is matched to at most one live latent, one-to-one, maximising the summed cosine "
    "between directions and decoder rows (the Hungarian algorithm; the mean correlation coefficient "
    "of SAELens' synthetic-data evaluation, O'Neill et al. 2024, arXiv 2411.13117; the cosine signed "
    "and clamped at 0, since a latent's code is ≥ 0). MCC is the mean matched cosine over the K "
    "directions (0 for one left without a latent), recovered the share matched at cosine ≥ "
    f"{RECOVERED_COS:g}; both the mean over AE seeds, medians over a width's sparse settings. "
    "F / F_true near 1 with few directions recovered would be the right count for the wrong reason. "
    "Descriptive: no target.")


def _fmt_recovery(mcc, rec) -> str:
    return "–" if mcc is None or rec is None else f"{mcc:.3f} / {rec:.2f}"


def calibration_sections(cal: dict, table: dict) -> list[str]:
    """The calibration against planted features and the targets, as HTML sections."""
    from superlens.measures.sae_calibration import TARGET_WORDS
    from superlens.report.html import para, section, table as html_table

    m = cal["measured"]
    rows = [(k, _fmt_target(k, v), f"{m[k]:.3f}" + (f" ± {m[k + '_std']:.3f}" if k + "_std" in m else "")
             if k in m else "not measured", "met" if cal["met"][k] else "NOT met")
            for k, v in cal["targets"].items()]
    widths = [(w, v["settings"], f"{v['median_ratio']:.3f}", f"{v['median_abs_error']:.3f}",
               f"{v['max_abs_error']:.3f}", f"{100 * v['seed_spread']:.1f} %",
               _fmt_recovery(v.get("median_mcc"), v.get("median_recovered")),
               "yes" if v["ok"] and cal["targets_met"] else "no")
              for w, v in sorted(cal["widths"].items(), key=lambda kv: int(kv[0]))]
    planted = [e for e in table["models"] if e["family"] == "planted"]
    per = [(e["width"], e["k_features"], e["active"], e["importance"], e["magnitude"], e["directions"],
            "sparse" if e["active"] <= min(8.0, e["width"] / 4) else "dense",
            f"{e['represented']:.1f}", f"{e['F_mean']:.1f} ± {e['F_std']:.1f}",
            f"{e['F_mean'] / e['represented']:.3f}",
            f"{float(np.mean(e['F_raw'])) / e['represented']:.3f}",
            f"{float(np.mean(e['fvu'])):.3f}", f"{float(np.mean(e['dead_fraction'])):.2f}",
            f"{e.get('k_used', math.nan):g}", f"{e.get('rows_per_feature', math.nan):.0f}",
            _fmt_recovery(e.get("mcc_mean"), e.get("recovered_mean")))
           for e in sorted(planted, key=lambda e: (e["width"], e["k_features"], e["active"]))]
    verdict = ("meets every target: its rows decide verdicts" if cal["targets_met"] else
               "misses " + ", ".join(TARGET_WORDS.get(k, k) for k, ok in cal["met"].items() if not ok) +
               ": its rows are shown but decide no verdict")
    return [
        section("Calibration: does F count planted features at the widths it is used on?",
                para(f"Against the exact answer F_true = exp(H(q)), q_k ∝ E[a_k], the SAE measure {verdict}. "
                     "Targets are on the sparse planted settings (≤ 8 and ≤ N / 4 features active per "
                     "row), mean over AE seeds; ρ is Spearman's over all sparse settings of all widths, "
                     "one value per AE seed, mean ± std over seeds. Spread: std over AE seeds / F, the "
                     "largest setting."),
                para(RECIPE_HISTORY),
                html_table(["target", "required", "measured", ""], rows),
                html_table(["width", "sparse settings", "median F / F_true", "median |F / F_true − 1|",
                            "largest |F / F_true − 1|", "largest seed spread",
                            "median MCC / recovered", "trusted"], widths),
                para(RECOVERY_WORDS)),
        section("Every planted setting",
                html_table(["N", "K", "active / row", "frequencies", "magnitudes", "directions", "regime",
                            "F_true", "F", "F / F_true", "F raw / F_true (no pooling)", "FVU", "dead",
                            "k used", "rows per feature", "MCC / recovered"], per)),
    ]


def validation_sections(table: dict, fig: Path | None, every_model: bool = True,
                        calibration: dict | None = None) -> list[str]:
    """The findings of a validation table as HTML sections: the planted calibration (when given),
    then for the toy families the verdict and correlations, the figure when given, where F is
    trustworthy, and every model unless every_model is False (a sweep's page has its own table)."""
    from superlens.report.html import esc, figure, para, section, table as html_table

    secs = calibration_sections(calibration, table) if calibration else []
    c = table["correlations"]
    if "pooled" not in c and "tms" not in c:
        return secs
    fams = ["pooled", "tms", "cc", "planted"]
    order = lambda kv: fams.index(kv[0])  # noqa: E731
    rows = [(k, v["n"], f"{v['rho_mean']:.3f} ± {v['rho_std']:.3f}", f"{v['r_mean']:.3f} ± {v['r_std']:.3f}")
            for k, v in sorted(c.items(), key=order) if k != "planted"]
    cr = table["correlations_raw"]
    rows_raw = [(k, v["n"], f"{v['rho_mean']:.3f} ± {v['rho_std']:.3f}",
                 f"{v['r_mean']:.3f} ± {v['r_std']:.3f}") for k, v in sorted(cr.items(), key=order)]
    ent = [(k + (" (no pooling)" if raw else ""), v["n"], f"{v['rho_mean']:.3f} ± {v['rho_std']:.3f}",
            f"{v['r_mean']:.3f} ± {v['r_std']:.3f}")
           for raw, key in ((False, "correlations_entropy"), (True, "correlations_entropy_raw"))
           for k, v in table.get(key, {}).items()]
    toys = [e for e in table["models"] if e["family"] != "planted"]
    models = [(e["family"], e["p"], e["importance"], e["width"],
               "" if e["loss_power"] is None else e["loss_power"], e["model_seed"], e["represented"],
               round(e["frobenius_sq"], 2), f"{e['F_mean']:.2f} ± {e['F_std']:.2f}",
               round(float(np.mean(e["F_raw"])), 2), round(e["F_over_dict"], 3),
               round(float(np.mean(e["fvu"])), 3), round(float(np.mean(e["l0"])), 2),
               round(float(np.mean(e["dead_fraction"])), 2), f"{e.get('k_used', math.nan):g}")
              for e in toys]
    head = c.get("pooled") or c["tms"]
    secs += [
        section("Toy models: does F count the represented features?", para(
            (f"On the {table['grid_name']} grid" if table["grid_name"] != "sweep" else "On this grid")
            + f" the SAE measure {_verdict(head)}. "
            "Correlations are between F and the known number of represented features "
            f"({KNOWN_ANSWER.format(table['represented_norm'])}), one value per AE seed, shown as "
            "mean ± std over AE seeds."),
            html_table(["subset", "models", "Spearman ρ", "Pearson r"], rows)),
        section("Classic toy model against its weight entropy (the reference of Bereska et al. 2025)",
                para("Reference: exp(H(p)), p_i = ‖W_i‖ / Σ_j ‖W_j‖ over the toy's feature columns."),
                html_table(["subset", "models", "Spearman ρ", "Pearson r"], ent)) if ent else "",
        figure(fig, "Left: F against the represented count (dashed: F = count); colour: feature "
                    "probability p. Right: F over the dictionary size, so the cap (1) is visible.")
        if fig is not None else "",
        section("Where it is and is not trustworthy",
                "<ul>" + "".join(f"<li>{esc(t)}</li>" for t in trust_findings(table)) + "</ul>"),
        section("Without pooling parallel latents (the paper's plain F)",
                html_table(["subset", "models", "Spearman ρ", "Pearson r"], rows_raw)),
        section("Against ‖W‖²_F instead of the represented count",
                html_table(["subset", "models", "Spearman ρ", "Pearson r"], [
                    (k, v["n"], f"{v['rho_mean']:.3f} ± {v['rho_std']:.3f}",
                     f"{v['r_mean']:.3f} ± {v['r_std']:.3f}")
                    for k, v in sorted(table.get("correlations_frobenius", {}).items(), key=order)])),
        section("Every toy model", html_table(
            ["family", "p", "importance", "width", "L", "seed", "represented", "‖W‖²_F", "F",
             "F raw", "F / D", "FVU", "L0", "dead", "k used"], models)) if every_model else "",
    ]
    return [s for s in secs if s]
