"""The numbers `superlens measure` reports for one layer, from its rows and per-sample features.

Rows (one per spatial position, token or sample; at most max_rows, a seeded subset) carry the
geometry of the layer's activation space: the sparse-autoencoder count F and psi = F / N, effective
rank, participation ratio and the neuron cosines. Class labels belong to samples, so the
label measures (selectivity, class-mean cosine, silhouette) use each sample's mean over its rows
(a conv map: global average pooling), as the active-learning study measures its pooled features.
Every key is defined in LAYER_DEFINITIONS; the functions here only call superlens.measures.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from superlens.measures.clustering import silhouette_score
from superlens.measures.cosine import neuron_cosine_stats
from superlens.measures.numeric import json_float
from superlens.measures.sae import SAE_DEFINITIONS, SAERecipe, sae_measure_many
from superlens.measures.selectivity import class_mean_cosine, class_selectivity
from superlens.measures.spectrum import effective_rank, participation_ratio

SILHOUETTE_SAMPLES = 10_000  # the exact silhouette is O(n^2 N): a seeded subset above this

LAYER_DEFINITIONS: dict[str, str] = {
    "width": "N, the layer's number of features per row: channels of a conv map, units of a dense "
             "layer, the last axis of a token sequence.",
    "rows": "Activation rows measured: one per spatial position (conv), token or sample (dense); "
            "a seeded uniform subset when there are more than max_rows.",
    "samples": "Inputs run through the model.",
    "sae_features": SAE_DEFINITIONS["sae_features"],
    "sae_features_std": "Std of F over autoencoder seeds (ddof = 1): the spread drawn on the profile.",
    "sae_psi": "Superposition ratio psi = F / N: features the autoencoder finds per neuron "
               "(above 1: more features than neurons).",
    "sae_psi_std": "Std of psi over autoencoder seeds (sae_features_std / N).",
    "sae_fvu": SAE_DEFINITIONS["sae_fvu"],
    "sae_l0": SAE_DEFINITIONS["sae_l0"],
    "sae_dead_fraction": SAE_DEFINITIONS["sae_dead_fraction"],
    "sae_features_raw": SAE_DEFINITIONS["sae_features_raw"],
    "sae_dict_size": SAE_DEFINITIONS["sae_dict_size"],
    "sae_calibration": "What the SAE measure's calibration on planted features (a checked-in table "
                       "written by the validation sweep) says about F at this width: trusted or not, "
                       "why, and how far F strayed from the truth at the nearest calibrated width.",
    "sae_trusted": "Whether that calibration trusts F at this width (every target met, and a "
                   "calibrated width within a factor 2 met its own).",
    "effective_rank": "Roy & Vetterli (2007) effective rank of the rows: exp of the entropy of the "
                      "normalised singular values of the centred rows (1 to N).",
    "effective_rank_ratio": "effective_rank / N: the share of the width the rows spread over.",
    "participation_ratio": "(sum lambda)^2 / sum lambda^2 over the eigenvalues of the rows' "
                           "covariance (1 to N).",
    "neuron_abs_cos_mean": "Mean off-diagonal |cosine| between live neurons' activation profiles "
                           "over the rows (uncentred; dead neurons left out).",
    "dead_neurons": "Neurons that are zero on every row.",
    "selectivity_mean": "Mean over live neurons of the Morcos et al. (2018) class selectivity "
                        "(mu_max - mu_rest) / (mu_max + mu_rest) of class-mean per-sample features.",
    "class_mean_cos": "Mean cosine between the class-mean per-sample feature vectors of distinct "
                      "classes (1: every class points the same way).",
    "silhouette_raw": "Exact euclidean silhouette of the per-sample features with the true classes "
                      f"as clusters (a seeded subset of {SILHOUETTE_SAMPLES:,} samples when more).",
}


def calibration_note(width: int, fvu: float | None = None) -> dict:
    """The SAE validation's word on a layer of this width whose fit left `fvu` unexplained:
    superlens.measures.sae_calibration's note (trusted, reason, the nearest calibrated width and its
    measured F / F_true errors)."""
    from superlens.measures.sae_calibration import CalibrationError, calibration_note as note

    try:
        return note(width, fvu=fvu)
    except CalibrationError as e:
        return {"width": int(width), "trusted": False, "reason": f"no calibration table ({e})"}


def geometry(rows: np.ndarray) -> dict:
    """Effective rank, participation ratio and neuron cosines of rows [R, N]."""
    x = torch.from_numpy(np.asarray(rows, dtype=np.float32))
    neu = neuron_cosine_stats(x)
    er = effective_rank(x)
    return {"effective_rank": json_float(er), "effective_rank_ratio": json_float(er / x.shape[1]),
            "participation_ratio": json_float(participation_ratio(x)),
            "neuron_abs_cos_mean": json_float(neu["abs_mean"]), "dead_neurons": int(neu["dead_neurons"])}


def label_measures(pooled: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict:
    """Selectivity, class-mean cosine and silhouette of per-sample features [n, N] with labels [n]."""
    x = torch.from_numpy(np.asarray(pooled, dtype=np.float64))
    lab = np.asarray(labels, dtype=np.int64)
    k = int(lab.max()) + 1
    if len(np.unique(lab)) < 2:
        return {"selectivity_mean": None, "class_mean_cos": None, "silhouette_raw": None}
    live = x.abs().sum(0) > 0
    sel = class_selectivity(x, lab, k)
    idx = np.arange(len(lab))
    if len(lab) > SILHOUETTE_SAMPLES:
        idx = np.sort(np.random.default_rng(seed).choice(len(lab), SILHOUETTE_SAMPLES, replace=False))
    sub = lab[idx]
    sil = silhouette_score(x[idx], sub) if len(np.unique(sub)) >= 2 else math.nan
    return {"selectivity_mean": json_float(sel[live].mean()) if bool(live.any()) else None,
            "class_mean_cos": json_float(class_mean_cosine(x, lab, k)),
            "silhouette_raw": json_float(sil)}


def sae_groups(widths: dict[str, tuple[int, int]]) -> list[list[str]]:
    """Layers that share (rows, N), in order: each group is fitted on one instance axis."""
    groups: dict[tuple[int, int], list[str]] = {}
    for name, shape in widths.items():
        groups.setdefault(shape, []).append(name)
    return list(groups.values())


def sae_values(rows: Sequence[np.ndarray], recipe: SAERecipe, seeds: Sequence[int],
               device: torch.device | str = "cpu") -> list[dict]:
    """The SAE measure of M layers of one shape [R, N], fitted together: M dicts of sae_* keys
    (psi's spread over AE seeds added as sae_psi_std) with the calibration note."""
    x = torch.stack([torch.from_numpy(np.asarray(r, dtype=np.float32)) for r in rows])
    out = []
    for v in sae_measure_many(x, recipe, seeds, device=device):
        N = x.shape[2]
        d = {k: json_float(val) for k, val in v.items()}
        d["sae_psi_std"] = json_float(v["sae_features_std"] / N)
        d["sae_calibration"] = calibration_note(N, fvu=float(v["sae_fvu"]))
        d["sae_trusted"] = bool(d["sae_calibration"].get("trusted", False))
        out.append(d)
    return out


__all__ = ["LAYER_DEFINITIONS", "SILHOUETTE_SAMPLES", "calibration_note", "geometry", "label_measures",
           "sae_groups", "sae_values"]
