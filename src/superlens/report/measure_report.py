"""The page of a `superlens measure` run: the superposition profile against depth first, then a row
per layer, then each layer's numbers beside their definitions."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from superlens.report import html as H
from superlens.report.plotting import plt, save

PROFILE_PNG = "profile.png"
# the overview table's columns, in order
COLUMNS = {"width": "N", "rows": "rows", "sae_features": "F (SAE)", "sae_psi": "ψ = F / N",
           "sae_fvu": "FVU", "effective_rank": "eff. rank", "participation_ratio": "PR",
           "neuron_abs_cos_mean": "neuron |cos|", "selectivity_mean": "selectivity",
           "class_mean_cos": "class-mean cos", "silhouette_raw": "silhouette",
           "sae_trusted": "F trusted?"}


def _vals(layers: list[dict], key: str) -> np.ndarray:
    return np.array([np.nan if d.get(key) is None else float(d[key]) for d in layers])


def profile_figure(layers: list[dict], path: Path) -> str:
    """psi (with its spread over AE seeds), the spectrum measures per neuron, the neuron cosine and
    the label measures, against depth: one point per layer."""
    x = np.arange(len(layers))
    names = [d["layer"] for d in layers]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.2), sharex=True)
    a = axes[0, 0]
    psi, err = _vals(layers, "sae_psi"), _vals(layers, "sae_psi_std")
    if np.isfinite(psi).any():
        a.errorbar(x, psi, yerr=np.nan_to_num(err), fmt="o-", color="C3", capsize=4,
                   label="ψ = F / N (± std over AE seeds)")
        a.axhline(1.0, color="grey", lw=0.8, ls=":")
        a.legend(fontsize=8, loc="best")
    else:
        a.text(0.5, 0.5, "SAE measure off", ha="center", va="center", transform=a.transAxes)
    a.set_ylabel("features per neuron ψ")
    a.set_title("superposition ratio ψ (SAE)")
    a = axes[0, 1]
    widths = _vals(layers, "width")
    a.plot(x, _vals(layers, "effective_rank") / widths, "o-", label="effective rank / N")
    a.plot(x, _vals(layers, "participation_ratio") / widths, "s-", label="participation ratio / N")
    a.set_ylim(bottom=0)
    a.set_title("directions used, per neuron")
    a.legend(fontsize=8)
    a = axes[1, 0]
    a.plot(x, _vals(layers, "neuron_abs_cos_mean"), "o-", color="C2", label="neuron |cos|, mean")
    a.set_ylabel("neuron |cos|", color="C2")
    a.set_ylim(0, 1)
    b = a.twinx()
    b.plot(x, _vals(layers, "sae_fvu"), "^--", color="C4", label="SAE FVU (right axis)")
    b.set_ylabel("SAE FVU", color="C4")
    b.set_ylim(bottom=0)
    a.set_title("neuron overlap; SAE reconstruction error")
    a.legend(handles=a.lines + b.lines, fontsize=8, loc="best")
    a = axes[1, 1]
    for key, m, lab in (("selectivity_mean", "o-", "class selectivity, mean"),
                        ("class_mean_cos", "s-", "class-mean cosine"),
                        ("silhouette_raw", "^-", "silhouette (raw)")):
        v = _vals(layers, key)
        if np.isfinite(v).any():
            a.plot(x, v, m, label=lab)
    if a.lines:
        a.legend(fontsize=8)
    else:
        a.text(0.5, 0.5, "no labels", ha="center", va="center", transform=a.transAxes)
    a.set_title("class structure (per-sample features)")
    for a in axes[1]:
        a.set_xticks(x)
        a.set_xticklabels([f"{n}\n(N={int(w)})" for n, w in zip(names, widths)], rotation=30,
                          ha="right", fontsize=8)
        a.set_xlabel("layer, in the order it runs")
    for a in axes.flat:
        a.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


def _cell(v) -> str:
    if isinstance(v, dict):  # the calibration note: its reason first, then its figures
        rest = ", ".join(f"{k} {H.fmt(x)}" for k, x in v.items() if k not in ("reason", "settings"))
        return H.rich(f"{v.get('reason', '')} ({rest})")
    return H.fmt(v) if not isinstance(v, str) else H.rich(v)


def measure_report_html(config: dict, meta: dict, metrics: dict, fig_dir: Path) -> str:
    from superlens.profile.layer_measures import LAYER_DEFINITIONS

    layers = sorted(metrics["layers"].values(), key=lambda d: d["depth"])
    defs = {**LAYER_DEFINITIONS, **metrics.get("definitions", {})}
    intro = H.para(f"Model: {metrics['model']}. Data: {metrics['data']}. "
                   f"{len(layers)} layer(s), in the order the forward pass runs them. "
                   + ("Class labels: yes." if metrics.get("labels") else
                      "No class labels: the label measures are left out."))
    sae_note = H.para(
        "How to read ψ: F is the effective number of features a sparse autoencoder (8 N latents, the "
        "recipe of superlens.measures.sae) finds in the layer's rows (Bereska et al. 2025, arXiv 2512.13568), and ψ = F / N; "
        "the error bars are the spread over autoencoder seeds only (not over data or models). "
        "Each layer's row states what the measure's validation says at its width; where it was not "
        "checked against a known answer, F ranks layers at best and its value is not a count.",
        "note")
    sections = [intro, H.section("Superposition profile",
                                 H.figure(fig_dir / PROFILE_PNG, "Per layer, against depth: ψ = F / N "
                                          "with its std over AE seeds; effective rank and "
                                          "participation ratio per neuron; mean neuron |cos| and the "
                                          "SAE's FVU; the label measures on per-sample features."),
                                 sae_note)]
    rows = []
    for d in layers:
        cells = [f"<code>{H.esc(d['layer'])}</code><small class=\"key\">{H.esc(d['kind'])} "
                 f"{H.esc('×'.join(str(v) for v in d['shape']))}</small>"]
        for k in COLUMNS:
            v = d.get(k)
            if k == "sae_features" and v is not None:
                v = H.pm(v, d.get("sae_features_std"))
            cells.append(H.fmt(v) if not isinstance(v, str) else v)
        rows.append(cells)
    head = "".join(f"<th>{H.esc(t)}</th>" for t in ["layer", *COLUMNS.values()])
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    col_defs = "".join(f"<tr><td>{H.esc(t)}<small class=\"key\">{H.esc(k)}</small></td>"
                       f"<td>{H.rich(defs.get(k, ''))}</td></tr>" for k, t in COLUMNS.items())
    sections.append(H.section(
        "Layers", f'<div class="wide"><table><tr>{head}</tr>{body}</table></div>',
        H.para("Each column's definition (the key is the name in metrics.json):"),
        f"<table><tr><th>column</th><th>definition</th></tr>{col_defs}</table>"))
    per_layer = []
    for d in layers:
        keys = [k for k in defs if k in d]
        body = H.table(["measure", "value", "definition"],
                       [[H.label(k), _cell(d[k]), H.rich(defs[k])] for k in keys], raw=True)
        per_layer.append(H.details(f"{d['layer']}: every number with its definition", body))
    sections.append(H.section("Each layer, number by number", *per_layer))
    sections.append(H.run_info(config, meta))
    return H.page(f"Superposition profile: {config.get('model') or 'activations'}", sections)


def render_measure_report(out: str | Path) -> Path:
    """(Re)draw the figure and report.html of a measure run directory."""
    from superlens.readers import read_meta, read_object
    from superlens.runs import atomic_write_text

    out = Path(out)
    config = read_object(out / "config.json")
    meta = read_meta(out)
    metrics = read_object(out / "metrics.json", {"layers": dict})
    layers = sorted(metrics["layers"].values(), key=lambda d: d["depth"])
    profile_figure(layers, out / "figures" / PROFILE_PNG)
    atomic_write_text(out / "report.html", measure_report_html(config, meta, metrics, out / "figures"))
    return out / "report.html"


__all__ = ["render_measure_report", "measure_report_html", "profile_figure"]
