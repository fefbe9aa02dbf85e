"""The paper's claims (arXiv 2412.16168), re-tested on a finished active-learning run.

Each claim is compared per seed (paired: the same seed's models share their initial pool, initial
weights and training draws), and the effect is the mean of the per-seed differences with a 95 %
Student-t interval over seeds:

    effect = mean_s (a_s - b_s),  interval = effect +- t_{0.975, n-1} * sd_s(a_s - b_s) / sqrt(n)

Verdict rule (VERDICT_RULE, printed on the report): the primary comparison decides. "reproduced"
when the whole interval lies on the side the paper claims, "contradicted" when it lies wholly on
the other side, "inconclusive" when it contains 0 (or fewer than 2 seeds, or the measure is
missing). A claim's verdict counts only validated measures; a row on a measure that has not been
validated (the sparse-autoencoder F while its validation has not passed) is shown but never decides.

    rows = claim_rows(per_seed, per_seed_rounds, strategies, seeds, sae_validated=False)
"""
from __future__ import annotations

import math

import numpy as np

VERDICT_RULE = (
    "Effect = mean over seeds of the paired per-seed difference (same seed: same initial pool, "
    "initial weights and training draws), with a 95 % Student-t interval over seeds. The primary "
    "comparison decides: 'reproduced' when the whole interval lies on the side the paper claims, "
    "'contradicted' when it lies wholly on the other side, 'inconclusive' when it contains 0, when "
    "there are fewer than 2 seeds, or when the measure was not computed. The primary comparison is "
    "the active-learning strategy against random sampling at equal labels (the control: the "
    "baseline saw every label, so a difference from it mixes the strategy with the label count); "
    "for 'more rounds' it is the change from the first to the last round. A row whose measure is "
    "not validated is shown but does not decide; a claim is reproduced (contradicted) only when "
    "every deciding row is, and inconclusive otherwise.")


