"""The compressed-computation report's claims, judged against a toy run's metrics.

The source is the public repository Manan-Wadhwa/superposition_analysis (its report of a 100 -> 10
ReLU MLP trained with L4 loss at p = 0.02). Each claim becomes one row
{claim, source_value, measured, verdict, why} (metrics.json's "verdicts" and the top of report.html).

Verdict words and their rules (every rule is a pure function below, pinned by tests):
- reproduced:     the measured value of the claim's own quantity is within the tolerance of the
                  claimed value (within_tolerance), or a qualitative claim holds as stated.
- not reproduced: outside the tolerance, but on the claim's side of its qualitative line (e.g. a
                  ratio claimed > 1 measures > 1, just not as large).
- contradicted:   the measurement falls on the other side of that line (e.g. "attenuation wins
                  under L2" while the naive model has the lower L2 loss).
- answered:       an open question of the report, with the answer this run measures.
- not comparable: the run's setting is not the report's (100 -> 10, p = 0.02, L4), so its claims do
                  not apply; the measured value is still shown.
- open here:      an open question this kind of run does not answer (a sweep does).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from superlens.toy import theory
from superlens.toy.phases import PHASES

# (n_features, n_hidden, p, loss_power) of the report's numbers
SOURCE_SETTING = (100, 10, 0.02, 4.0)
# a measured value reproduces a claimed one within REL_TOL of it plus half a unit of the claim's last
# quoted digit (0.43 -> ± 0.005): seeds differ by a few per cent, and the source is one model
REL_TOL = 0.05

RULE = (f"Rules: a number is reproduced when the measured value is within {REL_TOL:.0%} of the "
        "claimed one plus half a unit of its last quoted digit (0.43 → ± 0.0265); not reproduced when "
        "outside that but on the claim's side (a ratio claimed above 1 still above 1); contradicted "
        "when on the other side; answered for the report's open questions. Numbers are means over "
        "the seeds of this run; the report's are one model at 100 features → 10 neurons, p = 0.02, L4.")


def tolerance(claimed: float, decimals: int) -> float:
    """The absolute tolerance around a claimed value quoted with `decimals` decimal places:
    REL_TOL * |claimed| + 0.5 * 10**-decimals."""
    return REL_TOL * abs(claimed) + 0.5 * 10.0 ** (-decimals)


def within_tolerance(measured: float | None, claimed: float, decimals: int) -> bool:
    """|measured - claimed| <= tolerance(claimed, decimals); False for a missing or NaN value."""
    if measured is None or not math.isfinite(measured):
        return False
    return abs(measured - claimed) <= tolerance(claimed, decimals) + 1e-12


def number_verdict(measured: float | None, claimed: float, decimals: int,
                   line: float | None = None) -> str:
    """Verdict on a numeric claim: 'reproduced' within tolerance; otherwise, when the claim draws a
    qualitative line (e.g. ratio > 1 for "better than naive"), 'not reproduced' if the measured
    value is on the claim's side of it and 'contradicted' if not; without a line 'not reproduced'.
    A missing value is 'not measured'."""
    if measured is None or not math.isfinite(measured):
        return "not measured"
    if within_tolerance(measured, claimed, decimals):
        return "reproduced"
    if line is not None and (measured - line) * (claimed - line) <= 0:
        return "contradicted"
    return "not reproduced"


def rises_with_p(ps: list[float], means: list[float], stds: list[float] | None = None) -> bool:
    """True when the mean error never falls from one p to the next larger one by more than the two
    points' stds over seeds together (noise), i.e. it rises monotonically within noise."""
    order = np.argsort(ps)
    m = np.asarray(means, dtype=float)[order]
    s = np.zeros_like(m) if stds is None else np.nan_to_num(np.asarray(stds, dtype=float)[order])
    return bool(np.all(np.diff(m) >= -(s[1:] + s[:-1]) - 1e-12)) and m.size >= 2


def is_source_setting(m: dict) -> bool:
    """Whether the run's setting is the report's (SOURCE_SETTING)."""
    try:
        key = (int(m["n_features"]), int(m["n_hidden"]), float(m["p"]), float(m["loss_power"]))
    except (KeyError, TypeError, ValueError):
        return False
    return key[:2] == SOURCE_SETTING[:2] and math.isclose(key[2], SOURCE_SETTING[2]) and \
        key[3] == SOURCE_SETTING[3]


def _num(m: dict, k: str) -> float | None:
    v = m.get(k)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _f(x: float | None, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:.{digits}g}"


def _row(claim: str, source: str, measured: str, verdict: str, why: str) -> dict[str, str]:
    return {"claim": claim, "source_value": source, "measured": measured, "verdict": verdict,
            "why": why}


