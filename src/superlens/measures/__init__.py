"""Measures of superposition in a model's features (used by the active-learning study).

Each measure is a pure function of features [N, d] (and class labels [N]); feature_measures
collects all of them. METRIC_DEFINITIONS says which follow the paper's code and which are sound.
"""
from superlens.measures.clustering import davies_bouldin_score, silhouette_score
from superlens.measures.cosine import neuron_cosine_stats, sample_cosine_stats
from superlens.measures.selectivity import class_selectivity
from superlens.measures.spectrum import effective_rank, participation_ratio
from superlens.measures.summary import METRIC_DEFINITIONS, feature_measures
from superlens.measures.tsne import tsne_embedding, tsne_method

__all__ = [
    "METRIC_DEFINITIONS",
    "class_selectivity",
    "davies_bouldin_score",
    "effective_rank",
    "feature_measures",
    "neuron_cosine_stats",
    "participation_ratio",
    "sample_cosine_stats",
    "silhouette_score",
    "tsne_embedding",
    "tsne_method",
]
