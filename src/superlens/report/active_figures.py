"""Figures of the active-learning study, drawn from a run directory's measures/ and metrics.json."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from superlens.report.active_report import (MANY_CLASSES, TOP_K, class_name, round_counts,
                                            top_k_with_other)
from superlens.report.html import LABELS, humanize
from superlens.report.plotting import plt, save


def _load(out: Path, name: str, seed: int) -> dict:
    from superlens.readers import read_npz

    return read_npz(out / "measures" / f"{name}_seed{seed}.npz")


def _rebin(counts: np.ndarray, edges: np.ndarray, factor: int = 20):
    n = (len(counts) // factor) * factor
    c = counts[:n].reshape(-1, factor).sum(1)
    e = edges[: n + 1 : factor]
    return c / max(c.sum(), 1) / np.diff(e), e


def make_active_figures(out: Path, config: dict, meta: dict, metrics: dict,
                        fig_dir: Path) -> list[tuple[str, str]]:
    """Every figure of the report, as (file name, caption), drawn into ``fig_dir``."""
    out, fig_dir = Path(out), Path(fig_dir)
    names = ["baseline", *config["strategies"]]
    seed = int(meta["seeds"][0])
    arrays = {n: _load(out, n, seed) for n in names}
    classes = meta.get("class_names") or []
    figs: list[tuple[str, str]] = []
    figs.append(_cosine_histograms(arrays, names, metrics, fig_dir, seed))
    if all("tsne_embedding" in arrays[n] for n in names):
        figs.append(_tsne_maps(arrays, names, metrics, classes, config, fig_dir, seed))
    figs.append(_learning_curves(config, metrics, fig_dir))
    per_round = _measures_per_round(config, metrics, fig_dir)
    if per_round is not None:
        figs.append(per_round)
    figs.append(_queries_per_class(config, metrics, classes, fig_dir))
    figs.append(_measures_side_by_side(names, metrics, fig_dir))
    return figs


def _color(i: int, control: bool = False):
    return "black" if control else plt.get_cmap("tab10")(i)


def _cosine_histograms(arrays: dict, names: list[str], metrics: dict, fig_dir: Path,
                       seed: int) -> tuple[str, str]:
    """The paper's sample x sample cosine histogram and the neuron x neuron one, overlaid."""
    fig, ax = plt.subplots(1, 2, figsize=(12, 4))
    for i, n in enumerate(names):
        a = arrays[n]
        d, e = _rebin(a["cos_hist_counts"], a["cos_hist_edges"])
        ax[0].stairs(d, e, label=f"{n} (mean {metrics[n]['cos_mean']:.3f})", color=_color(i))
        if a["neuron_cos_hist_counts"].sum() > 0:
            d, e = _rebin(a["neuron_cos_hist_counts"], a["neuron_cos_hist_edges"],
                          max(1, len(a["neuron_cos_hist_counts"]) // 50))
            ax[1].stairs(d, e, label=n, color=_color(i))
    ax[0].set(title="sample × sample cosine (paper's measure, diagonal incl.)", xlabel="cosine",
              ylabel="density")
    ax[1].set(title="neuron × neuron cosine of activation profiles (sound)", xlabel="cosine")
    ax[0].legend(fontsize=8)
    ax[1].legend(fontsize=8)
    return (save(fig, fig_dir / "cosine_histograms.png"),
            f"Cosine similarity distributions of test-set features (seed {seed}).")


def _tsne_maps(arrays: dict, names: list[str], metrics: dict, classes: list[str], config: dict,
               fig_dir: Path, seed: int) -> tuple[str, str]:
    """One t-SNE map per model, coloured by class."""
    k = len(names)
    cols = min(k, 3)
    rows = (k + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.2 * rows), squeeze=False)
    for ax, n in zip(axes.flat, names):
        emb, lab = arrays[n]["tsne_embedding"], arrays[n]["tsne_labels"]
        for c in np.unique(lab):
            m = lab == c
            label = classes[c] if c < len(classes) and len(classes) <= 20 else None
            ax.scatter(emb[m, 0], emb[m, 1], s=3, color=plt.get_cmap("tab20")(c % 20), label=label)
        ax.set_title(f"{n}: silhouette {metrics[n]['silhouette_tsne']:.3f}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[k:]:
        ax.axis("off")
    if len(classes) <= 20:
        axes.flat[0].legend(fontsize=6, markerscale=3, loc="best")
    how = ("scikit-learn TSNE(random_state=42), the paper's" if config.get("tsne") == "sklearn"
           else "openTSNE")
    return (save(fig, fig_dir / "tsne.png"),
            f"t-SNE ({how}) embeddings of the test features, coloured by class (seed {seed}).")


def _learning_curves(config: dict, metrics: dict, fig_dir: Path) -> tuple[str, str]:
    """Accuracy against labels per strategy: mean and 95 % t interval over seeds (the
    learning_curve entries; mean ± std of the rounds for runs made before them)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, n in enumerate(config["strategies"]):
        curve = metrics[n].get("learning_curve")
        if curve:
            pts = curve["points"]
            x = [p["labelled"] for p in pts]
            y = np.array([p["accuracy"] for p in pts], dtype=float)
            lo = np.array([p["ci_low"] if p["ci_low"] is not None else p["accuracy"] for p in pts],
                          dtype=float)
            hi = np.array([p["ci_high"] if p["ci_high"] is not None else p["accuracy"] for p in pts],
                          dtype=float)
        else:
            r = metrics[n]["rounds"]
            x = [e["labelled"] for e in r]
            y = np.array([e["accuracy"] for e in r])
            s = np.array([e.get("accuracy_std", 0.0) for e in r])
            lo, hi = y - s, y + s
        control = n == "random"  # the control at equal labels: drawn so it stands out
        c = _color(i + 1, control)
        ax.plot(x, y, marker="o", label="random (control, equal labels)" if control else n, color=c,
                ls="--" if control else "-", lw=2.2 if control else 1.5, zorder=3 if control else 2)
        ax.fill_between(x, lo, hi, alpha=0.15, color=c)
    ax.axhline(metrics["baseline"]["accuracy"], color=_color(0), ls=":",
               label="baseline (every label)")
    ax.set(xlabel="labelled samples", ylabel="test accuracy",
           title="Learning curves (mean, 95 % interval over seeds)")
    ax.legend(fontsize=8)
    return (save(fig, fig_dir / "accuracy_per_round.png"),
            "Test accuracy after each round's training against the number of labelled samples, "
            "mean and 95 % Student-t interval over seeds; random sampling (black, dashed) is the "
            "control at equal labels.")


def _measures_per_round(config: dict, metrics: dict, fig_dir: Path) -> tuple[str, str] | None:
    """The per-round measures (the claim "more rounds reduce superposition"); a measure known at
    one label count only (e.g. the sparse-autoencoder F of the final models) gets no panel."""
    def points(n: str, key: str):
        return [(e["labelled"], e[key], e.get(key + "_std") or 0.0)
                for e in metrics[n]["rounds"] if e.get(key) is not None]

    round_keys = [k for k in ("cos_mean", "sae_features", "effective_rank", "davies_bouldin_raw")
                  if len({x for n in config["strategies"] for x, _, _ in points(n, k)}) >= 2]
    if not round_keys:
        return None
    fig, axes = plt.subplots(1, len(round_keys), figsize=(4.6 * len(round_keys), 3.8),
                             squeeze=False)
    for ax, key in zip(axes[0], round_keys):
        for i, n in enumerate(config["strategies"]):
            pts = points(n, key)
            if not pts:
                continue
            x, y, sd = (np.array(v, dtype=float) for v in zip(*pts))
            control = n == "random"
            ax.errorbar(x, y, yerr=sd, marker="o", capsize=3, label=n,
                        color=_color(i + 1, control), ls="--" if control else "-")
        if metrics["baseline"].get(key) is not None:
            ax.axhline(metrics["baseline"][key], color=_color(0), ls=":", label="baseline")
        ax.set(title=key, xlabel="labelled samples")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return (save(fig, fig_dir / "measures_per_round.png"),
            "Measures of every round's model against the labels it saw (mean ± std over "
            "seeds); random sampling (black, dashed) is the control at equal labels.")


def _queries_per_class(config: dict, metrics: dict, classes: list[str],
                       fig_dir: Path) -> tuple[str, str]:
    """Per-class counts of what each strategy queried, per round (many classes: the TOP_K most
    queried and 'other')."""
    strategies = config["strategies"]
    fig, axes = plt.subplots(1, len(strategies), figsize=(4.2 * len(strategies), 3.8), squeeze=False)
    many = False
    for ax, n in zip(axes[0], strategies):
        r = [(e["round"], round_counts(e)) for e in metrics[n]["rounds"]]
        r = [(i, q) for i, q in r if q is not None]
        if not r:
            ax.axis("off")
            continue
        x = [i for i, _ in r]
        q = np.array([c for _, c in r], dtype=np.int64)  # [rounds, classes], summed over seeds
        many = many or q.shape[1] > MANY_CLASSES
        if q.shape[1] > MANY_CLASSES:
            shown, _ = top_k_with_other(q.sum(0).tolist())
            stack = [(q[:, c], class_name(classes, c), plt.get_cmap("tab10")(k % 10))
                     for k, c in enumerate(shown)]
            rest = q.sum(1) - (q[:, shown].sum(1) if shown else 0)
            stack.append((rest, "other", "0.75"))
        else:
            stack = [(q[:, c], class_name(classes, c), plt.get_cmap("tab20")(c % 20))
                     for c in range(q.shape[1])]
        bottom = np.zeros(len(r))
        for vals, label, color in stack:
            ax.bar(x, vals, bottom=bottom, color=color, label=label)
            bottom += vals
        top = int(np.argmax(q.sum(0)))
        ax.set_title(f"{n}: most queried = {class_name(classes, top)}", fontsize=9)
        ax.set_xlabel("round")
        ax.set_xticks(x)
        # legends sit outside the data: below each panel when every strategy has its own top
        # classes, else once, right of the last panel
        if q.shape[1] > MANY_CLASSES:
            ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3,
                      frameon=False)
        elif ax is axes[0][-1]:
            ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
                      ncol=1 if q.shape[1] <= 12 else 2, title="class", title_fontsize=7)
    axes[0][0].set_ylabel("queried samples (sum over seeds)")
    return (save(fig, fig_dir / "queries_per_class.png"),
            "Per-class counts of the samples each strategy queried, per round"
            + (f" (its {TOP_K} most queried classes over all rounds by name, the rest as "
               "'other')" if many else "")
            + " (the paper noticed 'cat' dominating least-confidence queries on CIFAR-10).")


def _measures_side_by_side(names: list[str], metrics: dict, fig_dir: Path) -> tuple[str, str]:
    """Every measure for the baseline and each strategy's final model."""
    colors = plt.get_cmap("tab10")

    keys = ["accuracy", "cos_mean", "silhouette_tsne", "davies_bouldin_tsne", "silhouette_raw",
            "davies_bouldin_raw", "effective_rank", "neuron_abs_cos_mean"]
    keys += [k for k in ("sae_features", "sae_conv_features") if k in metrics["baseline"]]
    fig, axes = plt.subplots(2, (len(keys) + 1) // 2, figsize=(3.75 * ((len(keys) + 1) // 2), 6.5),
                             squeeze=False)
    for ax, key in zip(axes.flat, keys):
        vals = [metrics[n].get(key) for n in names]
        errs = [metrics[n].get(key + "_std") or 0.0 for n in names]
        ok = [v is not None for v in vals]
        ax.bar([n for n, o in zip(names, ok) if o], [v for v in vals if v is not None],
               yerr=[e for e, o in zip(errs, ok) if o], color=[colors(i) for i, o in enumerate(ok) if o],
               capsize=3)
        name = "\n".join(textwrap.wrap(LABELS.get(key) or humanize(key), 34))
        ax.set_title(f"{name}\n({key})", fontsize=9)
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    fig.tight_layout()
    return (save(fig, fig_dir / "measures.png"),
            "Every measure for the baseline and each strategy's final model (mean ± std over seeds).")
