"""The verdict rule of the active-learning study (superlens.active.verdicts): the t interval, the paired
effect per seed, and which rows decide a claim."""
import numpy as np
import pytest


def test_verdict_rule_and_interval():
    from superlens.active.verdicts import claim_rows, claim_verdicts, t_interval, verdict_word

    ci = t_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, n 3: half width t_{0.975,2} / sqrt(3)
    assert ci["effect"] == 2.0 and ci["n_seeds"] == 3
    assert ci["ci_high"] - 2.0 == pytest.approx(4.302652729911275 / np.sqrt(3), rel=1e-9)
    assert t_interval([0.5])["ci_low"] is None
    assert verdict_word(ci, +1) == "inconclusive"  # 2 +- 2.48 contains 0
    tight = t_interval([1.0, 1.1, 1.2])
    assert verdict_word(tight, +1) == "reproduced" and verdict_word(tight, -1) == "contradicted"
    # paired per seed: least-confidence's cosine is 0.1 above random's in every seed -> reproduced;
    # the sparse-autoencoder row, not validated, is shown but does not decide
    seeds = ["0", "1", "2"]
    m = lambda c, f: {s: {"cos_mean": c + 0.01 * i, "sae_features": f, "silhouette_tsne": 0.2,
                          "davies_bouldin_tsne": 1.0} for i, s in enumerate(seeds)}
    per_seed = {"baseline": m(0.3, 5.0), "least-confidence": m(0.5, 1.0), "random": m(0.4, 9.0)}
    rows = claim_rows(per_seed, {}, ["least-confidence", "random"], seeds, sae_validated=False)
    overlap = next(r for r in rows if r["claim"] == "overlap")
    assert overlap["effect"] == pytest.approx(0.1) and overlap["verdict"] == "reproduced"
    assert overlap["vs_baseline"]["effect"] == pytest.approx(0.2)
    sae = next(r for r in rows if r["measure"] == "sae_features")
    assert sae["verdict"] == "contradicted" and not sae["validated"]
    claims = claim_verdicts(rows)
    assert claims["more-superposition"] == "reproduced"  # decided by cos_mean alone
    assert claims["clustering"] == "inconclusive" and claims["rounds"] == "inconclusive"
