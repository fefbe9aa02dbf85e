"""report.html of a sweep: the table of every point, phase diagrams and study-specific figures."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from superlens.measures.numeric import mean_std
from superlens.measures.planted import RECOVERED_COS
from superlens.report.html import (definitions, details, esc, figure, fmt, page, para, pm,
                                   rich, run_info, section, table, verdict_badge)
from superlens.report.plotting import plt, save
from superlens.report.tms_figures import cell_edges, plot_phase_diagram
from superlens.toy.phases import (CV_UNIFORM, ERROR_SPLIT, FRAC_IGNORED, GAIN_DEDICATED, GAIN_FULL,
                                  GAIN_IGNORED, NORM_REPRESENTED, PHASES, THEORY_PHASES, majority)

# per-point geometry-class counts (rows of the TMS study), with their headings
GEOMETRY_COLS = [("n_dedicated", "1 dedicated"), ("n_tetrahedron", "3/4 tetrahedron"),
                 ("n_triangle", "2/3 triangle"), ("n_antipodal", "1/2 antipodal"),
                 ("n_pentagon", "2/5 pentagon"), ("n_square_antiprism", "3/8 square antiprism"),
                 ("n_not_represented", "not represented"), ("n_other", "other")]
P_LABEL = "p (probability a feature is active)"
GAIN_THEORY_TOL = 0.15  # a cell "matches theory" when |learned mean gain − γ*| <= 15 % of γ*


def class_boundary(xs: list[float], ys: list[float], grid: np.ndarray, logx: bool,
                   logy: bool) -> list[tuple[list[float], list[float]]]:
    """The phase boundary as cell-edge segments between neighbouring cells of different class.
    grid [ny, nx] of class names ('' = no point). Returns [(xs, ys)] two-point segments."""
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    ex, ey = cell_edges(x, logx and bool((x > 0).all())), cell_edges(y, logy and bool((y > 0).all()))
    segs = []
    ny, nx = grid.shape
    for i in range(ny):
        for j in range(nx):
            if j + 1 < nx and grid[i, j] and grid[i, j + 1] and grid[i, j] != grid[i, j + 1]:
                segs.append(([ex[j + 1], ex[j + 1]], [ey[i], ey[i + 1]]))
            if i + 1 < ny and grid[i, j] and grid[i + 1, j] and grid[i, j] != grid[i + 1, j]:
                segs.append(([ex[j], ex[j + 1]], [ey[i + 1], ey[i + 1]]))
    return segs


def phase_figures(rows: list[dict], x: str, y: str, split: str | None, fig_dir: Path, stem: str,
                   xlabel: str, ylabel: str, logx: bool, logy: bool,
                   pick: str = "majority", theory: bool = False) -> list[tuple[str, str]]:
    """pick: how several seeds in one cell decide its class: 'majority', or 'min_loss' (the seed
    that trained best: a training run can stall in a local minimum, e.g. the 2 -> 1 TMS model
    dropping feature 2 in ~1 of 4 sparse seeds)."""
    figs = []
    by = defaultdict(list)
    for r in rows:
        by[r.get(split) if split else None].append(r)
    for key, rs in sorted(by.items(), key=lambda kv: (kv[0] is None, kv[0])):
        xs = sorted({r[x] for r in rs})
        ys = sorted({r[y] for r in rs})
        grid = np.full((len(ys), len(xs)), "", dtype=object)
        cells: dict[tuple[int, int], list[dict]] = defaultdict(list)
        for r in rs:
            cells[(ys.index(r[y]), xs.index(r[x]))].append(r)
        for (i, j), v in cells.items():
            if pick == "min_loss":
                grid[i, j] = min(v, key=lambda r: r["loss"])["phase"]
            else:
                grid[i, j] = majority(r["phase"] for r in v)
        name = f"{stem}{'' if key is None else f'_{split}{key:g}'}.png"
        title = f"phase diagram{'' if key is None else f' ({split} = {key:g})'}"
        notes, marks = (theory_overlay(cells, xs, ys, grid) if theory else ([], []))
        plot_phase_diagram(xs, ys, grid, xlabel=xlabel, ylabel=ylabel, title=title,
                           path=fig_dir / name, logx=logx, logy=logy,
                           boundary=class_boundary(xs, ys, grid, logx, logy) or None,
                           annotations=notes, marks=marks,
                           mark_label=f"learned gain within {GAIN_THEORY_TOL:.0%} of γ*")
        how = "the best-trained seed" if pick == "min_loss" else "the majority of seeds"
        cap = (f"Learned strategy per grid point ({title}; {how} decides a cell); colours are "
               "classes, dashed lines mark where the class changes (the phase boundary).")
        if theory:
            cap += (" Where the theory applies (cells that attenuate: attenuate-all or mixed, no "
                    "feature ignored) each cell is annotated with the optimal-gain theory's "
                    f"γ* = 1/(1+K^(1/(q−1))); a black dot marks a cell whose learned mean gain is "
                    f"within {GAIN_THEORY_TOL:.0%} of γ* "
                    f"({len(marks)} of {len(notes)} annotated cells).")
        figs.append((name, cap))
    return figs


def theory_applies(r: dict) -> bool:
    """The optimal-gain theory applies to a CC point that attenuates every feature (none ignored)."""
    return (r["phase"] in THEORY_PHASES and not r.get("frac_ignored")
            and bool(r.get("optimal_gain")) and np.isfinite(r["optimal_gain"]))


def theory_overlay(cells: dict, xs: list, ys: list, grid: np.ndarray) -> tuple[list, list]:
    """Annotations (x, y, 'γ* value') for cells where the optimal-gain theory applies, and marks
    (x, y) where the learned mean gain is within GAIN_THEORY_TOL of it (cell means over seeds)."""
    notes, marks = [], []
    for (i, j), rs in sorted(cells.items()):
        rs = [r for r in rs if theory_applies(r)]
        if not rs or grid[i, j] not in THEORY_PHASES:
            continue
        g_star = float(np.mean([r["optimal_gain"] for r in rs]))
        learned = float(np.mean([r["gain_mean"] for r in rs]))
        notes.append((xs[j], ys[i], f"γ*={g_star:.2f}"))
        if abs(learned - g_star) <= GAIN_THEORY_TOL * g_star:
            marks.append((xs[j], ys[i]))
    return notes, marks


def toy_sweep_figures(rows: list[dict], fig_dir: Path) -> list[tuple[str, str]]:
    """Phase diagrams (with the optimal-gain theory), theory vs learned gain, error vs sparsity."""
    figs = phase_figures(rows, "ratio", "p", "loss_power" if len({r["loss_power"] for r in rows}) > 1
                          else None, fig_dir, "toy_phase",
                          "n_hidden / n_features (neurons per feature)", P_LABEL,
                          logx=True, logy=True, theory=True)
    att = [r for r in rows if theory_applies(r)]
    if att:
        fig, ax = plt.subplots(figsize=(5.5, 5))
        for q in sorted({r["loss_power"] for r in att}):
            rs = [r for r in att if r["loss_power"] == q]
            ax.scatter([r["optimal_gain"] for r in rs], [r["gain_mean"] for r in rs], label=f"L{q:g}")
        ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="learned = theory")
        ax.set(xlabel="theory γ* = 1/(1+K^(1/(q−1)))", ylabel="learned mean gain",
               title="optimal-gain theory vs learned gain")
        ax.legend()
        figs.append((save(fig, fig_dir / "toy_gain_theory.png"),
                     "Learned mean gain against the optimal-gain theory of the toy study, for points "
                     "that attenuate (theory applies where no feature is ignored)."))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (q, h), rs in sorted(_group(rows, ("loss_power", "n_hidden")).items()):
        rs = sorted(rs, key=lambda r: r["p"])
        ax.plot([r["p"] for r in rs], [r["mse_active_mean"] for r in rs], marker="o",
                label=f"h={h}, L{q:g}")
    ax.set(xscale="log", xlabel=P_LABEL, ylabel="mean active-conditioned per-feature MSE",
           title="error vs sparsity per width")
    ax.legend(fontsize=7, ncol=2)
    figs.append((save(fig, fig_dir / "toy_mse_vs_p.png"),
                 "Per-feature MSE against p for every width (h = n_hidden; Lq: trained with loss "
                 "exponent q)."))
    return figs


def _group(rows, keys):
    out = defaultdict(list)
    for r in rows:
        out[tuple(r[k] for k in keys)].append(r)
    return out


def tms_sweep_figures(rows: list[dict], fig_dir: Path) -> list[tuple[str, str]]:
    """Phase diagram, 2-D polygons, Gram matrices and feature dimensionality of a TMS sweep."""
    figs = []
    if len({r["p"] for r in rows}) > 1 and len({r["importance_decay"] for r in rows}) > 1:
        figs += phase_figures(rows, "p", "importance_decay", None, fig_dir, "tms_phase",
                               "feature probability p = 1 − S", "relative importance of feature 2",
                               logx=True, logy=True, pick="min_loss")
    from superlens.report.tms_figures import plot_feature_dimensionality, plot_gram_and_norms, plot_polygons

    two_d = [r for r in rows if r["n_hidden"] == 2][:16]
    if two_d:
        name = plot_polygons(np.asarray([r["W"] for r in two_d]), fig_dir / "tms_polygons.png",
                             titles=[f"p={r['p']:.3g} seed={r.get('seed', 0)}: {r['n_represented']} "
                                     f"rep., D*={r['dims_per_feature']:.2f}" for r in two_d])
        figs.append((name, "Columns of W for the 2-D points: at high sparsity 5 features form a "
                           "pentagon (D_i = 2/5), at moderate sparsity antipodal pairs (1/2)."))
    # one representative per sparsity: W^T W and feature norms coloured by superposition
    reps = {}
    for r in sorted(rows, key=lambda r: (r["p"], r.get("seed", 0))):
        reps.setdefault(r["p"], r)
    reps = list(reps.values())[:8]
    if len({r["n_features"] for r in reps}) == 1:
        name = plot_gram_and_norms(np.asarray([r["W"] for r in reps]), fig_dir / "tms_gram.png",
                                   titles=[f"p={r['p']:.3g}" for r in reps])
        figs.append((name, "W^T W and feature norms (colour: superposition Σ_j≠i (Ŵ_i·W_j)²), one "
                           "point per sparsity."))
    if len({r["n_features"] for r in rows}) == 1:
        D = np.asarray([r["feature_dimensionality"] for r in rows])
        name = plot_feature_dimensionality(D, np.asarray([1 / r["p"] for r in rows]),
                                           fig_dir / "tms_dimensionality.png",
                                           dstar=np.asarray([r["dims_per_feature"] for r in rows]))
        figs.append((name, "Feature dimensionality D_i of every feature of every point against "
                           "1/(1−S), with the fractional levels 1, 3/4, 2/3, 1/2, 2/5, 3/8."))
    return figs


def geometry_table(rows: list[dict]) -> str:
    """Features per geometry class, one row per point. Columns that say nothing are left out (an
    axis value shared by every point, a class no feature of any point falls in), so the table fits
    the text column."""
    keys = ["point", "p", "importance_decay", "seed", "phase"]
    keys = [k for k in keys if any(k in r for r in rows)
            and (k in ("point", "phase") or len({r.get(k) for r in rows}) > 1)]
    geo = [(k, h) for k, h in GEOMETRY_COLS if any(r.get(k) for r in rows)]
    return table([*keys, *[h for _, h in geo]],
                 [[r.get(k) for k in keys] + [r.get(k, 0) for k, _ in geo] for r in rows])


def active_sections(rows: list[dict]) -> list[str]:
    """The strategies table of an active-learning sweep (mean ± std over seeds)."""
    keys = [k for k in ("accuracy", "cos_mean", "silhouette_tsne", "davies_bouldin_tsne",
                        "silhouette_raw", "davies_bouldin_raw", "effective_rank",
                        "neuron_abs_cos_mean") if k in rows[0]]
    out = []
    for s, rs in sorted(_group(rows, ("strategy",)).items()):
        cells = []
        for k in keys:
            v = [r[k] for r in rs if r.get(k) is not None]
            mean, std = mean_std(v) if v else (None, None)
            cells.append(pm(mean, std if len(v) > 1 else None) if v else "—")
        out.append([s[0], len(rs), *cells])
    control = ("The random strategy at the same number of labels is the control: a strategy's "
               "numbers mean something only beside random's row (same labels, same seeds)."
               if any(s[0] == "random" for s in _group(rows, ("strategy",))) else
               "No random strategy in this sweep: without that control at the same number of labels, "
               "the differences between strategies cannot be attributed to how they query.")
    return [section("Strategies (mean ± std over seeds)", para(control),
                    table(["strategy", "seeds", *keys], out))]


def toy_phase_section() -> str:
    """How a CC point's phase is named (superlens.toy.phases.cc_phase, the rule of single runs too)."""
    return section("Phase classes", para(
        "Each point is classified from its per-feature gain and its per-feature error (active-"
        "conditioned MSE), by the rule a single toy run's report uses (superlens.toy.phases). "
        f"all-dedicated: every feature computed (gain > {GAIN_DEDICATED:g}); naive: some features "
        f"ignored (gain < {GAIN_IGNORED:g}), at most h kept, at a mean gain ≥ {GAIN_FULL:g}; "
        f"ignore-some: ≥ {FRAC_IGNORED:.0%} of features ignored and their error split from the rest "
        f"(their mean MSE ≥ {ERROR_SPLIT:g}× the others'; all ignored also counts); attenuate-all: no "
        f"feature ignored, gains uniform and errors uniform (std/mean < {CV_UNIFORM:g} for each), the "
        "report's superposition strategy; mixed: the rest (e.g. uniform gains, uneven errors). Gain = "
        "least-squares slope of output i against input i > 0 with the feature alone; per-feature "
        "gains and errors of every point are in points/<point>/metrics.json."))


