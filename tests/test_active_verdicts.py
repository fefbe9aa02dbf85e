"""The verdict rule of superlens.active.verdicts and the learning curves of superlens.active.curves,
pinned on hand-made per-seed values (no training)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from superlens.active.curves import curves_json, labels_to_reach, normalised_area
from superlens.active.verdicts import (NO_VARIATION_NOTE, SAE_NOT_COMPUTED, claim_rows,
                                       claim_verdicts, decide, holm, no_variation, p_equivalence,
                                       p_smaller_than, p_zero, seeds_needed, t_interval,
                                       verdict_word, verdicts_json)


def test_interval_and_tests_match_scipy():
    d = [0.012, -0.004, 0.02, 0.007, 0.015, 0.001]
    ci = t_interval(d)
    res = stats.ttest_1samp(d, 0.0)
    lo, hi = res.confidence_interval(0.95)
    assert (ci["ci_low"], ci["ci_high"]) == pytest.approx((lo, hi), rel=1e-12)
    assert ci["half_width"] == pytest.approx((hi - lo) / 2)
    assert p_zero(d) == pytest.approx(res.pvalue, rel=1e-10)
    # smaller than 0.042 on the positive side: one-sided test of mean < 0.042
    less = stats.ttest_1samp(d, 0.042, alternative="less").pvalue
    assert p_smaller_than(d, 0.042, +1) == pytest.approx(less, rel=1e-10)
    # TOST: the larger of the two one-sided p values
    tost = max(stats.ttest_1samp(d, -0.03, alternative="greater").pvalue,
               stats.ttest_1samp(d, 0.03, alternative="less").pvalue)
    assert p_equivalence(d, 0.03) == pytest.approx(tost, rel=1e-10)
    assert t_interval([0.5])["ci_low"] is None and p_zero([0.5]) is None


def test_holm_against_the_textbook_example():
    # p = (0.01, 0.04, 0.03, 0.005), m = 4: sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> monotone
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([None, 0.2]) == [None, 0.2]


def test_seeds_needed_makes_the_interval_narrower_than_delta():
    sd, delta = 0.02, 0.01
    n = seeds_needed(sd, delta)
    half = lambda k: stats.t.ppf(0.975, k - 1) * sd / math.sqrt(k)
    assert half(n) <= delta / 2 < half(n - 1)
    assert seeds_needed(sd, delta, m=5) > n  # Bonferroni level alpha / 5 needs more
    # no sd, or sd 0 (no estimate of the noise): no answer
    assert seeds_needed(None, delta) is None and seeds_needed(0.0, delta) is None


@pytest.mark.parametrize("diffs,direction,paper,delta,word", [
    # clearly positive, the paper's +0.042 inside the interval
    ([0.040, 0.045, 0.043, 0.038, 0.046, 0.041], +1, 0.042, 0.01, "reproduced"),
    # clearly negative where the paper claims positive
    ([-0.02, -0.025, -0.018, -0.022, -0.03, -0.021], +1, 0.042, 0.01, "contradicted"),
    # positive but far below the paper's +0.042
    ([0.010, 0.012, 0.011, 0.009, 0.013, 0.010], +1, 0.042, 0.005, "smaller than the paper's"),
    # around 0, noisy enough that +-delta is not shown, but 0.042 is excluded
    ([0.011, -0.008, 0.02, -0.004, 0.015, 0.0], +1, 0.042, 0.005, "smaller than the paper's"),
    # around 0, tight: inside +-delta
    ([0.001, -0.001, 0.0005, -0.0005, 0.0, 0.0002], +1, 0.042, 0.01, "no effect larger than Δ"),
    # around 0 and wide: nothing excluded
    ([0.05, -0.06, 0.04, -0.03, 0.07, -0.05], +1, 0.042, 0.01, "inconclusive"),
    # a claimed decrease, shown
    ([-0.04, -0.05, -0.045, -0.038, -0.05, -0.042], -1, None, 0.01, "reproduced"),
])
def test_each_verdict_word(diffs, direction, paper, delta, word):
    ci = t_interval(diffs)
    p_pap = p_smaller_than(diffs, paper, direction) if paper is not None else None
    got = verdict_word(ci["effect"], direction, p_zero(diffs), p_pap, p_equivalence(diffs, delta))
    assert got == word


@pytest.mark.parametrize("diffs", [
    [1 / 360] * 3,                         # identical: accuracy on a 360-image test set, 1 image apart
    [0.4 - 0.5, 0.41 - 0.51, 0.42 - 0.52],  # "identical" up to float rounding (sd ~3e-17)
    [0.0, 0.0, 0.0, 0.0],                  # no difference at any seed
])
def test_no_seed_to_seed_variation_is_inconclusive(diffs):
    """A t interval of identical differences has width 0 and would call any nonzero mean
    'reproduced' with p = 0, and 0 'no effect larger than Δ': the guard gives neither."""
    assert no_variation(diffs)
    ci = t_interval(diffs)
    assert ci["no_variation"] and ci["ci_low"] is None and ci["half_width"] is None
    assert ci["effect"] == pytest.approx(float(np.mean(diffs)))
    assert p_zero(diffs) is None and p_equivalence(diffs, 0.01) is None
    assert p_smaller_than(diffs, 0.042, +1) is None
    rows = [{"claim": "c", "measure": "accuracy", "sign": +1, "validated": True, **ci,
             "p_zero": p_zero(diffs), "p_paper": None, "p_equiv": p_equivalence(diffs, 0.01),
             "delta": 0.01},
            {"claim": "c", "measure": "cos_mean", "sign": +1, "validated": True,
             **t_interval([0.01, 0.02, 0.015]), "p_zero": p_zero([0.01, 0.02, 0.015]),
             "p_paper": None, "p_equiv": None, "delta": 0.01}]
    decide(rows, {"c": "accuracy"})
    assert rows[0]["verdict"] == "inconclusive" and rows[0]["note"] == NO_VARIATION_NOTE
    assert rows[0]["seeds_needed"] is None and "p_zero_holm" not in rows[0]
    # the varying row is tested alone: Holm over one row, not two
    assert rows[1]["holm_rows"] == 1 and rows[1]["p_zero_holm"] == pytest.approx(rows[1]["p_zero"])
    assert claim_verdicts(rows) == {"c": "inconclusive"}


def test_small_real_variation_is_still_tested():
    # a spread of 1e-6 on differences of 0.01 is real variation (far above float rounding)
    d = [0.01, 0.010001, 0.009999, 0.0100005]
    assert not no_variation(d) and p_zero(d) < 1e-6
    assert verdict_word(float(np.mean(d)), +1, p_zero(d), None, None) == "reproduced"


def _per_seed(al_cos, rand_cos, n=6, extra=None):
    seeds = [str(i) for i in range(n)]
    mk = lambda vals: {s: {"cos_mean": vals[i], "accuracy": 0.5, "silhouette_tsne": 0.2,
                           "davies_bouldin_tsne": 1.0, **(extra or {})} for i, s in enumerate(seeds)}
    return seeds, {"baseline": mk([0.3] * n), "least-confidence": mk(al_cos), "random": mk(rand_cos)}


def test_claim_rows_pair_by_seed_and_the_primary_decides():
    # least-confidence's cosine is 0.04 +- noise above random's at every seed: reproduced against
    # 0, and +0.042 (the paper's) is not excluded
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.05, 6)
    seeds, per_seed = _per_seed(list(base + 0.042 + rng.normal(0, 0.002, 6)), list(base))
    rows = claim_rows(per_seed, {}, ["least-confidence", "random"], seeds, sae_validated=False,
                      dataset="cifar10")
    over = next(r for r in rows if r["claim"] == "overlap" and r["measure"] == "cos_mean")
    assert over["primary"] and over["effect"] == pytest.approx(0.042, abs=0.003)
    assert over["paper_effect"] == pytest.approx(0.042) and over["verdict"] == "reproduced"
    assert over["vs_baseline"]["effect"] == pytest.approx(float(np.mean(base)) + 0.042 - 0.3, abs=0.003)
    claims = claim_verdicts(rows)
    assert claims["overlap"] == claims["more-superposition"] == "reproduced"
    # accuracy equal at every seed: no seed-to-seed variation, so no test (not "within +-delta")
    acc = next(r for r in rows if r["claim"] == "accuracy")
    assert claims["accuracy"] == "inconclusive" and acc["no_variation"]
    assert acc["note"] == NO_VARIATION_NOTE and acc["p_zero"] is None
    # measures nobody computed are shown, never decide
    sel = next(r for r in rows if r["measure"] == "selectivity_mean")
    assert sel["verdict"] == "inconclusive" and sel["note"] == "measure not computed"
    # an SAE row without values says which --sae setting computes it
    sae = next(r for r in rows if r["claim"] == "rounds" and r["measure"] == "sae_features")
    assert sae["effect"] is None and sae["note"] == "measure not computed" + SAE_NOT_COMPUTED
    # the paper's Davies-Bouldin difference goes against its own claim: no "smaller than" test
    db = next(r for r in rows if r["measure"] == "davies_bouldin_tsne")
    assert db["paper_effect"] < 0 and db["p_paper"] is None


def test_holm_over_a_claims_rows_can_change_a_word():
    """A row significant alone (p ~ 0.03) is not after Holm over several rows with large p."""
    d = [0.01, 0.02, -0.002, 0.015, 0.0, 0.012]
    assert 0.05 / 3 < p_zero(d) < 0.05
    rows = [{"claim": "c", "measure": m, "sign": +1, "validated": True, "effect": float(np.mean(x)),
             "p_zero": p_zero(x), "p_paper": None, "p_equiv": None, "sd": float(np.std(x, ddof=1)),
             "delta": 0.01}
            for m, x in (("cos_mean", d), ("effective_rank", [0.3, -0.2, 0.1, -0.4, 0.2, 0.0]),
                         ("participation_ratio", [0.3, -0.2, 0.1, -0.4, 0.25, 0.0]))]
    decide(rows, {"c": "cos_mean"})
    assert rows[0]["p_zero_holm"] == pytest.approx(3 * rows[0]["p_zero"])
    assert rows[0]["verdict"] == "inconclusive" and rows[0]["primary"]
    assert rows[0]["seeds_needed"] > 6
    assert claim_verdicts(rows) == {"c": "inconclusive"}


def test_unvalidated_rows_do_not_decide_and_json_carries_the_plan():
    rng = np.random.default_rng(1)
    base = rng.normal(0.5, 0.05, 6)
    seeds, per_seed = _per_seed(list(base + 0.05), list(base), extra={"sae_features": 10.0})
    per_seed["random"] = {s: {**v, "sae_features": 50.0 + int(s)}  # varies over seeds
                          for s, v in per_seed["random"].items()}
    rows = claim_rows(per_seed, {}, ["least-confidence", "random"], seeds, sae_validated=False,
                      primary={"more-superposition": "sae_features"})
    sae = next(r for r in rows if r["measure"] == "sae_features" and r["claim"] == "more-superposition")
    assert sae["verdict"] == "contradicted" and not sae["validated"] and "not validated" in sae["note"]
    v = verdicts_json(rows, False, "not validated", primary={"more-superposition": "sae_features"})
    assert v["claims"]["more-superposition"] == "inconclusive"  # its primary does not decide
    assert v["primary"]["more-superposition"] == "sae_features" and v["delta"]["cos_mean"] == 0.01
    assert set(v["power"]["overlap"]) == {"measure", "n_seeds", "half_width", "delta", "seeds_needed",
                                          "no_variation"}


def test_rounds_rows_use_last_minus_first():
    seeds = ["0", "1", "2"]
    drop = [0.1, 0.098, 0.102]
    rounds = {s: [{"cos_mean": 0.5 + i * 0.01}, {"cos_mean": 0.5 + i * 0.01 - drop[i]}] for i, s in
              enumerate(seeds)}
    rows = claim_rows({}, {"least-confidence": rounds}, ["least-confidence"], seeds, False)
    r = next(r for r in rows if r["claim"] == "rounds" and r["measure"] == "cos_mean")
    assert r["effect"] == pytest.approx(-0.1) and r["direction"] == "lower"
    assert r["verdict"] == "reproduced"


def test_learning_curves():
    assert normalised_area([0, 10], [0.2, 0.4]) == pytest.approx(0.3)
    assert normalised_area([0, 10, 30], [0.0, 0.5, 0.5]) == pytest.approx((2.5 + 10) / 30)
    assert labels_to_reach([100, 200, 300], [0.3, 0.4, 0.6], 0.5) == pytest.approx(250)
    assert labels_to_reach([100, 200], [0.3, 0.4], 0.5) is None
    mk = lambda accs: {str(k): [{"labelled": 100 * (r + 1), "accuracy": a + 0.01 * k}
                                for r, a in enumerate(accs)] for k in range(3)}
    c = curves_json({"random": mk([0.3, 0.4, 0.5]), "least-confidence": mk([0.3, 0.5, 0.6])},
                    ["0", "1", "2"])
    lc = c["strategies"]["least-confidence"]
    assert lc["labels_to_match_random"] == pytest.approx(200 + 100 * (0.51 - 0.51) / 0.1)
    assert c["strategies"]["random"]["labels_to_match_random"] == pytest.approx(300)
    # area difference: (0.5 - 0.4) * 200 / 2 / 200 + (0.6 - 0.5) / 2 ... per seed, same every seed
    assert lc["area_minus_random"]["effect"] == pytest.approx(0.075)
    assert lc["points"][1]["accuracy"] == pytest.approx(0.51)
    assert not lc["points"][1]["no_variation"]
    # every seed at the same accuracy (a coarse test set): a point without an interval, said so
    same = {str(k): [{"labelled": 100, "accuracy": 0.5}, {"labelled": 200, "accuracy": 0.6}]
            for k in range(3)}
    p = curves_json({"random": same}, ["0", "1", "2"])["strategies"]["random"]["points"][1]
    assert p["no_variation"] and p["ci_low"] is None and p["accuracy"] == pytest.approx(0.6)


def test_a_bad_verdict_plan_is_one_line(tmp_path):
    from superlens.active.verdicts import check_plan
    from superlens.errors import ConfigError

    with pytest.raises(ConfigError, match=r"delta.cos_mean = -0.1"):
        check_plan({"cos_mean": -0.1}, None)
    with pytest.raises(ConfigError, match="delta: unknown measure 'cosine'"):
        check_plan({"cosine": 0.1}, None)
    with pytest.raises(ConfigError, match="primary: unknown claim 'speed'"):
        check_plan(None, {"speed": "accuracy"})
    check_plan({"cos_mean": 0.02}, {"overlap": "neuron_abs_cos_mean"})
