"""t-SNE, spectrum, selectivity and the summary of all measures."""
import json
import math

import numpy as np
import pytest
import sklearn.metrics as skm
import torch

from superlens.measures import (METRIC_DEFINITIONS, class_selectivity, effective_rank,
                                feature_measures, participation_ratio, sample_cosine_stats,
                                tsne_embedding, tsne_method)

torch.set_num_threads(1)


def blobs(n_per=40, d=10, gap=30.0, seed=0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(size=(n_per, d)), rng.normal(size=(n_per, d)) + gap])
    return x, np.repeat([0, 1], n_per)


# ---- t-SNE
@pytest.mark.parametrize("method", [None, "fft"])  # None: Barnes-Hut at 80 points
def test_tsne_shape_determinism_and_separation(method):
    x, lab = blobs()
    e1 = tsne_embedding(x, seed=3, method=method)
    e2 = tsne_embedding(torch.from_numpy(x), seed=3, method=method)
    assert e1.shape == (80, 2) and np.isfinite(e1).all()
    np.testing.assert_array_equal(e1, e2)
    assert skm.silhouette_score(e1, lab) > 0.5


def test_tsne_method_rule_and_bad_method():
    assert tsne_method(9_999) == "bh" and tsne_method(10_000) == "fft"
    with pytest.raises(ValueError, match="method"):
        tsne_embedding(blobs()[0], method="exact")


def test_tsne_tiny_n_clips_perplexity():
    x, _ = blobs(n_per=6, d=3)    # 12 points < 3 * 30 + 1: perplexity becomes 11 / 3
    assert tsne_embedding(x, seed=0).shape == (12, 2)
    with pytest.raises(ValueError):
        tsne_embedding(x[:3])


# ---- spectrum
def test_isotropic_gaussian_uses_all_dimensions():
    d = 8
    x = np.random.default_rng(0).normal(size=(20000, d))
    # singular values all ~ sqrt(N) (spread ~ sqrt(d / N) = 2 %), so both measures ~ d
    assert effective_rank(x) == pytest.approx(d, rel=0.01)
    assert participation_ratio(x) == pytest.approx(d, rel=0.01)


def test_rank_one_is_one():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 1)) * rng.normal(size=(1, 12)) + rng.normal(size=12)  # offset: centred away
    assert effective_rank(x) == pytest.approx(1.0, abs=1e-6)
    assert participation_ratio(x) == pytest.approx(1.0, abs=1e-9)


def test_spectrum_closed_form_diagonal_example():
    # rows (a,0), (-a,0), (0,b), (0,-b): mean 0, X^T X = diag(2a^2, 2b^2), so s = sqrt2 (a, b).
    # a=1, b=2: p = (1/3, 2/3), erank = exp(-(1/3 ln 1/3 + 2/3 ln 2/3)) = 3 / 2^(2/3);
    # lambda proportional to (1, 4): PR = 25 / 17
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    assert effective_rank(x) == pytest.approx(3 / 2 ** (2 / 3))
    assert participation_ratio(x) == pytest.approx(25 / 17)


def test_spectrum_constant_input_is_zero():
    x = np.ones((5, 3))
    assert effective_rank(x) == 0.0 and participation_ratio(x) == 0.0


# ---- selectivity
def test_class_selectivity_hand_worked():
    # 3 classes, 2 samples each. Class means per neuron (worked by hand):
    # n0: (2, 0, 0)  -> (2 - 0) / (2 + 0) = 1
    # n1: (1, 1, 1)  -> 0
    # n2: (1, 3, 2)  -> top 3, rest 1.5: 1.5 / 4.5 = 1/3
    # n3: dead       -> 0
    # n4: (-1, 1, 0) -> negative: shifted by 1 to (0, 2, 1): top 2, rest 0.5: 1.5 / 2.5 = 0.6
    lab = np.array([0, 0, 1, 1, 2, 2])
    x = np.array([
        [3, 1, 0, 0, -2],
        [1, 1, 2, 0, 0],
        [0, 1, 3, 0, 1],
        [0, 1, 3, 0, 1],
        [0, 1, 2, 0, 0],
        [0, 1, 2, 0, 0],
    ], dtype=float)
    want = [1.0, 0.0, 1 / 3, 0.0, 0.6]
    si = class_selectivity(torch.from_numpy(x), lab, 3)
    assert si.shape == (5,)
    np.testing.assert_allclose(si.numpy(), want, atol=1e-9)
    # a fourth class with no samples has no mean: it is left out, nothing changes
    np.testing.assert_allclose(class_selectivity(x, lab, 4).numpy(), want, atol=1e-9)


