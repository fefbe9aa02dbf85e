"""report.html of the active-learning study."""
from __future__ import annotations

from pathlib import Path

from superlens.report.html import (definitions, details, esc, figure, fmt, label, page, para, pm,
                                   rich, run_info, section, table)

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


def _ci(d: dict | None) -> str:
    """'effect [low, high]' of a verdicts.t_interval dict."""
    if not d or d.get("effect") is None:
        return "—"
    if d.get("no_variation"):
        return f"{fmt(d['effect'], 3)} (the same at every seed: no interval)"
    if d.get("ci_low") is None:
        return f"{fmt(d['effect'], 3)} (one seed: no interval)"
    return f"{fmt(d['effect'], 3)} [{fmt(d['ci_low'], 3)}, {fmt(d['ci_high'], 3)}]"


def _p(p) -> str:
    return "—" if p is None else ("< 0.001" if p < 0.001 else f"{p:.3f}")


WORD_CLASS = {"reproduced": "v-reproduced", "contradicted": "v-contradicted",
              "smaller than the paper's": "v-not-reproduced",
              "no effect larger than δ": "v-answered", "no effect larger than Δ": "v-answered"}


def _badge(word: str) -> str:
    return f'<span class="verdict {WORD_CLASS.get(word, "v-other")}">{esc(word)}</span>'


def _paper_cell(r: dict) -> str:
    if r.get("paper_effect") is None:
        return "—"
    if r.get("no_variation"):
        return f"{fmt(r['paper_effect'], 3)} (no variation over seeds: not tested)"
    if r.get("p_paper") is None:
        return f"{fmt(r['paper_effect'], 3)} (against the claim: not tested)"
    p = r.get("p_paper_holm", r.get("p_paper"))
    return f"{fmt(r['paper_effect'], 3)}: {'excluded' if p < 0.05 else 'not excluded'} (p {_p(p)})"


def _power_cell(r: dict) -> str:
    need = r.get("seeds_needed")
    half = r.get("half_width")
    h = "—" if half is None else f"±{fmt(half, 2)}"
    if r.get("no_variation"):
        return f"no variation over {r.get('n_seeds')} seeds"
    if need is None:
        return h
    need_s = f"> {need - 1}" if need > 10_000 else str(need)
    return f"{h} at {r.get('n_seeds')} seeds; {need_s} needed"


