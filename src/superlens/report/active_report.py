"""report.html of the active-learning study."""
from __future__ import annotations

from pathlib import Path

from superlens.report.html import (details, esc, figure, fmt, label, page, para, pm, rich, run_info,
                                   section, table)

# The paper's published numbers (arXiv 2412.16168, "Superposition through Active Learning lens"):
# (data set, metric) -> (active learning, baseline)
PAPER = {("cifar10", "cos_mean"): (0.927, 0.885), ("cifar10", "silhouette_tsne"): (0.189, 0.212),
         ("cifar10", "davies_bouldin_tsne"): (1.542, 1.551),
         ("tiny-imagenet", "cos_mean"): (0.254, 0.310),
         ("tiny-imagenet", "silhouette_tsne"): (-0.399, -0.348)}


MANY_CLASSES = 20  # above this, per-class query counts show the TOP_K most queried classes + other
TOP_K = 10


def round_counts(entry: dict) -> list[int] | None:
    """A metrics.json round's per-class query counts summed over seeds (None: nothing queried).
    Reads queried_per_class_sum; older run directories had only queried_per_class (sums then)."""
    q = entry.get("queried_per_class_sum", entry.get("queried_per_class"))
    return None if not q else [int(round(v)) for v in q]


def class_name(names: list[str], c: int) -> str:
    return names[c] if 0 <= c < len(names) else str(c)


def top_k_with_other(counts: list[int], k: int = TOP_K) -> tuple[list[int], int]:
    """The k most queried class indices (most first; ties by index) and the count of the rest."""
    order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
    top = [c for c in order[:k] if counts[c] > 0]
    return top, int(sum(counts) - sum(counts[c] for c in top))


def _rounds_section(config: dict, meta: dict, metrics: dict) -> str:
    names = list(meta.get("class_names") or [])
    n_classes = len(names) or max((len(round_counts(r) or []) for n in config["strategies"]
                                   for r in metrics[n]["rounds"]), default=0)
    n_seeds = len(meta.get("seeds", [])) or 1
    many = n_classes > MANY_CLASSES
    rows = []
    for n in config["strategies"]:
        for r in metrics[n]["rounds"]:
            q = round_counts(r)
            head = [n, r["round"], r["labelled"], pm(r["accuracy"], r.get("accuracy_std"))]
            if many:
                if q is None:
                    rows.append([*head, "", ""])
                else:
                    top, other = top_k_with_other(q)
                    rows.append([*head, ", ".join(f"{class_name(names, c)}: {q[c]}" for c in top),
                                 other])
            else:
                rows.append([*head, *(q if q is not None else [""] * n_classes)])
    if many:
        header = ["strategy", "round", "labelled", "accuracy",
                  f"top {TOP_K} queried classes (count, sum over {n_seeds} seed(s))", "other classes"]
    else:
        header = ["strategy", "round", "labelled", "accuracy",
                  *[class_name(names, c) for c in range(n_classes)]]
    note = para(f"Per-class columns: samples queried in that round, summed over {n_seeds} seed(s); "
                "the last round queries nothing." if not many else
                f"{n_classes} classes: each round lists its {TOP_K} most queried classes (summed over "
                f"{n_seeds} seed(s)) and the count of all others; the last round queries nothing.",
                "note")
    return section("Rounds", details("accuracy and per-class queries per round",
                                     note + table(header, rows)))


def active_report_html(config: dict, meta: dict, metrics: dict, fig_dir: Path,
                       figures: list[tuple[str, str]]) -> str:
    from superlens.measures.summary import METRIC_DEFINITIONS

    defs = {"accuracy": "Top-1 accuracy of the final model on the test set.", **METRIC_DEFINITIONS}
    names = ["baseline", *config["strategies"]]
    intro = section(
        "What ran",
        para(meta.get("protocol", "")),
        para(f"Data set {config['dataset']} ({meta.get('n_train')} training / {meta.get('n_test')} test "
             f"images), model {config['model']}, {config['optimizer']} lr {config['lr']}, "
             f"{config['epochs']} epochs per training, batch {config['batch_size']}. Strategies: "
             f"{', '.join(config['strategies'])}; seeds {', '.join(map(str, meta.get('seeds', [])))}. "
             f"Preset: {config.get('preset')}."),
        para("cos_* here are computed on the paper notebook's features, quirk included (layer4's "
             "last residual block applied twice, then pooled), as its published histogram was; the "
             "other measures use the pooled penultimate layer.", "note")
        if config.get("paper_features") else "",
        para("Measures marked 'paper's definition' reproduce what the paper's code computed (a sample × "
             "sample cosine, and silhouette / Davies–Bouldin of a 2-D t-SNE embedding); the sound "
             "ones are computed on the raw features. t-SNE is openTSNE (FFT gradients from 10,000 "
             "points up, its Barnes–Hut below, where that is faster), not the paper's "
             "scikit-learn Barnes–Hut, so the *_tsne values are comparable in kind, not digit for "
             "digit.", "def"),
    )
    rows = []
    for key in defs:
        if key not in metrics["baseline"]:
            continue
        cells = [esc(pm(metrics[n].get(key), metrics[n].get(key + "_std"))) for n in names]
        rows.append([label(key), *cells, rich(defs[key])])
    side = section("Baseline and strategies side by side (mean ± std over seeds)",
                   table(["measure", *names, "definition"], rows, raw=True))
    ref_rows = [(ds, key, al, base) for (ds, key), (al, base) in PAPER.items()
                if ds == config["dataset"]]
    paper = section("The paper's published numbers (for comparison)",
                    table(["data set", "measure", "active learning", "baseline"], ref_rows)
                    if ref_rows else para("The paper published numbers for CIFAR-10 and Tiny "
                                          "ImageNet only."))
    rounds = _rounds_section(config, meta, metrics)
    figs = section("Figures", *[figure(fig_dir / f, c) for f, c in figures])
    return page("superlens — active learning and superposition",
                [intro, side, paper, figs, rounds, run_info(config, meta)])