def test_class_selectivity_bad_labels():
    with pytest.raises(ValueError):
        class_selectivity(np.ones((3, 2)), [0, 1, 5], 3)
    with pytest.raises(ValueError):
        class_selectivity(np.ones((3, 2)), [1, 1, 1], 3)   # one class present


# ---- summary
def features_and_labels(n=150, d=16, k=3, seed=0):
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, k, n)
    x = np.maximum(rng.normal(size=(k, d))[lab] * 2 + rng.normal(size=(n, d)), 0.0)
    x[:, 0] = 0.0   # one dead neuron
    return x.astype(np.float32), lab


def test_feature_measures_keys_values_and_json():
    x, lab = features_and_labels()
    scalars, arrays = feature_measures(torch.from_numpy(x), torch.from_numpy(lab), n_classes=3,
                                       seed=1, tsne_points=100)
    assert list(scalars) == list(METRIC_DEFINITIONS)
    assert set(scalars) == {
        "cos_mean", "cos_std", "cos_p05", "cos_p50", "cos_p95", "silhouette_tsne",
        "davies_bouldin_tsne", "silhouette_raw", "davies_bouldin_raw", "effective_rank",
        "participation_ratio", "neuron_cos_mean", "neuron_abs_cos_mean", "dead_neurons",
        "selectivity_mean"}
    json.dumps(scalars, allow_nan=False)
    assert all(isinstance(v, (int, float)) for v in scalars.values())
    # the paper's cosine includes the diagonal
    ref = sample_cosine_stats(x, device="cpu")
    assert scalars["cos_mean"] == pytest.approx(ref["mean"])
    assert scalars["cos_p05"] <= scalars["cos_p50"] <= scalars["cos_p95"]
    assert scalars["silhouette_raw"] == pytest.approx(skm.silhouette_score(x, lab), abs=1e-6)
    assert scalars["dead_neurons"] == 1
    # t-SNE on a seeded subset of 100 points; its scores are the embedding's
    emb, tl, ti = arrays["tsne_embedding"], arrays["tsne_labels"], arrays["tsne_indices"]
    assert emb.shape == (100, 2) and len(set(ti)) == 100
    np.testing.assert_array_equal(tl, lab[ti])
    assert scalars["silhouette_tsne"] == pytest.approx(skm.silhouette_score(emb, tl), abs=1e-6)
    assert scalars["davies_bouldin_tsne"] == pytest.approx(skm.davies_bouldin_score(emb, tl))
    assert arrays["cos_hist_counts"].sum() == 150 ** 2


def test_feature_measures_without_tsne():
    x, lab = features_and_labels(n=60)
    scalars, arrays = feature_measures(x, lab, n_classes=3, with_tsne=False)
    assert scalars["silhouette_tsne"] is None and scalars["davies_bouldin_tsne"] is None
    assert "tsne_embedding" not in arrays
    assert math.isfinite(scalars["effective_rank"])


def test_metric_definitions_say_which_protocol():
    for key, text in METRIC_DEFINITIONS.items():
        assert ("Paper's definition" in text) != ("Sound definition" in text), key
    assert "Paper's" in METRIC_DEFINITIONS["silhouette_tsne"]
    assert "Sound" in METRIC_DEFINITIONS["silhouette_raw"]


def test_class_mean_cosine_closed_form():
    from superlens.measures.selectivity import class_mean_cosine

    # class means (1, 0) and (1, 1): cos = 1 / sqrt(2); a third class of mean 0 has no direction
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.5, 1.5], [1.5, 0.5], [0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1, 2])
    assert class_mean_cosine(x, y, 3) == pytest.approx(2 ** -0.5)
    assert math.isnan(class_mean_cosine(x[:2], y[:2], 3))