def toy_verdicts(m: dict[str, Any]) -> list[dict[str, str]]:
    """One row per claim of the report: m is a toy run's metrics (metrics.json). Rows are
    {claim, source_value, measured, verdict, why}; numeric claims outside the report's setting are
    'not comparable' (measured values still shown)."""
    same = is_source_setting(m)
    n, h = int(m.get("n_features", 0) or 0), int(m.get("n_hidden", 0) or 0)
    q = float(m.get("loss_power", 0) or 0)

    def judge(measured, claimed, decimals, line=None):
        return number_verdict(measured, claimed, decimals, line) if same else "not comparable"

    rows = []
    g, wd = _num(m, "gain_mean"), _num(m, "weff_diag_mean")
    gstar = _num(m, "optimal_gain")
    rows.append(_row(
        "Per-feature gain on positive inputs ≈ 0.43", "0.43 ± 0.01", _f(g, 4),
        judge(g, 0.43, 2),
        "Measured as the response slope (output i against input i > 0, the feature alone). "
        + (f"The 0.43 is W_eff's diagonal ({_f(wd, 4)} here) and the one-feature optimum γ* "
           f"({_f(gstar, 4)}); " if same else
           f"Here W_eff's diagonal is {_f(wd, 4)} and the one-feature optimum γ* {_f(gstar, 4)}; ")
        + f"diag(W_eff) exceeds the slope by the size of the response at x = −1 "
        f"({_f(_num(m, 'value_at_minus1_mean'))}), because it also counts neurons a positive input "
        f"switches off."))
    rows.append(_row(
        "W_eff diagonal (linear self-gain) ≈ 0.43", "0.43 ± 0.01", _f(wd, 4), judge(wd, 0.43, 2),
        "diag(W_out W_in), mean over features: the linear map before the hidden ReLU."))
    mse, naive = _num(m, "mse_active_mean"), _num(m, "naive_mse_active_mean")
    rows.append(_row(
        "Trained per-feature MSE 0.0745", "0.0745", _f(mse), judge(mse, 0.0745, 4),
        f"Per-feature MSE over the samples where that feature is active, mean over features; the "
        f"naive model scores {_f(naive)} on the same samples (report: 0.1496)."))
    phase = m.get("phase")
    rows.append(_row(
        "Uniform strategy: every feature attenuated alike, none ignored", "MSE std 0.0029 over features",
        f"{phase or '—'}; MSE {_f(_num(m, 'mse_active_min'))}–{_f(_num(m, 'mse_active_max'))}",
        ("reproduced" if phase == "attenuate-all" else "not reproduced") if same and phase
        else ("not comparable" if not same else "not measured"),
        f"The phase rule (superlens.toy.phases) names this model '{phase}': "
        f"{PHASES.get(phase, 'no phase recorded')}."))
    ratio = _num(m, "mse_improvement_over_naive")
    l2r = _num(m, "l2_naive_over_learned")
    rows.append(_row(
        "~2.0× lower per-feature MSE than the naive model", "2.0×", _f(ratio) + "×",
        judge(ratio, 2.0, 1, line=1.0),
        f"naive / trained active-conditioned MSE. Over all outputs (active or not, the L2 loss the "
        f"training distribution scores) the ratio is {_f(l2r)}×: the trained model's interference "
        f"on inactive outputs, which the per-feature MSE does not count, costs more than it saves."))
    rows += _loss_ratio_rows(m, same, n, h, q)
    rows += _share_rows(m, same)
    cos, cos_r = _num(m, "abs_cos_mean"), _num(m, "abs_cos_random_theory")
    rows.append(_row(
        "Mean pairwise |cos| of W_in's columns ≈ 0.26", "0.26", _f(cos), judge(cos, 0.26, 2),
        f"Random directions in R^{h} give {_f(cos_r)}: the number alone says the directions are as "
        f"spread as random ones, not that they form a structure (see open question 2)."))
    res = _num(m, "value_at_minus1_mean")
    rows.append(_row(
        "Negative inputs give a small residual ≈ −0.04", "≈ −0.04", _f(res), judge(res, -0.04, 2),
        f"Self-response at x = −1 (the mean over −1 < x < 0 is "
        f"{_f(_num(m, 'negative_residual_mean'))}, half of it for a bias-free model)."))
    sweep = m.get("sparsity_sweep") or []
    if sweep:
        ps = [d["p"] for d in sweep]
        means = [d["mse_active_mean"] for d in sweep]
        stds = [d.get("mse_active_std") for d in sweep]
        ok = rises_with_p(ps, means, [s if s is not None else 0.0 for s in stds])
        rows.append(_row(
            "MSE rises monotonically with p", "monotone", f"{_f(means[int(np.argmin(ps))])} at p = "
            f"{_f(min(ps))} → {_f(means[int(np.argmax(ps))])} at p = {_f(max(ps))}",
            ("reproduced" if ok else "contradicted") if same else "not comparable",
            f"The trained model evaluated at {len(ps)} values of p: the mean per-feature MSE "
            + ("never falls by more than the seeds' spread from one p to the next"
               if ok else "falls somewhere by more than the seeds' spread")
            + ("." if same else "; the report's claim is about its own model (100 → 10, trained at "
               "p = 0.02 with L4), not this one.")))
    rows += _open_questions(m, n, h, q, same)
    return rows


