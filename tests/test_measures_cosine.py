"""Sample x sample and neuron x neuron cosine statistics against dense numpy computations."""
import numpy as np
import pytest
import torch

from superlens.measures.cosine import (histogram_percentiles, neuron_cosine_stats,
                                       sample_cosine_stats)

torch.set_num_threads(1)


def dense_cosine(x: np.ndarray) -> np.ndarray:
    """Reference: the full [N, N] matrix, zero rows giving 0."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    u = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    return np.clip(u @ u.T, -1.0, 1.0)


def features(n=53, d=9, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) + 0.5      # a mean offset, so the cosines are skewed
    x[3] = 0.0                             # a zero row: its cosines are 0, not NaN
    x[10] = x[11] * 2.5                    # parallel rows: cosine exactly 1
    return x


@pytest.mark.parametrize("include_diagonal", [True, False])
@pytest.mark.parametrize("chunk", [7, 2048])   # 7: many tiles, a ragged last one
def test_sample_cosine_matches_dense(include_diagonal, chunk):
    x = features()
    c = dense_cosine(x)
    vals = c.ravel() if include_diagonal else c[~np.eye(len(x), dtype=bool)]
    st = sample_cosine_stats(torch.from_numpy(x), chunk=chunk, bins=200,
                             include_diagonal=include_diagonal, device="cpu")
    assert st["count"] == vals.size
    assert st["zero_rows"] == 1
    assert st["mean"] == pytest.approx(vals.mean(), abs=1e-12)
    assert st["std"] == pytest.approx(vals.std(), abs=1e-12)
    assert st["min"] == pytest.approx(vals.min(), abs=1e-12)
    assert st["max"] == pytest.approx(vals.max(), abs=1e-12)
    ref_counts, ref_edges = np.histogram(vals, bins=200, range=(-1.0, 1.0))
    np.testing.assert_allclose(st["hist_edges"], ref_edges)
    np.testing.assert_array_equal(st["hist_counts"], ref_counts)


def test_diagonal_changes_the_statistics():
    # the diagonal (52 ones, one 0 for the zero row) must pull the mean towards 1
    x = features()
    with_d = sample_cosine_stats(x, device="cpu")
    without = sample_cosine_stats(x, include_diagonal=False, device="cpu")
    n = len(x)
    assert with_d["mean"] * n * n == pytest.approx(without["mean"] * n * (n - 1) + (n - 1))


def test_percentiles_within_resolution():
    x = features(n=200, d=6, seed=1)
    vals = dense_cosine(x).ravel()
    st = sample_cosine_stats(x, bins=200, device="cpu")
    assert st["percentile_resolution"] == pytest.approx(0.01)
    for q, v in st["percentiles"].items():
        # 40,000 entries, so neighbouring order statistics are far closer than a bin
        assert abs(v - np.percentile(vals, q)) <= st["percentile_resolution"] + 1e-3, q


def test_histogram_percentiles_hand_worked():
    # counts [0, 4, 4, 2] on edges 0..4: total 10, the median target 5 lies in bin 2 (cum 4 -> 8),
    # a quarter of the way in: 2 + (5 - 4) / 4 = 2.25. q = 95: target 9.5 in bin 3 (8 -> 10): 3.75
    p = histogram_percentiles(np.array([0, 4, 4, 2]), np.arange(5.0), qs=(50, 95))
    assert p[50] == pytest.approx(2.25)
    assert p[95] == pytest.approx(3.75)


def test_all_zero_features_give_zero_cosine():
    st = sample_cosine_stats(np.zeros((5, 3)), device="cpu")
    assert st["mean"] == 0.0 and st["std"] == 0.0 and st["zero_rows"] == 5


def test_bad_arguments():
    with pytest.raises(ValueError):
        sample_cosine_stats(np.ones((1, 3)), include_diagonal=False, device="cpu")
    with pytest.raises(ValueError):
        sample_cosine_stats(np.ones((4, 3)), chunk=0, device="cpu")


def test_neuron_cosine_matches_dense_and_drops_dead():
    rng = np.random.default_rng(2)
    x = np.maximum(rng.normal(size=(40, 7)), 0.0)
    x[:, 2] = 0.0                                      # dead neuron
    x[:, 5] = -x[:, 4]                                 # anti-parallel pair: cos -1
    st = neuron_cosine_stats(torch.from_numpy(x), bins=50)
    live = np.delete(x, 2, axis=1)
    c = dense_cosine(live.T)
    off = c[~np.eye(6, dtype=bool)]
    assert st["dead_neurons"] == 1 and st["live_neurons"] == 6
    assert st["mean"] == pytest.approx(off.mean(), abs=1e-12)
    assert st["abs_mean"] == pytest.approx(np.abs(off).mean(), abs=1e-12)
    assert st["std"] == pytest.approx(off.std(), abs=1e-12)
    assert st["hist_counts"].sum() == 30
    np.testing.assert_array_equal(st["hist_counts"], np.histogram(off, 50, (-1, 1))[0])


def test_neuron_cosine_orthogonal_hand_worked():
    # two neurons firing on disjoint samples: cosine 0; a third parallel to the first: cosine 1.
    # Off-diagonal entries: (0,1)=0, (0,2)=1, (1,2)=0, each twice -> mean 1/3
    x = np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]])
    st = neuron_cosine_stats(x)
    assert st["mean"] == pytest.approx(1 / 3)
    assert st["abs_mean"] == pytest.approx(1 / 3)


def test_neuron_cosine_too_few_live_neurons_is_nan():
    st = neuron_cosine_stats(np.array([[1.0, 0.0], [2.0, 0.0]]))
    assert st["dead_neurons"] == 1 and np.isnan(st["mean"])
