"""The paper's claims (arXiv 2412.16168), re-tested on a finished active-learning run, with power.

Each claim is compared per seed (paired: the same seed's models share their initial pool, initial
weights and training draws). For one row (a claim on one measure) the per-seed differences
d_1..d_n give

    effect = mean(d),  s = sd(d),  half-width h = t_{0.975, n-1} * s / sqrt(n)
    interval = effect +- h                                   (95 % Student t, unadjusted)
    p_zero   = two-sided t test of mean(d) = 0
    p_paper  = one-sided t test of "the effect, in the claimed direction, is at least the paper's"
               (only where the paper's own numbers give an effect in the claimed direction)
    p_equiv  = TOST (Schuirmann 1987): max of the one-sided p values of mean(d) <= -delta and
               mean(d) >= +delta; below 0.05 exactly when the 90 % interval lies inside (-delta, +delta)

A row whose differences do not vary over seeds (sd <= no_variation_tol(d), float rounding) gets
no interval and no p values: a t test divides by the seeds' spread, so with none the interval has
width 0 and every test is decided (p = 0 or 1) whatever the true noise; identical differences over
a few seeds happen with coarse measures (accuracy on a small test set moves in steps of 1 / n_test).
The row is "inconclusive", with the reason.

delta is the smallest effect of interest of the measure, fixed in the config (the preset) before
the run. The p values of a claim's rows are Holm-adjusted over those rows (each kind of test
separately), and the row's word follows VERDICT_RULE at alpha = 0.05. A claim's verdict is the word
of its primary measure, named in the config before the run; the other rows are shown with their
own words. A row on a measure that is not validated (the sparse-autoencoder F while its validation
has not passed) is shown but takes no part in the Holm family and never decides.

Power: seeds_needed is the smallest n whose interval half-width, with this run's s and the
Bonferroni level alpha / m of the claim's m rows (the strictest level Holm can apply), is at most
delta / 2. An interval narrower than delta cannot hold both 0 and a point outside (-delta, delta),
so at that n the row cannot come out "inconclusive" if s stays as measured.

    rows = claim_rows(per_seed, per_seed_rounds, strategies, seeds, sae_validated=False,
                      delta=DEFAULT_DELTA, primary=DEFAULT_PRIMARY)
    verdicts_json(rows, ...)["claims"]   # claim id -> verdict word of its primary row
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

ALPHA = 0.05
WORDS = ("reproduced", "contradicted", "smaller than the paper's", "no effect larger than Δ",
         "inconclusive")

VERDICT_RULE = (
    "Effect = mean over seeds of the paired per-seed difference (same seed: same initial pool, "
    "initial weights and training draws); interval = 95 % Student t over seeds. Three tests per "
    "row, their p values Holm-adjusted over the rows of the claim (each test separately), at "
    "α = 0.05: against 0 (two-sided t), against the paper's own effect where its numbers give one "
    "in the claimed direction (one-sided t: smaller than the paper's), and against the smallest "
    "effect of interest Δ fixed in the preset before the run (equivalence, TOST: both one-sided "
    "tests at 5 %, i.e. the 90 % interval inside ±Δ). Words, in this order: 'reproduced' when the "
    "effect differs from 0 on the side the paper claims and is not smaller than the paper's; "
    "'smaller than the paper's' when it is on the claimed side (or not distinguishable from 0) but "
    "significantly smaller than the paper's effect, and not shown to lie within ±Δ; 'contradicted' "
    "when it differs from 0 on the other side; 'no effect larger than Δ' when it does not differ "
    "from 0 and lies within ±Δ; 'inconclusive' otherwise (or fewer than 2 seeds, or the measure "
    "was not computed, or the per-seed differences do not vary: with no seed-to-seed variation "
    "the t interval has width 0 and there is no noise estimate to test against), with the seeds "
    "that would settle it where the spread gives one. A claim's verdict is its "
    "primary measure's word; the primary measure of every claim is named in the preset before the "
    "run. Rows on measures that are not validated are shown but take no part.")

# each word's rule, as the page lists them (VERDICT_RULE in one paragraph; verdict_word in code)
WORD_RULES = {
    "reproduced": "the effect differs from 0 (Holm-adjusted two-sided t, α = 0.05) on the side the "
                  "paper claims, and is not significantly smaller than the paper's effect",
    "smaller than the paper's": "the effect is significantly smaller than the paper's effect "
                                "(one-sided t, Holm) and either differs from 0 on the claimed side "
                                "or is neither distinguishable from 0 nor shown within ±Δ",
    "contradicted": "the effect differs from 0 on the side opposite to the paper's claim",
    "no effect larger than Δ": "the effect does not differ from 0 and TOST shows it lies within "
                               "±Δ (the 90 % interval inside ±Δ, Holm)",
    "inconclusive": "none of the above (or fewer than 2 seeds, or the measure was not computed, or "
                    "no seed-to-seed variation: identical per-seed differences give the t test no "
                    "noise estimate, so no interval and no p value); the seeds needed say how many "
                    "would settle it",
}

SEEDS_NEEDED_RULE = (
    "Seeds needed: the smallest n at which the interval half-width t_{1-α/2m, n-1} · s / √n (s: "
    "this run's sd of the per-seed differences; m: the claim's deciding rows, Bonferroni, the "
    "strictest level Holm applies) is at most Δ/2. An interval narrower than Δ cannot hold both 0 "
    "and an effect beyond ±Δ, so at that n the row cannot be 'inconclusive' if s stays as measured. "
    "None where the differences do not vary (s gives no estimate).")

# The paper's effects (arXiv 2412.16168, p. 5, CIFAR-10, ResNet-18): active learning minus its
# baseline, the only comparison the paper reports. (measure -> (effect, how it was derived)).
PAPER_EFFECTS = {
    "cifar10": {
        "cos_mean": (0.927 - 0.885, "0.927 (active learning) − 0.885 (baseline)"),
        "silhouette_tsne": (0.189 - 0.212, "0.189 (active learning) − 0.212 (baseline)"),
        "davies_bouldin_tsne": (1.542 - 1.551, "1.542 (active learning) − 1.551 (baseline): the "
                                "paper's own numbers go against its claim (lower is better "
                                "clustering)"),
    },
    "tiny-imagenet": {
        "cos_mean": (0.254 - 0.310, "0.254 (active learning) − 0.310 (baseline)"),
        "silhouette_tsne": (-0.399 - -0.348, "−0.399 (active learning) − −0.348 (baseline)"),
    },
}

# Smallest effects of interest (absolute, in the measure's unit), when the config names none.
# Chosen as about a quarter of the paper's cos_mean effect and of the typical spread between
# strategies in earlier CPU runs; a preset states its own.
DEFAULT_DELTA = {
    "accuracy": 0.01, "cos_mean": 0.01, "silhouette_tsne": 0.01, "davies_bouldin_tsne": 0.05,
    "silhouette_raw": 0.01, "davies_bouldin_raw": 0.1, "neuron_abs_cos_mean": 0.01,
    "selectivity_mean": 0.01, "effective_rank": 1.0, "participation_ratio": 1.0,
    "sae_features": 5.0, "sae_conv_features": 5.0,
}
# claim id -> its primary measure, when the config names none
DEFAULT_PRIMARY = {
    "accuracy": "accuracy", "more-superposition": "cos_mean", "overlap": "cos_mean",
    "clustering": "silhouette_tsne", "coreset-less": "cos_mean", "rounds": "cos_mean",
}

MEASURE_TEXT = {
    "accuracy": "test accuracy (accuracy)",
    "sae_features": "sparse-autoencoder feature count F, feature layer (sae_features)",
    "sae_conv_features": "sparse-autoencoder feature count F, last conv block (sae_conv_features)",
    "cos_mean": "mean sample × sample cosine (cos_mean, the paper's measure)",
    "silhouette_tsne": "silhouette of the t-SNE map (silhouette_tsne, the paper's measure)",
    "davies_bouldin_tsne": "Davies–Bouldin of the t-SNE map (davies_bouldin_tsne, the paper's measure)",
    "silhouette_raw": "silhouette of the raw features (silhouette_raw, sound)",
    "davies_bouldin_raw": "Davies–Bouldin of the raw features (davies_bouldin_raw, sound)",
    "neuron_abs_cos_mean": "mean |cosine| between neurons' activation profiles (neuron_abs_cos_mean, "
                           "sound)",
    "selectivity_mean": "mean class selectivity of the neurons (selectivity_mean, sound)",
    "effective_rank": "effective rank of the features (effective_rank, sound)",
    "participation_ratio": "participation ratio of the features (participation_ratio, sound)",
}

# The sound measures' side for "more superposition". Neurons that share many features fire together
# (higher |cos| between activation profiles) and answer to several classes (lower selectivity);
# more features than dimensions spread the features' variance over more directions (higher
# effective rank and participation ratio). The paper states no direction for these.
SUPERPOSITION_SIDE = {"cos_mean": +1, "neuron_abs_cos_mean": +1, "selectivity_mean": -1,
                      "effective_rank": +1, "participation_ratio": +1, "sae_features": +1,
                      "sae_conv_features": +1}


# ---------------------------------------------------------------------------------------------
# the statistics of one row (pure functions of per-seed values)


def _finite(diffs) -> np.ndarray:
    return np.asarray([v for v in diffs if v is not None and math.isfinite(v)], dtype=float)


# sd at or below this share of the largest |difference| (or this absolute floor, for differences
# that are all ~0) is float rounding, not seed-to-seed variation: measures are float32/float64
# computations whose rounding is ~1e-16..1e-7 relative, seed-to-seed spreads ~1e-3 and up
NO_VARIATION_REL = 1e-9
NO_VARIATION_ABS = 1e-12


def no_variation_tol(d) -> float:
    """The sd [scalar] at or below which per-seed values d [n] count as not varying:
    max(NO_VARIATION_REL * max|d_i|, NO_VARIATION_ABS)."""
    d = np.asarray(d, dtype=float)
    return max(NO_VARIATION_REL * float(np.max(np.abs(d))) if d.size else 0.0, NO_VARIATION_ABS)


def no_variation(diffs) -> bool:
    """True when >= 2 finite per-seed values have sd <= no_variation_tol: a t interval and t tests
    on them would have width 0 and p values of 0 or 1 whatever the true noise."""
    d = _finite(diffs)
    return d.size >= 2 and float(d.std(ddof=1)) <= no_variation_tol(d)


def t_interval(diffs, level: float = 0.95) -> dict:
    """Mean and Student-t interval of per-seed values [n]; n < 2, or values that do not vary
    (no_variation), give no interval. Returns {"effect", "ci_low", "ci_high", "n_seeds", "sd",
    "half_width", "no_variation"}."""
    d = _finite(diffs)
    n = int(d.size)
    none = {"ci_low": None, "ci_high": None, "half_width": None, "no_variation": False}
    if n == 0:
        return {"effect": None, "n_seeds": 0, "sd": None, **none}
    mean = float(d.mean())
    if n < 2:
        return {"effect": mean, "n_seeds": n, "sd": None, **none}
    sd = float(d.std(ddof=1))
    if no_variation(d):
        return {"effect": mean, "n_seeds": n, "sd": sd, **none, "no_variation": True}
    from scipy.stats import t

    half = float(t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n))
    return {"effect": mean, "ci_low": mean - half, "ci_high": mean + half, "n_seeds": n, "sd": sd,
            "half_width": half, "no_variation": False}


def _t_sf(mean: float, sd: float, n: int, mu0: float) -> float:
    """P(T >= t) of the one-sided t test of H0: mean <= mu0 (small: mean is above mu0); sd > 0
    (the callers return None for values that do not vary)."""
    from scipy.stats import t

    return float(t.sf((mean - mu0) / (sd / math.sqrt(n)), n - 1))


def p_zero(diffs) -> float | None:
    """Two-sided one-sample t test of mean = 0 (None below 2 seeds or without variation)."""
    d = _finite(diffs)
    if d.size < 2 or no_variation(d):
        return None
    m, s, n = float(d.mean()), float(d.std(ddof=1)), int(d.size)
    return float(min(1.0, 2 * min(_t_sf(m, s, n, 0.0), _t_sf(-m, s, n, 0.0))))


def p_smaller_than(diffs, paper: float, direction: int) -> float | None:
    """One-sided t test of H0: direction * mean >= direction * paper (small p: the effect, on the
    claimed side, is smaller than the paper's). None below 2 seeds or without variation."""
    d = _finite(diffs) * direction
    if d.size < 2 or no_variation(d):
        return None
    m, s, n = float(d.mean()), float(d.std(ddof=1)), int(d.size)
    return _t_sf(-m, s, n, -direction * paper)


def p_equivalence(diffs, delta: float) -> float | None:
    """TOST of H0: |mean| >= delta: the larger of the one-sided p values of mean <= -delta and
    mean >= delta (small p: the effect lies within +-delta). None below 2 seeds, without variation
    or without delta."""
    d = _finite(diffs)
    if d.size < 2 or no_variation(d) or delta is None or not delta > 0:
        return None
    m, s, n = float(d.mean()), float(d.std(ddof=1)), int(d.size)
    return max(_t_sf(m, s, n, -delta), _t_sf(-m, s, n, -delta))


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p values (Holm 1979); None entries are left out of the family.
    adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)) over the sorted p values."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        out[i] = running
    return out


