"""t-SNE embeddings (superlens.measures.tsne): shape, determinism, separation, the method rule."""
import numpy as np
import pytest
import sklearn.metrics as skm
import torch

from superlens.measures import tsne_embedding, tsne_method

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