# what a TMS phase (superlens.toy.phases.tms_phase) says, in the words the TMS pages use
TMS_PHASE_WORDS = {
    "superposition": f"more features represented (‖W_i‖ > {NORM_REPRESENTED:g}) than hidden "
                     "dimensions",
    "all-dedicated": "every feature represented, each in its own dimension",
    "ignore-some": f"some features not represented (‖W_i‖ ≤ {NORM_REPRESENTED:g}), no more "
                   "represented than hidden dimensions",
}


def tms_sections(rows: list[dict]) -> list[str]:
    """How a TMS point's phase is named, and its features per geometry class."""
    return [section("Phase classes", para(
                "; ".join(f"{k}: {v}" for k, v in TMS_PHASE_WORDS.items())
                + ". D_i = ‖W_i‖² / Σ_j (Ŵ_i·W_j)² (0 for a dead feature); D* = m / ‖W‖²_F, with m "
                  "the hidden dimensions.")),
            section("Feature geometry per point", para(
                f"Features per geometry class, named from W itself: a feature is represented when "
                f"‖W_i‖ > {NORM_REPRESENTED:g} (the rule of the phase and of the figure titles); "
                "represented features whose directions overlap (|cos| > 0.15) form a group, named by "
                "its size k and the dimensions r it spans (5 in 2: pentagon, 2 in 1: antipodal pair, "
                "1 in 1: dedicated, ...) only when its unit directions form a balanced tight frame "
                "(each D_i of the unit directions r/k within 0.025, summing to ~0); any other group is "
                "other. Classes no feature falls in, and axes every point shares, are left out of "
                "the table; per-feature D_i, norms and classes are in points/<point>/metrics.json."),
                geometry_table(rows))]


