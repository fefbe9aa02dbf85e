"""t-SNE, spectrum, selectivity and the summary of all measures."""
import json
import math

import numpy as np
import pytest
import sklearn.metrics as skm
import torch

from superlens.measures import METRIC_DEFINITIONS, feature_measures, sample_cosine_stats

torch.set_num_threads(1)


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
