"""The exact silhouette against scikit-learn, and the Davies-Bouldin wrapper."""
import numpy as np
import pytest
import sklearn.metrics as skm
import torch

from superlens.measures.clustering import davies_bouldin_score, silhouette_score

torch.set_num_threads(1)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_silhouette_equals_sklearn_random(seed):
    rng = np.random.default_rng(seed)
    n, d, k = int(rng.integers(30, 150)), int(rng.integers(2, 20)), int(rng.integers(2, 7))
    x = rng.normal(size=(n, d)) * rng.uniform(0.1, 10) + rng.normal(size=d) * 5
    lab = rng.integers(0, k, n)
    if seed % 2:
        lab[0] = k           # singleton clusters: s = 0 for them, as in scikit-learn
        lab[1] = k + 1
    if seed == 3:
        x[5] = x[6]          # duplicate points
    ref = skm.silhouette_score(x, lab)
    for chunk in (None, 16):  # 16: many tiles, ragged edges
        # float32 tiles (the CPU default) and float64 tiles (the CUDA default)
        assert silhouette_score(x, lab, chunk=chunk, device="cpu") == pytest.approx(ref, abs=1e-6)
        got64 = silhouette_score(x, lab, chunk=chunk, device="cpu", float64=True)
        assert got64 == pytest.approx(ref, abs=1e-10)


@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_silhouette_tight_clusters_far_apart(offset):
    # |x|^2 + |y|^2 - 2 x.y cancels badly in float32 for tight clusters far apart (distances
    # within a cluster ~0.06, between ~100: a plain float32 version is off by ~3e-5 here); the
    # float32 path works on class residuals and must stay within 1e-6 of scikit-learn (float64)
    rng = np.random.default_rng(11)
    lab = rng.integers(0, 4, 400)
    x = rng.normal(size=(4, 16))[lab] * 30 + rng.normal(size=(400, 16)) * 0.01 + offset
    ref = skm.silhouette_score(x, lab)
    assert silhouette_score(x, lab, chunk=64, device="cpu") == pytest.approx(ref, abs=1e-6)


def test_silhouette_two_blobs_and_labels_of_any_type():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(size=(40, 3)), rng.normal(size=(30, 3)) + 20.0])
    lab = np.array(["cat"] * 40 + ["dog"] * 30)
    ref = skm.silhouette_score(x, lab)
    got = silhouette_score(torch.from_numpy(x).float(), lab, device="cpu")
    assert ref > 0.85                       # well separated: near 1
    assert got == pytest.approx(ref, abs=1e-6)   # float32 input, as features usually are


def test_silhouette_all_singletons_but_one_pair_hand_worked():
    # points 0, 1, 10 on a line; clusters {0, 1} and {10}. For x=0: a = 1, b = 10 -> 0.9;
    # x=1: a = 1, b = 9 -> 8/9; x=10 is a singleton -> 0. Mean (0.9 + 8/9) / 3
    x = np.array([[0.0], [1.0], [10.0]])
    got = silhouette_score(x, [0, 0, 1], device="cpu")
    assert got == pytest.approx((0.9 + 8 / 9) / 3)


@pytest.mark.parametrize("fn", [silhouette_score, davies_bouldin_score])
def test_degenerate_inputs_raise(fn):
    x = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match="distinct labels"):
        fn(x, np.zeros(10))                   # one cluster
    with pytest.raises(ValueError, match="distinct labels"):
        fn(x, np.arange(10))                  # every point its own cluster
    with pytest.raises(ValueError, match="at least 2 samples"):
        fn(x[:1], np.zeros(1))
    with pytest.raises(ValueError, match="shape"):
        fn(x, np.zeros(9))


def test_davies_bouldin_equals_sklearn():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(90, 4))
    lab = rng.integers(0, 3, 90)
    assert davies_bouldin_score(torch.from_numpy(x), lab) == pytest.approx(
        skm.davies_bouldin_score(x, lab))
