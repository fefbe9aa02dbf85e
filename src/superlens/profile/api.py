"""The superposition profile of a model's layers, from Python (a notebook) or `superlens measure`.

    import superlens
    prof = superlens.measure(model, ["layer1", "layer2", "layer3", "layer4"], x, labels=y)
    prof["layer4"]["sae_psi"], prof["layer4"]["effective_rank"]

    prof = superlens.measure_activations({"fc": acts}, labels=y)     # activations you already have

Each layer's dict holds the keys of superlens.profile.layer_measures.LAYER_DEFINITIONS plus where
they came from (depth: the order the layers ran; kind; shape; rows; samples).
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from superlens.capture.sources import TensorSource
from superlens.capture.store import LayerActivations, capture
from superlens.device import pick_device, run_chunks
from superlens.measures.sae import SAERecipe
from superlens.profile.layer_measures import geometry, label_measures, sae_groups, sae_values


def _recipe(sae_gflop: float | None, progress: bool) -> SAERecipe:
    """The frozen recipe (its compute cap replaced where sae_gflop is given); progress: the fits'
    progress lines on stderr."""
    return (SAERecipe(progress=progress) if sae_gflop is None else
            SAERecipe(max_gflop=float(sae_gflop), progress=progress))


def measure(model: nn.Module, layers: Sequence[str], data, *, labels=None, batch_size: int = 256,
            max_rows: int | None = 50_000, seed: int = 0, device: str | torch.device | None = None,
            cache_dir=None, sae: bool = True, sae_seeds: int = 3, sae_gflop: float | None = None,
            progress: bool = False, done: Mapping[str, dict] | None = None,
            on_layer: Callable[[str, dict], None] | None = None) -> dict[str, dict]:
    """Per-layer measures of ``model`` on ``data``: {layer: {measure: value}} in the order the
    layers run.

    data: inputs [n, ...] fed as they are (uint8 cast to float), or a Source (superlens.capture,
    e.g. superlens.profile.inputs.folder_source(...).source). labels: [n] class labels, or None.
    max_rows: rows kept per layer (a seeded subset). device: where the model runs and the
    autoencoders train (None: the model's own device; a device given moves the model there).
    cache_dir: where activations are cached
    (None: a temporary folder). sae: fit the sparse autoencoders (sae_seeds AE seeds each; sae_gflop
    caps one AE's cost). done: layers already measured (skipped; returned as given); on_layer(name,
    values) is called as each layer finishes.
    """
    if device is None:
        p = next(iter(model.parameters()), None)
        dev = p.device if p is not None else torch.device("cpu")
    else:
        dev = pick_device(device) if isinstance(device, str) else torch.device(device)
        model = model.to(dev)
    src = data if hasattr(data, "fingerprint") else TensorSource(torch.as_tensor(data))
    acts = capture(model, list(layers), src, cache_dir=cache_dir, max_rows=max_rows, seed=seed,
                   batch_size=batch_size, device=dev, progress=progress)
    lab = None if labels is None else np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64)
    return measure_captured(acts, lab, seed=seed, sae=sae, sae_seeds=sae_seeds, sae_gflop=sae_gflop,
                            device=dev, done=done, on_layer=on_layer, progress=progress)


def measure_activations(acts, labels=None, *, max_rows: int | None = 50_000, seed: int = 0,
                        sae: bool = True, sae_seeds: int = 3, sae_gflop: float | None = None,
                        device: str | torch.device = "auto", done: Mapping[str, dict] | None = None,
                        on_layer: Callable[[str, dict], None] | None = None,
                        progress: bool = False) -> dict[str, dict]:
    """The same measures on activations you already have: {name: [rows, N]} (or one [rows, N]
    array, named "activations"); labels [rows] for the label measures. Rows above max_rows: a
    seeded subset."""
    from superlens.capture.store import kept_rows

    if not isinstance(acts, Mapping):
        acts = {"activations": acts}
    dev = pick_device(device) if isinstance(device, str) else torch.device(device)
    lab = None if labels is None else np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64)
    layers = {}
    for depth, (name, a) in enumerate(acts.items()):
        x = np.asarray(a.detach().cpu() if isinstance(a, Tensor) else a, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
            raise ValueError(f"activations {name!r}: shape {list(x.shape)}, expected [rows, N]")
        keep = kept_rows(x.shape[0], max_rows, seed)
        idx = np.arange(x.shape[0]) if keep is None else keep
        layers[name] = LayerActivations(name, (x.shape[1],), "dense", x[idx], x, idx, depth)
    return measure_captured(layers, lab, seed=seed, sae=sae, sae_seeds=sae_seeds, sae_gflop=sae_gflop,
                            device=dev, done=done, on_layer=on_layer, progress=progress)


def measure_captured(acts: Mapping[str, LayerActivations], labels: np.ndarray | None, *, seed: int = 0,
                     sae: bool = True, sae_seeds: int = 3, sae_gflop: float | None = None,
                     device: torch.device = torch.device("cpu"), done: Mapping[str, dict] | None = None,
                     on_layer: Callable[[str, dict], None] | None = None,
                     progress: bool = False) -> dict[str, dict]:
    """measure() after the capture: the cheap measures of every layer, then the autoencoders,
    layers of one (rows, N) shape on one instance axis (progress: the fits' progress lines)."""
    done = dict(done or {})
    out: dict[str, dict] = {}
    todo = [n for n in acts if n not in done]
    for name in todo:
        a = acts[name]
        t0 = time.perf_counter()
        v = {"layer": name, "depth": a.depth, "kind": a.kind, "shape": list(a.shape),
             "width": a.width, "rows": int(a.rows.shape[0]), "samples": int(a.pooled.shape[0]),
             "rows_per_sample": int(np.prod(a.shape[1:])) if a.kind == "conv" else
             (int(a.shape[0]) if a.kind == "tokens" else 1)}
        v.update(geometry(a.rows))
        if labels is not None:
            if labels.shape[0] != a.pooled.shape[0]:
                raise ValueError(f"labels: {labels.shape[0]} for {a.pooled.shape[0]} samples of {name!r}")
            v.update(label_measures(a.pooled, labels, seed))
        else:
            v.update(selectivity_mean=None, class_mean_cos=None, silhouette_raw=None)
        v["measure_seconds"] = time.perf_counter() - t0
        out[name] = v
    if sae:
        recipe = _recipe(sae_gflop, progress)
        seeds = list(range(sae_seeds))
        groups = sae_groups({n: tuple(acts[n].rows.shape) for n in todo})
        lock = threading.Lock()

        def fit(i: int) -> None:
            group = groups[i]
            vals = sae_values([acts[n].rows for n in group], recipe, seeds, device)
            with lock:
                for name, v in zip(group, vals):
                    out[name].update(v)
                    out[name]["sae_fitted_with"] = [g for g in group if g != name]
                    _finish(out, name, on_layer)

        # on a CPU the groups are fitted side by side, one single-threaded worker per torch thread,
        # the costliest first: a fit's many small products scale across cores better as whole fits
        # than through intra-op threads (bench/measure.py, resnet18's 5 layers at 10,000 images:
        # 324 s -> 222 s), and a busy neighbour core slows one worker, not every product
        cost = [_fit_cost(recipe, acts[g[0]].width) * len(g) for g in groups]
        run_chunks(fit, sorted(range(len(groups)), key=lambda i: -cost[i]), torch.device(device))
    else:
        for name in todo:
            _finish(out, name, on_layer)
    merged = {**done, **out}
    return {n: merged[n] for n in acts}


def _fit_cost(recipe: SAERecipe, n: int) -> float:
    """Relative cost of one autoencoder fit on a layer of n neurons (steps x rows x N x D)."""
    steps, batch = recipe.schedule(n)
    return float(steps) * batch * n * recipe.dict_size(n)


def _finish(out: dict, name: str, on_layer) -> None:
    if on_layer is not None:
        on_layer(name, out[name])


__all__ = ["measure", "measure_activations", "measure_captured"]