def axis_text(v) -> str:
    """An axis as the spec gives it, in words: a list, or {log|linear = [lo, hi], num = N}."""
    if isinstance(v, dict) and "num" in v and ("log" in v or "linear" in v):
        kind = "log" if "log" in v else "linear"
        lo, hi = v[kind]
        return f"{v['num']} {kind}-spaced values from {lo:g} to {hi:g}"
    if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):  # the cells axis
        return " + ".join("(" + ", ".join(f"{k} = {axis_text(x) if isinstance(x, list) else _val(x)}"
                                          for k, x in c.items()) + ")" for c in v)
    return ", ".join(_val(x) for x in v) if isinstance(v, list) else str(v)


def sweep_report_html(spec: dict, meta: dict, rows: list[dict], fig_dir: Path, study) -> str:
    """The sweep's report; `study` is its adapter (superlens.studies), which adds its own sections,
    figures and table columns."""
    name = spec["study"]
    intro = section("What ran", para(
        f"Study {name}: {meta.get('n_points')} points in {meta.get('n_groups')} "
        f"group{'' if meta.get('n_groups') == 1 else 's'} "
        f"({study.point_words}), backend "
        + f"{meta.get('backend')}. Axes: " + "; ".join(f"{k} = {axis_text(v)}"
                                                     for k, v in spec["axes"].items())
        + ". Base: " + ", ".join(f"{k} = {v}" for k, v in spec["base"].items()) + "."))
    sections, figs = study.report_sections(rows, fig_dir)
    summary = phase_summary_section(rows, spec, getattr(study, "phase_pick", "majority"))
    if summary:
        parts = [summary, intro, symbols_section(rows, spec), *sections]
    else:  # no phases (active learning): the study's own findings come first
        parts = [*sections[:1], intro, symbols_section(rows, spec), *sections[1:]]
    parts.append(section("Figures", *[figure(fig_dir / f, c) for f, c in figs]) if figs else "")
    cols = [c for c in study.table_columns if any(c in r for r in rows)]
    parts.append(section("Every point", details(f"{len(rows)} rows (also table.csv, table.json)",
                                                table(cols, [[r.get(c) for c in cols] for r in rows]))))
    parts.append(run_info(spec, meta))
    return page(f"superlens sweep — {spec.get('name', name)}", parts)


