"""Toy models whose represented features are known, with their layer's activations: the known
answers the SAE measure (superlens.measures.sae) is checked against.

- the classic toy model (Elhage et al. 2022): x̂ = ReLU(W^T W x + b), n features -> m neurons; the
  layer is h = W x;
- the compressed-computation model: y = W_out ReLU(W_in x); the layer is ReLU(W_in x).
Known answers: "represented", the count of feature columns with ||W_i|| > NORM_REPRESENTED (in the
compressed-computation model ||W_i|| = sqrt(||W_in[:, i]|| ||W_out[i, :]||), because W_in a, W_out / a
is the same model); "frobenius_sq" = sum_i ||W_i||^2; and for the classic toy "weight_entropy" =
exp(H(p)), p_i = ||W_i|| / sum_j ||W_j||, the reference of Bereska et al. 2025 (arXiv 2512.13568).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from superlens.device import generator
from superlens.measures.sae import SAERecipe
from superlens.toy.phases import NORM_REPRESENTED


def weight_entropy(norms: torch.Tensor) -> torch.Tensor:
    """exp(H(p)), p_i = ||W_i|| / sum_j ||W_j||: norms [..., n] >= 0 -> [...] (Bereska et al. 2025's
    reference feature count for a toy model's weights)."""
    from superlens.measures.sae import effective_features

    return effective_features(norms)


def tms_models(cells: Sequence[tuple[float, float, int]], n: int, m: int, *, steps: int,
               batch_size: int, lr: float, rows: int, device="cpu") -> list[dict]:
    """Classic toy models n -> m, one per cell (p, importance decay, model seed), trained on one
    instance axis. Returns one entry per model with its activations acts [rows, m] (h = W x on fresh
    inputs the model never saw) and its known answer."""
    from superlens.toy.data import sample_tms
    from superlens.toy.models import importance_decay
    from superlens.toy.train import train_tms

    imp = torch.stack([importance_decay(n, dec) for _, dec, _ in cells])
    probs = [p for p, _, _ in cells]
    params, _ = train_tms(n, m, importance=imp, feature_probability=probs, steps=steps,
                          batch_size=batch_size, lr=lr, seeds=[s for *_, s in cells],
                          device=device, schedule="cosine")
    gens = [generator(50_000 + s, device) for *_, s in cells]  # data the models never saw
    x = sample_tms(gens, rows, n, probs, device=device)  # [I, rows, n]
    h = torch.bmm(x, params.W.transpose(1, 2))  # [I, rows, m]
    norms = params.W.norm(dim=1)  # [I, n]
    out = []
    for i, (p, dec, s) in enumerate(cells):
        out.append({"family": "tms", "p": p, "importance": "uniform" if dec == 1.0 else f"{dec:g}^j",
                    "width": m, "loss_power": None, "model_seed": s,
                    "represented": int((norms[i] > NORM_REPRESENTED).sum()),
                    "frobenius_sq": float((params.W[i] ** 2).sum()),
                    "weight_entropy": float(weight_entropy(norms[i])), "acts": h[i]})
    return out


def cc_models(cells: Sequence[tuple[float, float, int]], n: int, h: int, *, steps: int,
              batch_size: int, lr: float, rows: int, device="cpu") -> list[dict]:
    """Compressed-computation models n -> h -> n, one per cell (p, loss power, model seed), trained
    on one instance axis; the layer is ReLU(W_in x) on fresh inputs."""
    from superlens.toy.data import sample_dense
    from superlens.toy.models import hidden
    from superlens.toy.train import train_mlp

    res = train_mlp(n, h, seeds=[s for *_, s in cells], p=[p for p, _, _ in cells],
                    loss_power=[q for _, q, _ in cells], lr=lr, steps=steps,
                    batch_size=batch_size, device=device)
    P = res.params
    gens = [generator(50_000 + s, device) for *_, s in cells]
    x = sample_dense(gens, rows, n, [p for p, _, _ in cells], device=device)
    acts = hidden(P, x)  # [I, rows, h]
    # W_in a, W_out / a is the same model for any a > 0, so a feature's norm is the geometric
    # mean of its W_in column and W_out row norms (invariant to that rescaling)
    norms = (P.W_in.norm(dim=1) * P.W_out.norm(dim=2)).sqrt()  # [I, n]
    return [{"family": "cc", "p": p, "importance": "uniform", "width": h, "loss_power": q,
             "model_seed": s, "represented": int((norms[i] > NORM_REPRESENTED).sum()),
             "frobenius_sq": float((norms[i] ** 2).sum()), "acts": acts[i]}
            for i, (p, q, s) in enumerate(cells)]



def toy_sae_metrics(params, p: float, seed: int, rows: int = 20_000, recipe: SAERecipe | None = None,
                    ae_seeds: Sequence[int] = (0, 1, 2)) -> dict:
    """The SAE measure of the compressed-computation model's hidden layer ReLU(W_in x), for the toy
    study's metrics.json: per model (instance) F is the mean over AE seeds; the keys are means over
    models with `_std` = population std over models (as the study's other measures), plus
    sae_features_ae_std (the mean over models of F's spread over AE seeds) and
    sae_represented_features (features with sqrt(||W_in,i|| ||W_out,i||) > 0.5, the count F aims at).
    """
    from superlens.measures.sae import sae_measure_many
    from superlens.toy.data import sample_dense
    from superlens.toy.models import hidden

    recipe = recipe or SAERecipe()
    P = params.detach().to("cpu")
    gens = [generator(seed + 20_000 + i) for i in range(P.instances)]
    x = sample_dense(gens, rows, P.n_features, p)
    per_model = sae_measure_many(hidden(P, x), recipe, ae_seeds)
    represented = ((P.W_in.norm(dim=1) * P.W_out.norm(dim=2)).sqrt() > NORM_REPRESENTED).sum(1)
    out: dict = {}
    for key in ("sae_features", "sae_psi", "sae_fvu", "sae_l0", "sae_dead_fraction",
                "sae_features_raw", "sae_features_over_dict"):
        v = np.array([m[key] for m in per_model])
        out[key], out[key + "_std"] = float(v.mean()), float(v.std())
    out["sae_features_ae_std"] = float(np.mean([m["sae_features_std"] for m in per_model]))
    out["sae_dict_size"] = per_model[0]["sae_dict_size"]
    out["sae_represented_features"] = float(represented.float().mean())
    out["sae_recipe"] = recipe.as_dict()
    out["sae_ae_seeds"] = list(ae_seeds)
    return out


__all__ = ["cc_models", "tms_models", "toy_sae_metrics", "weight_entropy"]