def t_interval(diffs) -> dict:
    """Mean and 95 % Student-t interval of per-seed values [n]; n < 2 gives no interval."""
    d = np.asarray([v for v in diffs if v is not None and math.isfinite(v)], dtype=float)
    n = int(d.size)
    if n == 0:
        return {"effect": None, "ci_low": None, "ci_high": None, "n_seeds": 0}
    mean = float(d.mean())
    if n < 2:
        return {"effect": mean, "ci_low": None, "ci_high": None, "n_seeds": n}
    from scipy.stats import t

    half = float(t.ppf(0.975, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return {"effect": mean, "ci_low": mean - half, "ci_high": mean + half, "n_seeds": n}


def verdict_word(ci: dict, direction: int) -> str:
    """direction +1: the paper claims a positive effect; -1: negative."""
    lo, hi = ci.get("ci_low"), ci.get("ci_high")
    if lo is None or hi is None:
        return "inconclusive"
    lo, hi = (lo, hi) if direction > 0 else (-hi, -lo)
    if lo > 0:
        return "reproduced"
    if hi < 0:
        return "contradicted"
    return "inconclusive"


def _paired(a: dict, b: dict, key: str, seeds: list[str]) -> list[float | None]:
    out = []
    for s in seeds:
        va, vb = a.get(s, {}).get(key), b.get(s, {}).get(key)
        ok = isinstance(va, (int, float)) and isinstance(vb, (int, float))
        out.append(float(va) - float(vb) if ok else None)
    return out


# (claim id, claim text, measure, direction the paper claims for "active learning minus other")
MEASURE_TEXT = {
    "sae_features": "sparse-autoencoder feature count F, feature layer (sae_features)",
    "sae_conv_features": "sparse-autoencoder feature count F, last conv block (sae_conv_features)",
    "cos_mean": "mean sample × sample cosine (cos_mean, the paper's measure)",
    "silhouette_tsne": "silhouette of the t-SNE map (silhouette_tsne, the paper's measure)",
    "davies_bouldin_tsne": "Davies–Bouldin of the t-SNE map (davies_bouldin_tsne, the paper's measure)",
    "silhouette_raw": "silhouette of the raw features (silhouette_raw)",
}


def claim_rows(per_seed: dict[str, dict[str, dict]], per_seed_rounds: dict[str, dict[str, list]],
               strategies: list[str], seeds: list[str], sae_validated: bool | None) -> list[dict]:
    """One dict per (claim, measure) row. per_seed[model][seed] = that model's final measures;
    per_seed_rounds[strategy][seed] = its rounds (dicts with the per-round measures)."""
    al = "least-confidence" if "least-confidence" in strategies else next(
        (s for s in strategies if s != "random"), None)
    rows: list[dict] = []

    def validated(key: str) -> bool:
        return bool(sae_validated) if key.startswith("sae_") else True

    def row(claim: str, text: str, key: str, direction: int, a: str, b: str, primary: str,
            extra: tuple[str, str] | None) -> None:
        ci = t_interval(_paired(per_seed.get(a, {}), per_seed.get(b, {}), key, seeds))
        r = {"claim": claim, "text": text, "measure": key, "measure_text": MEASURE_TEXT.get(key, key),
             "direction": "higher" if direction > 0 else "lower", "comparison": primary,
             "a": a, "b": b, **ci, "validated": validated(key)}
        if extra is not None:
            ea, eb = extra
            r["vs_baseline"] = t_interval(_paired(per_seed.get(ea, {}), per_seed.get(eb, {}), key,
                                                  seeds))
        computed = ci["effect"] is not None
        r["verdict"] = verdict_word(ci, direction) if computed else "inconclusive"
        if not computed:
            r["note"] = "measure not computed"
        elif not r["validated"]:
            r["note"] = "measure not validated: shown, does not decide"
        rows.append(r)

    if al is not None and "random" in strategies:
        vs_random = f"{al} − random, equal labels"
        for key in ("sae_features", "cos_mean"):
            row("more-superposition", "Active learning gives more superposition than the baseline",
                key, +1, al, "random", vs_random, (al, "baseline"))
        row("overlap", "Active learning gives higher feature overlap (mean cosine)", "cos_mean", +1,
            al, "random", vs_random, (al, "baseline"))
        row("clustering", "Active learning gives worse clustering", "silhouette_tsne", -1, al,
            "random", vs_random, (al, "baseline"))
        row("clustering", "Active learning gives worse clustering", "davies_bouldin_tsne", +1, al,
            "random", vs_random, (al, "baseline"))
    if "coreset" in strategies and al is not None and al != "coreset":
        for key in ("sae_features", "cos_mean"):
            row("coreset-less", "Diversity sampling (core-set) gives less superposition than "
                "uncertainty sampling", key, -1, "coreset", al, f"coreset − {al}, equal labels", None)
    if al is not None:
        for key in ("cos_mean", "sae_features"):
            rows.append(_rounds_row(per_seed_rounds, al, key, seeds, validated(key)))
    return rows


def _rounds_row(per_seed_rounds: dict, al: str, key: str, seeds: list[str], ok: bool) -> dict:
    """More rounds reduce superposition: last round minus first for ``al``, and that change minus
    random's (the control: what adding randomly chosen labels does)."""
    def change(strategy: str) -> list[float | None]:
        out = []
        for s in seeds:
            rs = per_seed_rounds.get(strategy, {}).get(s) or []
            first, last = (rs[0].get(key), rs[-1].get(key)) if len(rs) >= 2 else (None, None)
            ok_ = isinstance(first, (int, float)) and isinstance(last, (int, float))
            out.append(float(last) - float(first) if ok_ else None)
        return out

    d_al = change(al)
    ci = t_interval(d_al)
    d_rand = change("random")
    r = {"claim": "rounds", "text": "More rounds reduce superposition", "measure": key,
         "measure_text": MEASURE_TEXT.get(key, key) + " per round", "direction": "lower",
         "comparison": f"{al}: last round − first round", "a": al, "b": al, **ci, "validated": ok}
    if any(v is not None for v in d_rand):
        r["vs_random"] = t_interval([a - b if a is not None and b is not None else None
                                     for a, b in zip(d_al, d_rand)])
    computed = ci["effect"] is not None
    r["verdict"] = verdict_word(ci, -1) if computed else "inconclusive"
    if not computed:
        r["note"] = "measure not computed per round"
    elif not ok:
        r["note"] = "measure not validated: shown, does not decide"
    return r


def claim_verdicts(rows: list[dict]) -> dict[str, str]:
    """claim id -> verdict: every deciding (validated, computed) row agrees, else inconclusive."""
    out: dict[str, str] = {}
    for claim in dict.fromkeys(r["claim"] for r in rows):
        words = [r["verdict"] for r in rows if r["claim"] == claim and r["validated"]
                 and r["effect"] is not None]
        out[claim] = words[0] if words and all(w == words[0] for w in words) else "inconclusive"
    return out


def verdicts_json(rows: list[dict], sae_validated: bool | None, sae_note: str) -> dict:
    return {"rule": VERDICT_RULE, "sae_validated": sae_validated, "sae_validation": sae_note,
            "claims": claim_verdicts(rows), "rows": rows}


__all__ = ["VERDICT_RULE", "t_interval", "verdict_word", "claim_rows", "claim_verdicts",
           "verdicts_json"]
