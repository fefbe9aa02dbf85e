"""Planted features (superlens.measures.planted): the truth F_true by hand, and the generator's
statistics against the spec."""
import math

import pytest
import torch

from superlens.measures.planted import (PlantedSpec, directions, f_true, feature_recovery,
                                        marginal_frequencies, planted_activations, true_masses)

torch.set_num_threads(1)


def test_truth_equal_masses_is_k():
    # every p_k = 3 / 12 and one magnitude law: q uniform over 12 -> exp(log 12) = 12
    assert f_true(PlantedSpec(n=8, k=12, active=3.0)) == pytest.approx(12.0)
    # co-occurrence of equal frequencies leaves every marginal at p: still K
    assert f_true(PlantedSpec(n=8, k=12, active=3.0, cooccur=0.7)) == pytest.approx(12.0)


def test_truth_unequal_masses_by_hand():
    # power law, alpha = 1, K = 3: w = (1, 1/2, 1/3), sum 11/6; q = (6/11, 3/11, 2/11)
    q = [6 / 11, 3 / 11, 2 / 11]
    h = -sum(v * math.log(v) for v in q)
    spec = PlantedSpec(n=4, k=3, active=1.0, frequency="power", alpha=1.0)
    # H = 6/11 log(11/6) + 3/11 log(11/3) + 2/11 log(11/2) = 0.3306 + 0.3543 + 0.3099 = 0.9949
    assert f_true(spec) == pytest.approx(math.exp(h))
    assert f_true(spec) == pytest.approx(2.7045, abs=1e-4)
    # masses: p_k E[m] with U(0, 1) magnitudes (mean 1/2) and active = 1: p = q
    torch.testing.assert_close(true_masses(spec), torch.tensor(q, dtype=torch.float64) / 2)


def test_cooccurrence_marginals_and_capping_by_hand():
    # K = 2, power alpha = 1, active = 1.5: p = 1.5 * (2/3, 1/3) = (1, 0.5); with c = 0.5 feature 1
    # takes feature 0's draw half the time: 0.5 * 1 + 0.5 * 0.5 = 0.75
    spec = PlantedSpec(n=4, k=2, active=1.5, frequency="power", cooccur=0.5)
    torch.testing.assert_close(marginal_frequencies(spec), torch.tensor([1.0, 0.75], dtype=torch.float64))
    q = torch.tensor([1.0, 0.75]) / 1.75  # -> exp(H) by hand
    assert f_true(spec) == pytest.approx(float(torch.exp(-(q * q.log()).sum())), rel=1e-6)
    # capping: active = 2 of K = 2 with uniform frequency -> both always on
    torch.testing.assert_close(marginal_frequencies(PlantedSpec(n=4, k=2, active=2.0)),
                               torch.ones(2, dtype=torch.float64))


def test_generator_matches_its_spec():
    spec = PlantedSpec(n=16, k=8, active=2.0, frequency="power", magnitude="exponential", seed=3)
    x, info = planted_activations(spec, rows=40_000, chunk=7_000)
    d = info["directions"]
    assert x.shape == (40_000, 16)
    torch.testing.assert_close(d.norm(dim=1), torch.ones(8))
    # the coefficients are recovered exactly by least squares (K <= N): their means are the masses
    a = torch.linalg.lstsq(d.T.double(), x.T.double()).solution.T  # [rows, K]
    assert float(a.min()) > -1e-4
    torch.testing.assert_close(a.mean(0), info["masses"], atol=0.02, rtol=0.05)
    # reproducible from the seed; another seed differs
    torch.testing.assert_close(planted_activations(spec, rows=100)[0], planted_activations(spec, rows=100)[0])
    assert not torch.equal(directions(spec), directions(PlantedSpec(n=16, k=8, active=2.0, seed=4)))


def test_clustered_directions_overlap():
    spec = PlantedSpec(n=256, k=64, directions="clustered", clusters=4, overlap=0.5, seed=0)
    d = directions(spec).double()
    cos = d @ d.T
    member = torch.arange(64) % 4
    same = (member[:, None] == member[None]) & ~torch.eye(64, dtype=torch.bool)
    assert float(cos[same].mean()) == pytest.approx(0.5, abs=0.06)
    assert abs(float(cos[~same & ~torch.eye(64, dtype=torch.bool)].mean())) < 0.06


@pytest.mark.parametrize("bad", [dict(k=0), dict(active=0.0), dict(active=9.0), dict(frequency="zipf"),
                                 dict(magnitude="cauchy"), dict(directions="grid"), dict(overlap=1.0),
                                 dict(cooccur=1.5)])