def seeds_needed(sd: float | None, delta: float | None, m: int = 1, alpha: float = ALPHA,
                 n_max: int = 10_000) -> int | None:
    """Smallest n >= 2 with t_{1 - alpha/(2m), n-1} * sd / sqrt(n) <= delta / 2 (None: no sd, sd 0
    (no estimate of the noise) or no delta; n_max + 1 when even n_max is not enough)."""
    if sd is None or not sd > 0 or delta is None or not delta > 0:
        return None
    from scipy.stats import t

    q = 1 - alpha / (2 * max(m, 1))

    def ok(n: int) -> bool:
        return t.ppf(q, n - 1) * sd / math.sqrt(n) <= delta / 2

    if ok(2):
        return 2
    lo, hi = 2, 4
    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > n_max:
            return n_max + 1 if not ok(n_max) else _bisect(ok, lo, n_max)
    return _bisect(ok, lo, hi)


def _bisect(ok, lo: int, hi: int) -> int:
    """Smallest n in (lo, hi] with ok(n), given not ok(lo) and ok(hi) (ok is monotone)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def verdict_word(effect: float | None, direction: int, p0: float | None, p_paper: float | None,
                 p_eq: float | None, alpha: float = ALPHA) -> str:
    """The row's word from its (Holm-adjusted) p values; VERDICT_RULE in code.
    direction +1: the paper claims a positive effect; -1: negative."""
    if effect is None or p0 is None:
        return "inconclusive"
    side = effect * direction
    smaller = p_paper is not None and p_paper < alpha
    equivalent = p_eq is not None and p_eq < alpha
    if p0 < alpha and side > 0:
        return "smaller than the paper's" if smaller else "reproduced"
    if p0 < alpha and side < 0:
        return "contradicted"
    if equivalent:
        return "no effect larger than Δ"
    if smaller:
        return "smaller than the paper's"
    return "inconclusive"


# ---------------------------------------------------------------------------------------------
# rows of a run


def _paired(a: dict, b: dict, key: str, seeds: list[str]) -> list[float | None]:
    out = []
    for s in seeds:
        va, vb = a.get(s, {}).get(key), b.get(s, {}).get(key)
        ok = isinstance(va, (int, float)) and isinstance(vb, (int, float))
        out.append(float(va) - float(vb) if ok else None)
    return out


def _round_change(per_seed_rounds: dict, strategy: str, key: str,
                  seeds: list[str]) -> list[float | None]:
    """Last round minus first round of ``key`` for one strategy, per seed."""
    out = []
    for s in seeds:
        rs = per_seed_rounds.get(strategy, {}).get(s) or []
        first, last = (rs[0].get(key), rs[-1].get(key)) if len(rs) >= 2 else (None, None)
        ok = isinstance(first, (int, float)) and isinstance(last, (int, float))
        out.append(float(last) - float(first) if ok else None)
    return out


def _new_row(claim: str, text: str, key: str, direction: int, comparison: str, a: str, b: str,
             diffs: list, validated: bool, delta: float | None,
             paper: tuple[float, str] | None) -> dict:
    ci = t_interval(diffs)
    r: dict[str, Any] = {
        "claim": claim, "text": text, "measure": key, "measure_text": MEASURE_TEXT.get(key, key),
        "direction": "higher" if direction > 0 else "lower", "sign": direction,
        "comparison": comparison, "a": a, "b": b, **ci, "validated": validated, "delta": delta,
        "per_seed": [None if v is None else float(v) for v in diffs],
        "p_zero": p_zero(diffs), "p_equiv": p_equivalence(diffs, delta),
        "paper_effect": None, "paper_source": None, "p_paper": None}
    if paper is not None:
        r["paper_effect"], r["paper_source"] = float(paper[0]), paper[1]
        if paper[0] * direction > 0:  # only an effect on the claimed side can be "not reached"
            r["p_paper"] = p_smaller_than(diffs, paper[0], direction)
    return r


def claim_rows(per_seed: dict[str, dict[str, dict]], per_seed_rounds: dict[str, dict[str, list]],
               strategies: list[str], seeds: list[str], sae_validated: bool | None,
               delta: dict[str, float] | None = None, primary: dict[str, str] | None = None,
               dataset: str | None = None) -> list[dict]:
    """One dict per (claim, measure) row, Holm-adjusted and worded. per_seed[model][seed] = that
    model's final measures; per_seed_rounds[strategy][seed] = its rounds (dicts with the per-round
    measures). delta: measure -> smallest effect of interest (DEFAULT_DELTA for those missing);
    primary: claim -> primary measure (DEFAULT_PRIMARY); dataset: which of PAPER_EFFECTS applies."""
    delta = {**DEFAULT_DELTA, **(delta or {})}
    primary = {**DEFAULT_PRIMARY, **(primary or {})}
    paper = PAPER_EFFECTS.get(dataset or "", {})
    al = "least-confidence" if "least-confidence" in strategies else next(
        (s for s in strategies if s != "random"), None)
    rows: list[dict] = []

    def validated(key: str) -> bool:
        return bool(sae_validated) if key.startswith("sae_") else True

    def pair(claim: str, text: str, key: str, direction: int, a: str, b: str, comparison: str,
             extra: tuple[str, str] | None, with_paper: bool) -> None:
        diffs = _paired(per_seed.get(a, {}), per_seed.get(b, {}), key, seeds)
        r = _new_row(claim, text, key, direction, comparison, a, b, diffs, validated(key),
                     delta.get(key), paper.get(key) if with_paper else None)
        if extra is not None:
            r["vs_baseline"] = t_interval(_paired(per_seed.get(extra[0], {}),
                                                  per_seed.get(extra[1], {}), key, seeds))
            # the control's own change from the baseline: does random sampling show it too?
            r["random_vs_baseline"] = t_interval(_paired(per_seed.get("random", {}),
                                                         per_seed.get(extra[1], {}), key, seeds))
        rows.append(r)

    sound = ("neuron_abs_cos_mean", "selectivity_mean", "effective_rank", "participation_ratio",
             "sae_features", "sae_conv_features")
    if al is not None and "random" in strategies:
        vs_random = f"{al} − random, equal labels"
        pair("accuracy", "Precondition (not a claim of the paper): the active-learning strategy "
             "beats random sampling on accuracy at equal labels", "accuracy", +1, al, "random",
             vs_random, (al, "baseline"), False)
        more = "Active learning gives more superposition than the baseline"
        for key in ("cos_mean", *sound):
            pair("more-superposition", more, key, SUPERPOSITION_SIDE[key], al, "random", vs_random,
                 (al, "baseline"), True)
        over = "Active learning gives higher feature overlap (mean cosine)"
        for key in ("cos_mean", "neuron_abs_cos_mean"):
            pair("overlap", over, key, +1, al, "random", vs_random, (al, "baseline"), True)
        clus = "Active learning gives worse clustering"
        for key, d in (("silhouette_tsne", -1), ("davies_bouldin_tsne", +1),
                       ("silhouette_raw", -1), ("davies_bouldin_raw", +1)):
            pair("clustering", clus, key, d, al, "random", vs_random, (al, "baseline"), True)
    if "coreset" in strategies and al is not None and al != "coreset":
        for key in ("cos_mean", *sound):
            pair("coreset-less", "Diversity sampling (core-set) gives less superposition than "
                 "uncertainty sampling", key, -SUPERPOSITION_SIDE[key], "coreset", al,
                 f"coreset − {al}, equal labels", None, False)
    if al is not None:
        for key in ("cos_mean", "effective_rank", "participation_ratio", "sae_features"):
            d_al = _round_change(per_seed_rounds, al, key, seeds)
            r = _new_row("rounds", "More rounds reduce superposition", key,
                         -SUPERPOSITION_SIDE[key], f"{al}: last round − first round", al, al, d_al,
                         validated(key), delta.get(key), None)
            r["measure_text"] += " per round"
            d_rand = _round_change(per_seed_rounds, "random", key, seeds)
            if any(v is not None for v in d_rand):
                r["vs_random"] = t_interval([x - y if x is not None and y is not None else None
                                             for x, y in zip(d_al, d_rand)])
            rows.append(r)
    return decide(rows, primary)


# where the row's measure is the SAE's: --sae off fits none, --sae final only the final models
SAE_NOT_COMPUTED = " (the SAE measure: --sae final fits the final models, --sae rounds every round)"

NO_VARIATION_NOTE = ("no seed-to-seed variation: the per-seed differences are identical, so the t "
                     "test has no noise estimate (no interval, no p value)")


def decide(rows: list[dict], primary: dict[str, str] | None = None,
           alpha: float = ALPHA) -> list[dict]:
    """Holm-adjust each kind of p value over the deciding rows of every claim, then word every row
    and give it its half-width and seeds needed. In place; returns ``rows``.

    A row decides when its measure is validated and was computed on >= 2 seeds whose differences
    vary (t_interval's no_variation: no interval, no p values, "inconclusive" with the reason)."""
    primary = {**DEFAULT_PRIMARY, **(primary or {})}
    for claim in dict.fromkeys(r["claim"] for r in rows):
        own = [r for r in rows if r["claim"] == claim]
        family = [r for r in own if r["validated"] and r.get("p_zero") is not None]
        m = max(len(family), 1)
        for kind in ("p_zero", "p_paper", "p_equiv"):
            for r, p in zip(family, holm([r.get(kind) for r in family])):
                r[kind + "_holm"] = p
        for r in own:
            r["primary"] = r["measure"] == primary.get(claim)
            r["holm_rows"] = len(family)
            r["seeds_needed"] = (None if r.get("no_variation") else
                                 seeds_needed(r.get("sd"), r.get("delta"), m, alpha))
            if r["effect"] is None:
                r["verdict"], r["note"] = "inconclusive", "measure not computed" + (
                    SAE_NOT_COMPUTED if r["measure"].startswith("sae_") else "")
                continue
            if r.get("no_variation"):
                r["verdict"], r["note"] = "inconclusive", NO_VARIATION_NOTE
                continue
            if r in family:
                r["verdict"] = verdict_word(r["effect"], r["sign"], r.get("p_zero_holm"),
                                            r.get("p_paper_holm"), r.get("p_equiv_holm"), alpha)
            else:  # shown with its own unadjusted word
                r["verdict"] = verdict_word(r["effect"], r["sign"], r.get("p_zero"),
                                            r.get("p_paper"), r.get("p_equiv"), alpha)
                r["note"] = ("measure not validated: shown, does not decide" if not r["validated"]
                             else "fewer than 2 seeds")
    return rows


def claim_verdicts(rows: list[dict]) -> dict[str, str]:
    """claim id -> the word of its primary row (inconclusive when that row does not decide)."""
    out: dict[str, str] = {}
    for claim in dict.fromkeys(r["claim"] for r in rows):
        prim = [r for r in rows if r["claim"] == claim and r.get("primary")]
        r = prim[0] if prim else None
        deciding = r is not None and r["validated"] and r.get("p_zero") is not None
        out[claim] = r["verdict"] if deciding else "inconclusive"
    return out


def claim_power(rows: list[dict]) -> dict[str, dict]:
    """claim id -> {"measure", "n_seeds", "half_width", "delta", "seeds_needed", "no_variation"} of
    its primary row."""
    out: dict[str, dict] = {}
    for r in rows:
        if r.get("primary") and r["claim"] not in out:
            out[r["claim"]] = {k: r.get(k) for k in ("measure", "n_seeds", "half_width", "delta",
                                                     "seeds_needed", "no_variation")}
    return out


def verdicts_json(rows: list[dict], sae_validated: bool | None, sae_note: str,
                  delta: dict[str, float] | None = None,
                  primary: dict[str, str] | None = None) -> dict:
    """metrics.json["verdicts"]: the rule, the claims' words and power, and every row."""
    return {"rule": VERDICT_RULE, "seeds_needed_rule": SEEDS_NEEDED_RULE, "alpha": ALPHA,
            "delta": {**DEFAULT_DELTA, **(delta or {})},
            "primary": {**DEFAULT_PRIMARY, **(primary or {})},
            "sae_validated": sae_validated, "sae_validation": sae_note,
            "claims": claim_verdicts(rows), "power": claim_power(rows), "rows": rows}


__all__ = ["ALPHA", "WORDS", "WORD_RULES", "VERDICT_RULE", "SEEDS_NEEDED_RULE", "PAPER_EFFECTS",
           "DEFAULT_DELTA", "DEFAULT_PRIMARY", "NO_VARIATION_NOTE", "SAE_NOT_COMPUTED", "no_variation",
           "no_variation_tol", "t_interval", "p_zero", "p_smaller_than", "p_equivalence", "holm",
           "seeds_needed", "verdict_word", "claim_rows", "decide", "claim_verdicts", "claim_power",
           "verdicts_json"]


def check_plan(delta: dict[str, float] | None, primary: dict[str, str] | None) -> None:
    """The config's verdict plan is usable: known measures, delta > 0, known claims. One
    ConfigError line naming the field otherwise."""
    from superlens.errors import ConfigError

    for k, v in (delta or {}).items():
        if k not in DEFAULT_DELTA:
            raise ConfigError(f"delta: unknown measure {k!r} (known: {', '.join(DEFAULT_DELTA)})")
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ConfigError(f"delta.{k} = {v!r}: must be a number > 0")
    for c, k in (primary or {}).items():
        if c not in DEFAULT_PRIMARY:
            raise ConfigError(f"primary: unknown claim {c!r} (known: {', '.join(DEFAULT_PRIMARY)})")
        if k not in DEFAULT_DELTA:
            raise ConfigError(f"primary.{c} = {k!r}: unknown measure (known: "
                              f"{', '.join(DEFAULT_DELTA)})")