def verdict_section(metrics: dict) -> str:
    """"The paper's claims, re-tested": per claim a header line (its verdict, primary measure and
    comparison) and one row per measure; the rule and the power rule printed above."""
    from superlens.active.verdicts import WORD_RULES

    v = metrics.get("verdicts")
    if not v:
        return ""
    claims = v.get("claims", {})
    rows_all = v.get("rows", [])
    head = ("<tr><th>measure</th><th>effect [95 % CI]</th><th>vs baseline [95 % CI]</th>"
            "<th>paper's effect</th><th>p vs 0</th><th>Δ; TOST p</th>"
            "<th>power</th><th>row's word</th></tr>")
    body = []
    for claim in dict.fromkeys(r["claim"] for r in rows_all):
        rows = [r for r in rows_all if r["claim"] == claim]
        prim = next((r for r in rows if r.get("primary")), rows[0])
        word = claims.get(claim, "inconclusive")
        settle = ""
        if word == "inconclusive" and prim.get("seeds_needed"):
            settle = f" — about {prim['seeds_needed']} seeds would settle it"
        elif word == "inconclusive" and prim.get("no_variation"):
            settle = " — no seed-to-seed variation: no noise estimate to test against"
        body.append(
            f'<tr><td colspan="8" class="claimhead"><b>{esc(prim["text"])}</b> {_badge(word)}'
            f"{esc(settle)}<br><small>primary: <code>{esc(prim['measure'])}</code>, "
            f"{esc(prim['comparison'])} (the paper: {esc(prim['direction'])}); Holm over "
            f"{prim.get('holm_rows', len(rows))} row(s)</small></td></tr>")
        for r in rows:
            name = f"<code>{esc(r['measure'])}</code>" + (" <b>(primary)</b>" if r.get("primary")
                                                         else "")
            other = r.get("vs_baseline") or r.get("vs_random")
            other_s = ("" if not other else ("" if "vs_baseline" in r else "minus random's: ")
                       + _ci(other))
            if r.get("random_vs_baseline", {}).get("effect") is not None:
                other_s = f"{r['a']}: {other_s}; random: {_ci(r['random_vs_baseline'])}"
            note = f"<br><small>{esc(r['note'])}</small>" if r.get("note") else ""
            eq = "—" if r.get("delta") is None else (
                f"{fmt(r['delta'], 3)}; {_p(r.get('p_equiv_holm', r.get('p_equiv')))}")
            body.append(
                f"<tr><td>{name}</td><td>{esc(_ci(r))}</td>"
                f"<td>{esc(other_s) or '—'}</td><td>{esc(_paper_cell(r))}</td>"
                f"<td class=\"num\">{esc(_p(r.get('p_zero_holm', r.get('p_zero'))))}</td>"
                f"<td>{esc(eq)}</td><td>{esc(_power_cell(r))}</td>"
                f"<td>{_badge(r['verdict'])}{note}</td></tr>")
    style = ("<style>table.claims{width:100%;font-size:.84em}table.claims td.claimhead{"
             "background:#f6f6f6;padding-top:.5em}table.claims td{max-width:16em}"
             "table.claims .verdict{white-space:normal}</style>")
    table_html = (style + '<div class="wide"><table class="claims">' + head + "\n".join(body)
                  + "</table></div>")
    sae = v.get("sae_validation") or ""
    delta = v.get("delta") or {}
    plan = ("Plan fixed before the run (the preset): primary measure per claim "
            + ", ".join(f"{c}: {m}" for c, m in (v.get("primary") or {}).items())
            + "; smallest effect of interest Δ per measure "
            + ", ".join(f"{k} {fmt(x, 3)}" for k, x in delta.items()) + ".")
    paper = ("The paper's effects (arXiv 2412.16168, p. 5, CIFAR-10) are active learning minus "
             "its baseline, the only comparison it reports: cos_mean 0.927 − 0.885 = +0.042, "
             "silhouette_tsne 0.189 − 0.212 = −0.023, davies_bouldin_tsne 1.542 − 1.551 = −0.009 "
             "(lower Davies–Bouldin is better clustering, so the paper's own number goes against its "
             "'worse clustering' claim and is not tested). Here they are set against the primary "
             "comparison, the strategy against random sampling at equal labels, and the "
             "− baseline column shows the paper's own comparison, for the strategy and for random sampling.")
    return section(
        "The paper's claims, re-tested",
        para("Each block tests one claim of arXiv 2412.16168; the claim's verdict is its primary "
             "measure's word. Rule: " + v.get("rule", ""), "def"),
        "<ul class=\"def\">" + "".join(f"<li>{_badge(w)} {esc(t)}</li>"
                                      for w, t in WORD_RULES.items()) + "</ul>",
        para("Columns: effect = mean paired difference (primary comparison) with its 95 % t "
             "interval; p vs 0 and TOST p are Holm-adjusted over the claim's rows; power = the "
             "interval half-width reached and the seeds needed. " + v.get("seeds_needed_rule", ""),
             "def"),
        para(plan, "def"), para(paper, "def"),
        table_html,
        para("Sparse-autoencoder measure: " + sae, "note") if sae else "")


def curves_section(config: dict, metrics: dict) -> str:
    """Learning curves: area under each strategy's curve, against random, and the labels it needs
    to match random's final accuracy."""
    rows = []
    rule = (metrics.get("verdicts") or {}).get("curves_rule", "")
    for n in config["strategies"]:
        c = metrics.get(n, {}).get("learning_curve")
        if not c:
            continue
        final = c["points"][-1]
        need = c.get("labels_to_match_random")
        rows.append([n, _ci({"effect": final["accuracy"], "ci_low": final["ci_low"],
                             "ci_high": final["ci_high"],
                             "no_variation": final.get("no_variation", False)}),
                     _ci(c.get("area")), _ci(c.get("area_minus_random")) if n != "random" else "—",
                     "—" if need is None else f"{need:,.0f} (random: {final['labelled']:,})"])
    if not rows:
        return ""
    pts = next(metrics[n]["learning_curve"]["points"] for n in config["strategies"]
               if metrics.get(n, {}).get("learning_curve"))
    budget = (f"{pts[0]['labelled']:,} → {pts[-1]['labelled']:,} labels, augmentation "
              f"{'on' if config.get('augment') else 'off'}")
    return section("Learning curves",
                   para(rule, "def"),
                   table(["strategy", "final accuracy [95 % CI]", "area (mean accuracy over the "
                          "budget) [95 % CI]", "area − random's (paired)", "labels to match "
                          "random's final accuracy"], rows),
                   para(f"These curves answer for this run's budget only ({budget}). The literature "
                        "puts uncertainty sampling at or below random under ~1,000–2,000 labels "
                        "from scratch and ahead of it from ~5,000 labels with augmentation "
                        "(Hacohen et al. 2022, arXiv 2202.02794; Beck et al. 2021, arXiv "
                        "2106.15324); the preset cifar10-cpu-5k is this study's higher budget.",
                        "note"))


