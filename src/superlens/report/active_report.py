"""report.html of the active-learning study."""
from __future__ import annotations

from pathlib import Path

from superlens.report.html import (details, figure, fmt, page, para, pm, run_info, section, table)

# The paper's published numbers (REFERENCE.md A): (data set, metric) -> (active learning, baseline)
PAPER = {("cifar10", "cos_mean"): (0.927, 0.885), ("cifar10", "silhouette_tsne"): (0.189, 0.212),
         ("cifar10", "davies_bouldin_tsne"): (1.542, 1.551),
         ("tiny-imagenet", "cos_mean"): (0.254, 0.310),
         ("tiny-imagenet", "silhouette_tsne"): (-0.399, -0.348)}


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
             "ones are computed on the raw features. t-SNE is openTSNE (FFT), not the paper's "
             "scikit-learn Barnes–Hut, so the *_tsne values are comparable in kind, not digit for "
             "digit.", "def"),
    )
    rows = []
    for key in defs:
        if key not in metrics["baseline"]:
            continue
        cells = [pm(metrics[n].get(key), metrics[n].get(key + "_std")) for n in names]
        rows.append([key, *cells, defs[key]])
    side = section("Baseline and strategies side by side (mean ± std over seeds)",
                   table(["measure", *names, "definition"], rows))
    ref_rows = [(ds, key, al, base) for (ds, key), (al, base) in PAPER.items()
                if ds == config["dataset"]]
    paper = section("The paper's published numbers (for comparison)",
                    table(["data set", "measure", "active learning", "baseline"], ref_rows)
                    if ref_rows else para("The paper published numbers for CIFAR-10 and Tiny "
                                          "ImageNet only."))
    round_rows = []
    for n in config["strategies"]:
        for r in metrics[n]["rounds"]:
            q = r.get("queried_per_class")
            round_rows.append((n, r["round"], r["labelled"], pm(r["accuracy"], r.get("accuracy_std")),
                               "" if not q else ", ".join(str(int(v)) for v in q)))
    rounds = section("Rounds", details("accuracy and per-class queries per round",
                                       table(["strategy", "round", "labelled", "accuracy",
                                              "queried per class (sum over seeds)"], round_rows)))
    figs = section("Figures", *[figure(fig_dir / f, c) for f, c in figures])
    return page("superlens — active learning and superposition",
                [intro, side, paper, figs, rounds, run_info(config, meta)])
