"""Closed forms of superlens.toy.theory against Monte Carlo, quadrature and brute-force minimisation."""
import math

import numpy as np
import pytest
from scipy import integrate, optimize

from superlens.measures.dimensionality import welch_bound, welch_bound_mean_square
from superlens.toy import theory


def test_relu_moments_match_monte_carlo():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 2_000_000)
    r = np.maximum(x, 0)
    # E[ReLU(x)^2] = 1/6, E[ReLU(x)^4] = 1/10 (sd of the estimates ~2e-4 and ~1.5e-4)
    assert theory.relu_moment_active(2) == pytest.approx(1 / 6)
    assert np.mean(r**2) == pytest.approx(theory.relu_moment_active(2), abs=1e-3)
    assert np.mean(r**4) == pytest.approx(theory.relu_moment_active(4), abs=1e-3)


def test_naive_closed_forms():
    # 100 -> 10: 90 ignored features of 100, each 1/6 -> 0.15 (the report measured 0.1496)
    assert theory.naive_mse_active_mean(100, 10) == pytest.approx(0.15)
    per = theory.naive_mse_active(100, 10)
    assert np.all(per[:10] == 0) and np.allclose(per[10:], 1 / 6)
    assert theory.naive_mse_all_mean(100, 10, 0.02) == pytest.approx(0.02 * 0.15)
    assert theory.naive_mse_active_mean(10, 20) == 0.0  # more neurons than features: all kept
    # Lq loss of the naive model vs Monte Carlo on the sparse distribution
    rng = np.random.default_rng(1)
    n, h, p, q = 20, 5, 0.1, 4.0
    x = np.where(rng.random((200_000, n)) < p, rng.uniform(-1, 1, (200_000, n)), 0.0)
    y = np.zeros_like(x)
    y[:, :h] = np.maximum(x[:, :h], 0)
    mc = np.mean(np.abs(y - np.maximum(x, 0)) ** q)
    assert theory.naive_lq_loss(n, h, p, q) == pytest.approx(mc, rel=0.03)


def test_attenuated_isolated_mse_matches_quadrature():
    g, s = 0.43, -0.05
    f = lambda t: 0.5 * ((g * t - t) ** 2 if t > 0 else (s * t) ** 2)  # noqa: E731  density 1/2
    ref = integrate.quad(f, -1, 0)[0] + integrate.quad(f, 0, 1)[0]
    assert theory.attenuated_isolated_mse(g, s) == pytest.approx(ref, rel=1e-10)
    assert theory.attenuated_isolated_mse(1.0) == 0.0


def test_random_abs_cos_closed_form():
    # hand-worked: d = 2 -> 2/pi (E|cos theta| for uniform theta), d = 3 -> 1/2 (cos uniform on [-1, 1])
    assert theory.random_abs_cos_mean(2) == pytest.approx(2 / math.pi)
    assert theory.random_abs_cos_mean(3) == pytest.approx(0.5)
    assert theory.random_abs_cos_mean(10) == pytest.approx(0.2587, abs=1e-4)


@pytest.mark.parametrize("d", [3, 10])
def test_random_abs_cos_matches_monte_carlo(d):
    rng = np.random.default_rng(d)
    u = rng.standard_normal((400_000, d))
    v = rng.standard_normal((400_000, d))
    cos = (u * v).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
    assert np.mean(np.abs(cos)) == pytest.approx(theory.random_abs_cos_mean(d), abs=3e-3)
    assert np.mean(cos**2) == pytest.approx(theory.random_cos_sq_mean(d), abs=3e-3)


def test_welch_bound_attained_by_equiangular_frames():
    # simplex: d + 1 unit vectors in R^d with pairwise cos -1/d, an equiangular tight frame
    for d in (2, 3, 7):
        E = np.eye(d + 1) - 1.0 / (d + 1)  # centred basis vectors span a d-dim subspace
        V = E / np.linalg.norm(E, axis=1, keepdims=True)
        cos = V @ V.T
        off = cos[~np.eye(d + 1, dtype=bool)]
        assert np.allclose(np.abs(off), 1 / d)
        assert welch_bound(d + 1, d) == pytest.approx(1 / d)
        assert welch_bound_mean_square(d + 1, d) == pytest.approx(np.mean(off**2))
    # Mercedes-Benz frame: 3 vectors at 120 degrees in R^2, |cos| = 1/2
    assert welch_bound(3, 2) == pytest.approx(0.5)
    assert welch_bound(5, 10) == 0.0  # orthonormal sets exist