# ------------------------------------------------------------------------ the page's first screen

# what each axis / column symbol means (the sweep pages define every symbol they show)
SYMBOLS = {
    "p": "feature probability: each feature is active (non-zero) with probability p; S = 1 − p is "
         "the sparsity.",
    "n_features": "number of input (and output) features n.",
    "n_hidden": "number of hidden neurons (toy) or hidden dimensions m (tms).",
    "ratio": "n_hidden / n_features: neurons per feature.",
    "loss_power": "training loss exponent q: loss = mean |y − target|^q (2: MSE, 4: L4).",
    "importance_decay": "importance of feature i is importance_decay^i (feature 2 of the 2 → 1 model "
                        "has importance importance_decay).",
    "seed": "training seed of the point.",
    "lr": "learning rate.",
    "phase": "the learned strategy, by the one phase rule (superlens.toy.phases), see Phase classes.",
    "eval_samples": "evaluation samples of the point.",
    # the sae-validation study (superlens.studies.sae_validation)
    "cells": "sub-grids joined, not crossed: each table sets several fields, its lists expanded.",
    "family": "tms: the classic toy model, layer h = W x; cc: the compressed-computation model, layer "
              "ReLU(W_in x).",
    "importance": "feature importances: uniform, or decay^j for feature j.",
    "model_seed": "seed of the toy model and of the fresh inputs its layer is measured on.",
    "ae_seeds": "sparse autoencoders fitted per model (their seeds 0, 1, ...).",
    "rows": "activation rows each sparse autoencoder is fitted on.",
    "represented": "the known answer: features with ‖W_i‖ > 0.5 (cc: sqrt(‖W_in,i‖ ‖W_out,i‖)).",
    "frobenius_sq": "‖W‖²_F = Σ_i ‖W_i‖², the soft count beside it.",
    "F_mean": "SAE feature count F = exp(H(p)), p_i latent i's share of the mean latent activation "
              "(parallel latents pooled), mean over AE seeds.",
    "F_std": "std of F over AE seeds.",
    "F_over_dict": "F / dictionary size (1: F at its cap).",
    "fvu_mean": "the autoencoder's fraction of variance unexplained, mean over AE seeds.",
    "l0_mean": "active latents per row, mean over AE seeds.",
    "dead_mean": "share of latents never active, mean over AE seeds.",
    "k_used": "the BatchTopK k the statistics come from (the recipe's k, or the one its fewest- or "
              "more-latents rule picked), mean over AE seeds.",
    "mcc_mean": "planted: mean over the K planted directions of the cosine to the live latent each is "
                "matched to (one-to-one, Hungarian; 0 where none is left), mean over AE seeds.",
    "recovered_mean": "planted: share of the K planted directions whose matched latent has cosine "
                      f"≥ {RECOVERED_COS:g}, mean over AE seeds.",
}