def _loss_ratio_rows(m: dict, same: bool, n: int, h: int, q: float) -> list[dict]:
    """L4 ~8.5× and L2 ~2.7×: the claim's own quantity, and which candidate gives the number."""
    wd, g = _num(m, "weff_diag_mean"), _num(m, "gain_mean")
    r4, r2 = _num(m, "l4_naive_over_learned"), _num(m, "l2_naive_over_learned")
    r2_l2 = _num(m, "l2_trained_l2_naive_over_learned")
    rows = []
    if n and h:
        th4 = {k: theory.pure_gain_lq_ratio(n, h, v, 4.0) for k, v in (("wd", wd), ("g", g))
               if v is not None}
        th4_src = theory.pure_gain_lq_ratio(n, h, 0.43, 4.0)
        rows.append(_row(
            "Ignoring 90 features is ~8.5× worse under L4 than attenuating all 100", "8.5×",
            _f(r4) + "×",
            number_verdict(r4, 8.5, 1, line=1.0) if same else "not comparable",
            f"Measured: naive / trained L4 loss on the training distribution. Candidates computed: "
            f"the pure-gain ratio (n − h)/n / (1 − g)^4 (every feature attenuated by g, no "
            f"interference) gives {_f(th4_src)}× at the report's g = 0.43, {_f(th4.get('wd'))}× at "
            f"this run's diag(W_eff), {_f(th4.get('g'))}× at its response slope; only this "
            f"interference-free formula at g ≈ 0.43 gives 8.5×. (The report's own 'L4 losses' "
            f"0.1494 / 0.0743 are its MSEs, ratio 2.0.)"))
        th2_src = theory.pure_gain_lq_ratio(n, h, 0.43, 2.0)
        tail = (f" The same seeds trained with L2 score {r2_l2:.2f}× under L2: the L2 optimum found is "
                f"no better than the naive model." if r2_l2 is not None else "")
        rows.append(_row(
            "Even under L2 the attenuation strategy wins, ~2.7×", "~2.7×", _f(r2) + "×",
            number_verdict(r2, 2.7, 1, line=1.0) if same else "not comparable",
            f"Measured: naive / trained L2 loss (MSE over all outputs) on the training distribution; "
            f"below 1 means the naive model has the lower L2 loss. The 2.7× is the pure-gain ratio "
            f"(n − h)/n / (1 − g)^2 = {_f(th2_src)}× at g = 0.43, which leaves out interference."
            + tail))
    return rows


def _share_rows(m: dict, same: bool) -> list[dict]:
    a, bw, bg = (_num(m, k) for k in ("attenuation_share_measured", "attenuation_share_pure_gain_weff",
                                     "attenuation_share_pure_gain"))
    pct = (lambda x: "—" if x is None else f"{100 * x:.0f} %")
    return [
        _row("Attenuation is 86 % of the MSE (isolated / total)", "86 %", pct(a),
             number_verdict(None if a is None else 100 * a, 86, 0) if same else "not comparable",
             "Measured isolated MSE (each feature alone, x ~ U(−1, 1)) over the trained active MSE; "
             "the rest is interference from co-active features."),
        _row("Attenuation is 73 % of the MSE (pure-gain theory)", "73 %", pct(bw),
             number_verdict(None if bw is None else 100 * bw, 73, 0) if same else "not comparable",
             f"(1 − g)^2 / 6 over the trained MSE at g = diag(W_eff), as the report computes it; at g = "
             f"the response slope the same formula gives {pct(bg)}, against {pct(a)} measured "
             f"(isolated / total, the row above). The two pure-gain shares differ by the g put in, "
             f"not by what was measured."),
    ]