def test_welch_bound_holds_for_random_vectors():
    rng = np.random.default_rng(3)
    N, d = 100, 10
    V = rng.standard_normal((N, d))
    V /= np.linalg.norm(V, axis=1, keepdims=True)
    off = (V @ V.T)[~np.eye(N, dtype=bool)]
    assert np.max(np.abs(off)) >= welch_bound(N, d)
    assert np.mean(off**2) >= welch_bound_mean_square(N, d)


@pytest.mark.parametrize("q", [1.5, 2.0, 3.0, 4.0])
@pytest.mark.parametrize("K", [0.0, 0.01, 0.3, 1.0, 5.0])
def test_optimal_gain_matches_brute_force(q, K):
    res = optimize.minimize_scalar(lambda g: theory.optimal_gain_objective(g, K, q), bounds=(0, 1),
                                   method="bounded", options={"xatol": 1e-10})
    assert theory.optimal_gain(K, q) == pytest.approx(res.x, abs=1e-5)


def test_optimal_gain_edge_cases():
    assert theory.optimal_gain(0.0, 4.0) == 1.0  # no leak: full gain
    assert theory.optimal_gain(np.inf, 4.0) == 0.0  # zero self-gain
    assert theory.optimal_gain(1.0, 2.0) == pytest.approx(0.5)  # L2: 1 / (1 + K)
    assert theory.optimal_gain(0.5, 1.0) == 1.0 and theory.optimal_gain(2.0, 1.0) == 0.0
    arr = theory.optimal_gain(np.array([0.0, 1.0]), 2.0)
    assert arr.shape == (2,) and np.allclose(arr, [1.0, 0.5])


def test_first_order_interference_hand_example():
    # hand-worked: n = 2, G+ = [[1, 0.2], [0.1, 1]], G- = [[0, -0.3], [0, 0]], p = 0.06
    # feature 0 receives from 1: 0.2^2 + 0.3^2 = 0.13; feature 1 from 0: 0.1^2 = 0.01; times p/6 = 0.01
    gp = np.array([[1.0, 0.2], [0.1, 1.0]])
    gn = np.array([[0.0, -0.3], [0.0, 0.0]])
    out = theory.first_order_interference_mse(gp, gn, 0.06)
    assert np.allclose(out, [0.0013, 0.0001])


@pytest.mark.parametrize("p, n", [(0.003, 100), (0.02, 100), (0.3, 20), (1.0, 5), (0.05, 1)])
def test_eval_samples_for_gives_each_feature_min_active(p, n):
    """Against the exact binomial: at N every feature has >= 2000 active samples with probability
    >= 0.99 (union bound over n), and N is not wasteful: at 0.97 N the per-feature guarantee at that
    same level fails."""
    from scipy.stats import binom

    from superlens.toy.theory import eval_samples_for

    N = eval_samples_for(p, n)
    alpha = 0.01 / n
    if p == 1.0:
        assert N == 2000
        return
    assert binom.ppf(alpha, N, p) >= 2000
    assert binom.ppf(alpha, int(0.97 * N), p) < 2000
    # the failure probability summed over features, exactly
    assert n * binom.cdf(1999, N, p) <= 0.0101


def test_eval_samples_for_minimum_cap_and_errors():
    from superlens.toy.theory import eval_samples_for

    assert eval_samples_for(0.02, 100, minimum=200_000) == 200_000
    assert eval_samples_for(1e-4, 100, cap=1_000_000) == 1_000_000
    assert eval_samples_for(0.003, 100) > 40_000 * 15  # the examples' 40,000 gave ~120 per feature
    assert eval_samples_for(0.01, 1000) > eval_samples_for(0.01, 10)  # more features, more margin
    for bad in (dict(p=0.0, n_features=5), dict(p=1.5, n_features=5), dict(p=0.1, n_features=0),
                dict(p=0.1, n_features=5, confidence=1.0)):
        with pytest.raises(ValueError):
            eval_samples_for(**bad)