def test_spec_refuses_bad_fields(bad):
    with pytest.raises(ValueError, match="PlantedSpec"):
        PlantedSpec(**{"n": 4, "k": 8, **bad})


def test_sae_counts_a_tiny_planted_case():
    """6 random unit directions in R^12, ~1.5 active per row: the frozen kind of SAE (BatchTopK, unit
    decoder rows) reads F within 15 % of F_true = 6, and within 15 % of the unequal-mass truth
    (power-law frequencies: F_true = exp(H(q)) < 6). A recipe that counted latents, the width or the
    dictionary would read 12, 48 or more."""
    from superlens.measures.sae import SAERecipe, sae_measure

    r = SAERecipe(k=1, steps=600, batch_size=256, dict_multiple=4, lr=5e-3, progress=False,
                  fvu_more=0.0)
    for freq in ("uniform", "power"):
        spec = PlantedSpec(n=12, k=6, active=1.5, frequency=freq, seed=1)
        x, info = planted_activations(spec, rows=6000)
        m = sae_measure(x, r, seeds=(0,))
        assert m["sae_features"] == pytest.approx(info["f_true"], rel=0.15), (freq, m, info["f_true"])
    assert info["f_true"] < 5.5  # the power law's truth is not K


def test_recovery_of_an_exact_dictionary_and_of_half_of_one():
    """The planted directions themselves, shuffled among extra latents that never fired: MCC 1, all
    recovered. Half of them dead: MCC and recovered 0.5 (a feature left without a live latent counts
    0, whatever the dead latent's direction). A latent along -d_k carries nothing of feature k."""
    dirs = directions(PlantedSpec(n=8, k=6, seed=3))
    extra = torch.nn.functional.normalize(torch.randn(10, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    dec = torch.cat([extra, dirs.flip(0)])
    mass = torch.cat([torch.zeros(10), torch.rand(6) + 0.1])
    assert feature_recovery(dec, mass, dirs) == pytest.approx({"mcc": 1.0, "recovered": 1.0})
    half = mass.clone()
    half[10:13] = 0.0  # the decoder rows of dirs[5], dirs[4], dirs[3] never fired
    rec = feature_recovery(dec, half, dirs)
    assert rec["recovered"] == pytest.approx(0.5)
    # the three dead ones are matched to what is left alive: nothing (only 3 live latents)
    assert rec["mcc"] == pytest.approx(0.5)
    flipped = feature_recovery(-dirs, torch.ones(6), dirs)
    assert flipped["recovered"] == 0.0 and flipped["mcc"] < 0.5
    assert feature_recovery(dirs, torch.zeros(6), dirs) == {"mcc": 0.0, "recovered": 0.0}


def test_recovery_is_one_to_one_and_matches_brute_force():
    """One latent between two features is matched to one of them only; on random cases the
    Hungarian matching's MCC equals the best of every one-to-one assignment (brute force)."""
    from itertools import permutations

    d = torch.eye(3)
    both = torch.nn.functional.normalize(torch.tensor([[1.0, 1.0, 0.0]]), dim=1)
    rec = feature_recovery(both, torch.ones(1), d[:2])
    assert rec["mcc"] == pytest.approx(math.sqrt(0.5) / 2) and rec["recovered"] == 0.0
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        dirs = torch.nn.functional.normalize(torch.randn(3, 4, generator=g), dim=1)
        dec = torch.nn.functional.normalize(torch.randn(5, 4, generator=g), dim=1)
        cos = (dirs.double() @ dec.double().T).clamp_min(0)
        best = max(sum(float(cos[i, j]) for i, j in enumerate(p)) for p in permutations(range(5), 3))
        assert feature_recovery(dec, torch.ones(5), dirs)["mcc"] == pytest.approx(best / 3)


def test_the_sae_latents_are_the_planted_features():
    """On the tiny planted case above (6 directions in R^12), the fitted latents are the features
    themselves: every direction has a live latent within cosine 0.9 (MCC > 0.95)."""
    from superlens.measures.sae import SAERecipe, activation_scale, fit_saes, sae_stats

    r = SAERecipe(k=1, steps=600, batch_size=256, dict_multiple=4, lr=5e-3, progress=False)
    x, info = planted_activations(PlantedSpec(n=12, k=6, active=1.5, seed=1), rows=6000)
    x = x / activation_scale(x, r.scale)
    st = sae_stats(fit_saes(x, r, (0,)), x)
    rec = feature_recovery(st["decoder"][0], st["mass"][0], info["directions"])
    assert rec["recovered"] == 1.0 and rec["mcc"] > 0.95, rec