def optimal_gain_row(m: dict, same: bool) -> dict[str, str] | None:
    """Open question 1 (why g ≈ 0.43, and is it the optimum), answered from this run's numbers:
    the one-feature optimum (closed form and line search) and the training distribution's best
    output scale, each set against the learned slope. The report's 0.43 is named only where this
    run's one-feature optimum reproduces it (its setting, within tolerance)."""
    g, wd, gstar = _num(m, "gain_mean"), _num(m, "weff_diag_mean"), _num(m, "optimal_gain")
    ls, ls1 = _num(m, "optimal_gain_line_search"), _num(m, "optimal_gain_line_search_single")
    if None in (g, gstar, ls):
        return None
    close = 0.01  # within this two gains are called equal (about the line search's resolution)
    text = (f"One feature alone, the loss (1 − γ)^q + K γ^q is least at γ* = 1/(1 + K^(1/(q−1))) = "
            f"{_f(gstar)}")
    if ls1 is not None:
        text += (f" (a line search on that loss: {_f(ls1)}"
                 + (")" if abs(ls1 - gstar) <= close else
                    "; the closed form uses the mean K, so it assumes equal self-gains)"))
    if same and within_tolerance(gstar, 0.43, 2):
        text += ": that is the report's 0.43" + (f" (W_eff's diagonal, {_f(wd)} here)"
                                                if wd is not None else "") + "."
    else:
        text += "."
    text += (f" On the training distribution the best output scale is {_f(ls)} against the learned "
             f"slope {_f(g)}" + (": the model sits at the optimum of its own scale." if abs(ls - g)
                                  <= close else f": {_f(ls - g)} from it."))
    claim = ("Open question 1: why g ≈ 0.43? Is it the optimum?" if same else
             f"Open question 1: why the learned gain ({_f(g)} here; the report's 0.43)? Is it the "
             "optimum?")
    return _row(claim, "open", f"γ* = {_f(gstar)}; best scale {_f(ls)}", "answered", text)


def _open_questions(m: dict, n: int, h: int, q: float, same: bool) -> list[dict]:
    g = _num(m, "gain_mean")
    rows = [r for r in [optimal_gain_row(m, same)] if r is not None]
    keys = ("geometry_max_abs_cos", "geometry_max_abs_cos_random", "geometry_max_abs_cos_equiangular",
            "geometry_spectrum_cv", "geometry_spectrum_cv_random", "geometry_spectrum_cv_equiangular")
    vals = [_num(m, k) for k in keys]
    if None not in vals:
        c, cr, ce, v, vr, ve = vals
        near = ["random" if abs(x - r) <= abs(x - e) else "equiangular"
                for x, r, e in ((c, cr, ce), (v, vr, ve))]
        word = ("like random directions, no polytope" if near == ["random", "random"] else
                "like a near-equiangular frame" if near == ["equiangular", "equiangular"] else
                "between random directions and a near-equiangular frame")
        rows.append(_row(
            "Open question 2: do the directions form a structured polytope?", "open",
            f"max |cos| {_f(c)}, spectrum cv {_f(v)}", "answered",
            f"Spread {word}: max |cos| {_f(c)} (random {_f(cr)}, near-equiangular {_f(ce)}); "
            f"Gram-spectrum spread {_f(v)} (random {_f(vr)}, near-equiangular {_f(ve)})."))
    rows.append(_row(
        "Open question 3: at what neurons / features ratio does the strategy change?", "open", "—",
        "open here",
        "One run has one width; the sweeps `examples/width_sparsity.toml` and "
        "`examples/l2_vs_l4.toml` map the phase boundary (`superlens sweep`)."))
    ign, kept, l2p = (_num(m, "l2_trained_ignored_features"), _num(m, "l2_trained_kept_gain_mean"),
                      m.get("l2_trained_phase"))
    if ign is not None and kept is not None and g is not None and q != 2.0:
        higher = kept > g
        rows.append(_row(
            "Open question 4: under L2, the same trick at a higher gain?", "open (predicts higher gain)",
            f"{_f(ign)} of {n} ignored; kept gain {_f(kept)}", "answered",
            f"No: the same seeds trained with L2 ignore {_f(ign)} features and keep the rest at gain "
            f"{_f(kept)} (L{q:g}: {_f(g)}), phase '{l2p or '—'}'; the predicted higher gain is "
            + ("seen." if higher else "not seen: the kept gain is lower.")))
    elif q == 2.0:
        rows.append(_row(
            "Open question 4: under L2, the same trick at a higher gain?", "open (predicts higher gain)",
            "—", "open here",
            "This run trains with L2 itself, so it has no L4 model to set its gain against; "
            "`superlens sweep examples/l2_vs_l4.toml` trains both."))
    inc = _num(m, "residual_ablation_interference_increase")
    dec = _num(m, "residual_ablation_isolated_decrease")
    if inc is not None and dec is not None:
        yes = inc > 0
        rows.append(_row(
            "Open question 5: is the negative residual a strategy to reduce interference?", "open",
            f"removing it: interference {'+' if inc >= 0 else '−'}{_f(abs(inc))}",
            "answered",
            ("Yes: " if yes else "No: ") + f"removing the residual (output i's response to its own "
            f"negative input) {'raises' if yes else 'lowers'} the interference part of the MSE by "
            f"{_f(abs(inc))} and {'lowers' if dec > 0 else 'raises'} the isolated MSE by {_f(abs(dec))}"
            + (": it does not reduce interference." if not yes else ".")))
    return rows