def active_report_html(config: dict, meta: dict, metrics: dict, fig_dir: Path,
                       figures: list[tuple[str, str]]) -> str:
    from superlens.active.sae_measures import SAE_DEFINITIONS
    from superlens.measures.summary import METRIC_DEFINITIONS

    defs = {"accuracy": "Top-1 accuracy of the final model on the test set.", **METRIC_DEFINITIONS,
            **SAE_DEFINITIONS}
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
             "ones are computed on the raw features. "
             + ("t-SNE is the paper's own: scikit-learn TSNE(n_components=2, random_state=42)."
                if config.get("tsne") == "sklearn" else
                "t-SNE here is openTSNE (FFT gradients from 10,000 points up, its Barnes–Hut below, "
                "where that is faster), not the paper's scikit-learn TSNE(random_state=42), so the "
                "*_tsne values are comparable in kind, not digit for digit (the paper presets use "
                "scikit-learn's)."), "def"),
        para(_subset_statement(config, meta), "note") if config.get("pool_size") or
        config.get("candidates") else "",
        para(_sae_statement(config, metrics), "note") if config.get("sae_recipe") else "",
    )
    rows = []
    for key in defs:
        if key not in metrics["baseline"]:
            continue
        cells = [esc(pm(metrics[n].get(key), metrics[n].get(key + "_std"))) for n in names]
        rows.append([label(key), *cells])
    side = section("Baseline and strategies side by side (mean ± std over seeds)",
                   table(["measure", *names], rows, raw=True),
                   definitions({k: v for k, v in defs.items() if k in metrics["baseline"]},
                               "definitions of the measures"))
    # an image-folder tree is matched by its folder's name (meta "dataset"), e.g. a cifar10/ tree
    data_key = meta.get("dataset") if config["dataset"] == "image-folder" else config["dataset"]
    ref_rows = [(ds, key, al, base) for (ds, key), (al, base) in PAPER.items() if ds == data_key]
    paper = section("The paper's published numbers (for comparison)",
                    table(["data set", "measure", "active learning", "baseline"], ref_rows)
                    if ref_rows else para("The paper published numbers for CIFAR-10 and Tiny "
                                          "ImageNet only."))
    rounds = _rounds_section(config, meta, metrics)
    figs = section("Figures", *[figure(fig_dir / f, c) for f, c in figures])
    return page("superlens — active learning and superposition",
                [verdict_section(metrics), curves_section(config, metrics), intro, side, paper,
                 figs, rounds, run_info(config, meta)])


def _sae_statement(config: dict, metrics: dict) -> str:
    """How the sparse-autoencoder measure was fitted, in words (config.json's sae_recipe)."""
    r = config["sae_recipe"]
    where = ("every final model's feature layer and last conv block, and every round's feature layer"
             if config.get("sae") == "rounds" else "every final model's feature layer and last conv "
             "block")
    b = metrics.get("baseline", {})
    steps, batch = b.get("sae_steps"), b.get("sae_batch")
    ran = (f" On the feature layer that came to {steps:.0f} steps × {batch:.0f} rows."
           if isinstance(steps, (int, float)) and isinstance(batch, (int, float)) else "")
    from superlens.measures.sae import SAERecipe

    own = SAERecipe().max_gflop
    arch = r.get("architecture", "sparse autoencoder")
    text = (f"Sparse-autoencoder measure (sae_*) on {where}: {arch}; dictionary "
            f"{r['dict_multiple']:g} × the layer's width, activations scaled to unit RMS norm, "
            f"{r['steps']} Adam steps × {r['batch_size']} rows, {len(r.get('seeds', []))} autoencoder "
            f"seeds, at most {r['max_gflop']:g} GFLOP per autoencoder (sae_gflop).{ran}")
    if r["max_gflop"] < own:
        text += (f" That cap is below the recipe's own ({own:g} GFLOP), chosen for speed: on wide "
                 "layers F is less converged than under the calibrated recipe, so compare F within "
                 f"this run only (--sae-gflop {own:g} for the full recipe).")
    return text


def _subset_statement(config: dict, meta: dict) -> str:
    parts = []
    if config.get("pool_size"):
        parts.append(f"The training set is a class-balanced random subset of {config['pool_size']:,} "
                     "training images (the same for every seed); the baseline trains on all of it "
                     "and the strategies query from it.")
    if config.get("candidates"):
        parts.append(f"Each round scores a fresh random subset of {config['candidates']:,} unlabelled "
                     "images (the same subset for every strategy at a given seed and round) and "
                     "queries from those.")
    from superlens.active.presets import PRESET_WHY, PRESETS

    name = config.get("preset")
    # a JPEG tree of the preset's data set runs as dataset "image-folder": still the same sizes
    same = lambda k, v: config.get(k) == v or (k == "dataset" and config.get(k) == "image-folder")
    if name in PRESET_WHY and all(same(k, v) for k, v in PRESETS[name].items()
                                  if k not in ("strategies", "seeds", "ensemble", "sae")):
        parts.append("Why this preset is sized as it is: " + " ".join(PRESET_WHY[name]))
    return " ".join(parts)