def phase_regions(rows: list[dict], along: str, by: list[str],
                  pick: str = "majority") -> list[dict]:
    """The phase summary: rows grouped into regions of the grid.

    A cell is one setting of `by` + `along` (seeds pooled); its phase is the majority of its seeds
    (pick='majority') or the phase of its lowest-loss seed ('min_loss'). Along each line of fixed
    `by` values, neighbouring `along` values (sorted) with the same cell phase merge into one
    region. Returns dicts {by: {axis: value}, lo, hi, phase, cells, agree, seeds, rows} where agree
    counts the seeds whose own phase is the region's, and rows are the deciding rows (one per cell).
    """
    lines: dict[tuple, dict] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        lines[tuple(r.get(k) for k in by)][r.get(along)].append(r)
    out = []
    for key in sorted(lines, key=lambda t: tuple((v is None, v) for v in t)):
        cells = lines[key]
        cur = None
        for v in sorted(cells, key=lambda x: (x is None, x)):
            rs = cells[v]
            if pick == "min_loss":
                deciding = min(rs, key=lambda r: r.get("loss", np.inf))
                phase = deciding["phase"]
            else:
                phase = majority(r["phase"] for r in rs)
                deciding = next(r for r in rs if r["phase"] == phase)
            agree = sum(r["phase"] == phase for r in rs)
            if cur is not None and cur["phase"] == phase:
                cur.update(hi=v, cells=cur["cells"] + 1, agree=cur["agree"] + agree,
                           seeds=cur["seeds"] + len(rs))
                cur["rows"].append(deciding)
            else:
                cur = {"by": dict(zip(by, key)), "lo": v, "hi": v, "phase": phase, "cells": 1,
                       "agree": agree, "seeds": len(rs), "rows": [deciding]}
                out.append(cur)
    return out


