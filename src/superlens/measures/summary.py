"""All measures of one model's test-set features, as JSON-ready scalars plus arrays for figures.

The paper's measures are reproduced as its code computed them (sample x sample cosine with the
diagonal; silhouette and Davies-Bouldin of the 2-D t-SNE embedding); the sound ones are computed on
the raw features. METRIC_DEFINITIONS says which is which.
"""
from __future__ import annotations


import numpy as np
import torch

from superlens.measures.clustering import davies_bouldin_score, silhouette_score
from superlens.measures.cosine import neuron_cosine_stats, sample_cosine_stats
from superlens.measures.numeric import json_float
from superlens.measures.selectivity import class_selectivity
from superlens.measures.spectrum import effective_rank, participation_ratio
from superlens.measures.tsne import tsne_embedding

METRIC_DEFINITIONS: dict[str, str] = {
    "cos_mean": "Mean cosine similarity over all N x N pairs of test samples' feature vectors, "
                "diagonal included. Paper's definition (its code; its text says neurons).",
    "cos_std": "Population standard deviation of the same N x N sample cosine entries. "
               "Paper's definition.",
    "cos_p05": "5th percentile of the N x N sample cosine entries, read off a 2000-bin histogram "
               "over [-1, 1] (resolution 0.001). Paper's definition.",
    "cos_p50": "Median of the N x N sample cosine entries (histogram, resolution 0.001). "
               "Paper's definition.",
    "cos_p95": "95th percentile of the N x N sample cosine entries (histogram, resolution 0.001). "
               "Paper's definition.",
    "silhouette_tsne": "Euclidean silhouette score of the 2-D t-SNE embedding of (a seeded subset "
                       "of) the test features, true classes as clusters. Paper's definition: under the "
                       "paper presets (tsne = sklearn) the embedding is the paper's scikit-learn "
                       "TSNE(random_state=42); elsewhere openTSNE (FFT gradients from 10,000 points "
                       "up, Barnes-Hut below), the same kind of embedding.",
    "davies_bouldin_tsne": "Davies-Bouldin index of the same 2-D t-SNE embedding with the true "
                           "classes as clusters (lower is better). Paper's definition.",
    "silhouette_raw": "Exact euclidean silhouette score of the raw test features with the true "
                      "classes as clusters. Sound definition.",
    "davies_bouldin_raw": "Davies-Bouldin index of the raw test features with the true classes "
                          "as clusters (lower is better). Sound definition.",
    "effective_rank": "Roy & Vetterli (2007) effective rank: exp of the Shannon entropy of the "
                      "normalised singular values of the centred features. Sound definition.",
    "participation_ratio": "(sum lambda)^2 / sum lambda^2 over the eigenvalues lambda of the "
                           "feature covariance: the number of directions the variance spreads "
                           "over. Sound definition.",
    "neuron_cos_mean": "Mean off-diagonal cosine similarity between live neurons' activation "
                       "profiles over the test set (what the paper's text describes). "
                       "Sound definition.",
    "neuron_abs_cos_mean": "Mean off-diagonal |cosine| between live neurons' activation "
                           "profiles over the test set. It equals neuron_cos_mean whenever the "
                           "features are non-negative (taken after a ReLU, as the pooled "
                           "penultimate layer is): no two profiles then have a negative cosine. "
                           "Sound definition.",
    "dead_neurons": "Number of neurons whose activation is zero on every test sample; they are "
                    "left out of the neuron measures. Sound definition.",
    "selectivity_mean": "Mean over live neurons of the Morcos et al. (2018) class selectivity "
                        "index (mu_max - mu_rest) / (mu_max + mu_rest) of class-mean "
                        "activations. Sound definition.",
}


def tsne_subset(n: int, max_points: int, seed: int) -> np.ndarray:
    """Sorted indices [min(n, max_points)] of a seeded random subset of range(n)."""
    if max_points < 1:
        raise ValueError(f"tsne_points = {max_points}, must be >= 1")
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def feature_measures(features, labels, *, n_classes: int, seed: int = 0,
                     tsne_points: int = 10000, with_tsne: bool = True,
                     tsne: str = "opentsne") -> tuple[dict, dict]:
    """Every measure of test-set features [N, d] with class labels [N] in 0..n_classes-1.

    Returns (scalars, arrays). scalars has exactly the keys of METRIC_DEFINITIONS, with Python
    floats / ints, or None where a value is undefined (no t-SNE asked for, or fewer than two live
    neurons). arrays holds: cos_hist_counts [bins], cos_hist_edges [bins+1],
    neuron_cos_hist_counts, neuron_cos_hist_edges, selectivity [d], and with t-SNE
    tsne_embedding [n, 2], tsne_labels [n], tsne_indices [n] (rows of `features` embedded).
    """
    x = torch.as_tensor(features).detach().to(device="cpu", dtype=torch.float64)
    lab = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if x.ndim != 2 or lab.shape != (x.shape[0],):
        raise ValueError(f"features {tuple(x.shape)} and labels {lab.shape}: "
                         "expected [N, d] and [N]")
    lab = lab.astype(np.int64)

    cos = sample_cosine_stats(x, include_diagonal=True)
    neu = neuron_cosine_stats(x)
    live = x.abs().sum(0) > 0
    sel = class_selectivity(x, lab, n_classes)
    scalars = {
        "cos_mean": json_float(cos["mean"]),
        "cos_std": json_float(cos["std"]),
        "cos_p05": json_float(cos["percentiles"][5]),
        "cos_p50": json_float(cos["percentiles"][50]),
        "cos_p95": json_float(cos["percentiles"][95]),
        "silhouette_tsne": None,
        "davies_bouldin_tsne": None,
        "silhouette_raw": json_float(silhouette_score(x, lab)),
        "davies_bouldin_raw": json_float(davies_bouldin_score(x, lab)),
        "effective_rank": json_float(effective_rank(x)),
        "participation_ratio": json_float(participation_ratio(x)),
        "neuron_cos_mean": json_float(neu["mean"]),
        "neuron_abs_cos_mean": json_float(neu["abs_mean"]),
        "dead_neurons": int(neu["dead_neurons"]),
        "selectivity_mean": json_float(sel[live].mean()) if bool(live.any()) else None,
    }
    arrays = {
        "cos_hist_counts": cos["hist_counts"],
        "cos_hist_edges": cos["hist_edges"],
        "neuron_cos_hist_counts": neu["hist_counts"],
        "neuron_cos_hist_edges": neu["hist_edges"],
        "selectivity": sel.numpy(),
    }
    if with_tsne:
        idx = tsne_subset(x.shape[0], tsne_points, seed)
        if tsne == "sklearn":  # the paper's own t-SNE (its presets)
            from superlens.measures.tsne import paper_tsne_embedding

            emb = paper_tsne_embedding(x[idx].numpy())
        elif tsne == "opentsne":
            emb = tsne_embedding(x[idx].numpy(), seed=seed)
        else:
            raise ValueError(f"tsne = {tsne!r}: must be 'opentsne' or 'sklearn'")
        scalars["silhouette_tsne"] = json_float(silhouette_score(emb, lab[idx]))
        scalars["davies_bouldin_tsne"] = json_float(davies_bouldin_score(emb, lab[idx]))
        arrays |= {"tsne_embedding": emb, "tsne_labels": lab[idx], "tsne_indices": idx}
    assert scalars.keys() == METRIC_DEFINITIONS.keys()
    return scalars, arrays