def _val(x) -> str:
    return fmt(x, 3) if isinstance(x, float) else fmt(x)


def _geometry_text(rs: list[dict], along: str) -> str:
    """Features per geometry class of the deciding rows (sorted along `along`), neighbours with the
    same counts merged, e.g. 'p 0.02 – 0.107: 2 × 1/2 antipodal; p = 0.187: 5 × 2/5 pentagon'."""
    runs: list[list] = []  # [lo, hi, text]
    for r in rs:
        text = ", ".join(f"{r[k]} × {h}" for k, h in GEOMETRY_COLS if r.get(k))
        if runs and runs[-1][2] == text:
            runs[-1][1] = r.get(along)
        else:
            runs.append([r.get(along), r.get(along), text])
    return "; ".join((f"{along} = {_val(lo)}" if lo == hi else f"{along} {_val(lo)} – {_val(hi)}")
                     + f": {text}" for lo, hi, text in runs if text)


def phase_summary_section(rows: list[dict], spec: dict, pick: str = "majority") -> str:
    """The sweep's findings first: which phase holds where (one table row per region)."""
    if not rows or "phase" not in rows[0]:
        return ""
    axes = [a for a in spec.get("axes", {}) if a != "seed"]
    along = "p" if "p" in axes else (axes[0] if axes else "point")
    by = [a for a in axes if a != along]
    regions = phase_regions(rows, along, by, pick)
    geo = any(k in rows[0] for k, _ in GEOMETRY_COLS)
    words = TMS_PHASE_WORDS if "n_represented" in rows[0] else PHASES
    head = ["where", "phase", "points agreeing"] + (["feature geometry (deciding seed)"] if geo else [])
    body = ["<div class=\"wide\"><table class=\"verdicts phases\"><tr>"
            + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"]
    for g in regions:
        where = ", ".join(f"{k} = {_val(v)}" for k, v in g["by"].items())
        span = (f"{along} = {_val(g['lo'])}" if g["lo"] == g["hi"]
                else f"{along} {_val(g['lo'])} – {_val(g['hi'])} ({g['cells']} values)")
        cells = [f'<td class="where">{rich(", ".join(x for x in (where, span) if x))}</td>',
                 f"<td>{verdict_badge(g['phase'])}</td>",
                 f'<td class="num">{g["agree"]} of {g["seeds"]}</td>']
        if geo:
            cells.append(f'<td class="why">{rich(_geometry_text(g["rows"], along))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    counts = defaultdict(int)
    for g in regions:
        counts[g["phase"]] += g["cells"]
    n_cells = sum(counts.values())
    how = ("the seed that trained best (lowest loss) decides a cell: a run can stall in a local "
           "minimum" if pick == "min_loss" else "the majority of a cell's seeds decides it")
    lead = (f"{n_cells} cells ({len(rows)} points): "
            + ", ".join(f"{c} {ph}" for ph, c in sorted(counts.items(), key=lambda kv: -kv[1]))
            + f". Along {along}, neighbouring values with the same phase are merged; {how}; points "
              "agreeing counts the points (seeds × values) whose own phase is the region's.")
    legend = para("What each phase means: " + "; ".join(
        f"{ph}: {words.get(ph, '')}" for ph in sorted(counts)) + " (rules under Phase classes below).")
    return section("Phase summary", para(lead), "\n".join(body) + "</table></div>", legend)


def symbols_section(rows: list[dict], spec: dict) -> str:
    """Every axis and column symbol the page shows, defined once (folded)."""
    keys = list(dict.fromkeys([*spec.get("axes", {}), *spec.get("base", {}),
                               *(k for k in SYMBOLS if any(k in r for r in rows))]))
    defs = {k: SYMBOLS[k] for k in keys if k in SYMBOLS}
    return definitions(defs, "symbols used on this page (axes and columns)") if defs else ""


# the toy sweep's columns (table.csv / table.json and the table of every point)
TOY_COLUMNS = {
    "gain_mean": "learned gain: least-squares slope of output i against input i > 0 with the feature "
                 "alone, mean over features.",
    "gain_std": "std over features of that gain.",
    "frac_ignored": f"share of features with gain < {GAIN_IGNORED:g} (ignored).",
    "mse_active_mean": "per-feature MSE over the samples where that feature is active, mean over "
                       "features.",
    "mse_active_cv": "std / mean over features of that per-feature MSE (0: every feature's error "
                     "alike).",
    "improvement_over_naive": "naive / learned mean per-feature active MSE, the naive model being "
                              "(n − min(h, n)) / n / 6 (min(h, n) features exact, the rest 0). At "
                              "n_hidden ≥ n_features the naive model is exact (MSE 0), so the ratio "
                              "is 0: no learned model can beat an exact one, and 0 there means "
                              "'naive is perfect', not 'learned is infinitely worse'.",
    "isolated_mse_mean": "per-feature MSE with the feature alone (no co-active feature), x ~ U(−1, 1), "
                         "mean over features.",
    "interference_share": "1 − isolated / active MSE: the part of the error that co-active "
                          "features add. It is negative where the error with co-active features is "
                          "below the error alone: at high p the model is fitted to dense inputs, in "
                          "which co-active features change which of its bias-free hidden ReLUs are "
                          "on; a feature alone is then an input it was not trained for, and its "
                          "isolated error is the larger one. A difference, not a share bounded by 0 "
                          "and 1.",
    "optimal_gain": "γ* = 1/(1 + K^(1/(q−1))), the optimal-gain theory's gain for one active feature "
                    "(K: the cross-gain leak ratio of the learned model).",
    "abs_cos_mean": "mean |cos| between W_in's feature columns.",
    "lq_loss": "the training loss (mean |y − ReLU(x)|^q) on the evaluation set.",
}


def _count(xs: list) -> str:
    return f"{len(xs)} point{'' if len(xs) == 1 else 's'}"


def toy_columns_section(rows: list[dict]) -> str:
    """What the toy sweep's columns mean, with a sentence wherever a value looks odd (negative
    interference share, zero improvement over naive) and how many evaluation samples each point had."""
    notes = []
    ev = [r["eval_samples"] for r in rows if r.get("eval_samples")]
    if ev:
        span = f"{min(ev):,}–{max(ev):,}" if min(ev) != max(ev) else f"{min(ev):,}"
        notes.append(f"Each point was evaluated on {span} samples: the spec's eval_samples when it "
                     "sets one, else adaptive to p, enough that every feature is active in at least "
                     "2,000 of them (at least 50,000), so that the per-feature errors and their "
                     "spread, which the phase rule reads, are not noise at small p.")
    neg = [r for r in rows if (r.get("interference_share") or 0) < 0]
    if neg:
        by_p = _group(rows, ("p",))
        per_p = ", ".join(f"{_val(p[0])}: {sum((r.get('interference_share') or 0) < 0 for r in rs)} "
                          f"of {len(rs)}" for p, rs in sorted(by_p.items()))
        notes.append(f"interference_share is negative at {len(neg)} of {_count(rows)} (per p, "
                     f"{per_p}): there the error with co-active features is below the error with "
                     "the feature alone, see its definition.")
    zero = [r for r in rows if r.get("improvement_over_naive") == 0]
    if zero:
        notes.append(f"improvement_over_naive is 0 at {_count(zero)} (n_hidden ≥ n_features): the "
                     "naive model is exact there, see its definition.")
    defs = {k: v for k, v in TOY_COLUMNS.items() if any(k in r for r in rows)}
    return section("Columns", *[para(t) for t in notes],
                   definitions(defs, "what each column of the table means"))
