"""The sparse-autoencoder measure (superlens.measures.sae) on the active-learning study's models.

For one saved model the test set is run once with two hooks: the feature layer (pooled, [M, d]) and
the last convolutional block ([M, C, H, W], one row per spatial position over channels). Each gets
``sae_measure`` with the recipe of the toy validation (superlens.studies.sae_validation); keys
``sae_*`` (feature layer) and ``sae_conv_*`` (last conv block).

    vals = sae_for_checkpoint(cfg, ds, "run/al/random/seed0/round_04/checkpoint.pt", device)
    # {"sae_features": ..., "sae_psi": ..., ..., "sae_conv_features": ..., ...}
    add_sae_measures(cfg, ds, run_dir, seeds, device)   # every model of a study run

The study runs this pass last (the slowest measure on a CPU), after its report already holds every
other measure; `superlens report DIR` adds the keys later from the saved checkpoints of a run that
lacks them.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from superlens.active.checkpoints import load_model_checkpoint, model_dirs
from superlens.active.loop import say
from superlens.device import choose_threads, set_threads
from superlens.runs import read_json, write_json


def sae_validated() -> bool:
    """Whether the SAE rows decide a verdict: exactly when the checked-in held-out calibration
    (superlens.measures.sae_calibration) met every target."""
    from superlens.measures.sae_calibration import targets_met

    return targets_met()


def sae_validation_note() -> str:
    """The calibration's figures in one sentence, for the verdicts' note."""
    from superlens.measures.sae_calibration import calibration_text

    return ("validated. " if sae_validated() else "not validated. ") + calibration_text()


SAE_SEEDS = (0, 1, 2)
CONV_MAX_ROWS = 20_000   # rows (spatial positions) of the last conv block given to the autoencoder
SAE_FILE = "sae.json"    # per model folder: the cached values, with the recipe that made them


def study_recipe(cfg: Any = None):
    """The recipe the study fits: SAERecipe()'s defaults (the recipe of the toy validation) with
    the config's compute cap per autoencoder (sae_gflop; None = the recipe's own, SAERecipe.max_gflop).
    The cap only binds on layers wide enough that the recipe's steps x batch would cost more; then
    the minibatch, then the step count, is cut (reported as sae_batch / sae_steps).
    Tests swap in a cheaper recipe."""
    from superlens.measures.sae import SAERecipe

    gflop = getattr(cfg, "sae_gflop", None)
    return SAERecipe() if gflop is None else SAERecipe(max_gflop=float(gflop))


def sae_recipe_dict(cfg: Any = None) -> dict:
    """The recipe (dictionary multiple, L1, steps, compute cap, ...) as a dict for config.json."""
    return dict(study_recipe(cfg).as_dict(), seeds=list(SAE_SEEDS), conv_max_rows=CONV_MAX_ROWS)


@torch.no_grad()
def model_activations(cfg: Any, ds, checkpoint: Path, device: torch.device,
                      conv_images: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(features [M, d], last conv block [M', C, H, W]) of the test set under a saved model.

    conv_images: how many test images (a seeded subset) feed the conv map; default enough for
    CONV_MAX_ROWS rows. float32 on the CPU.
    """
    from superlens.active.data import normalize_batch, resolve_normalization
    from superlens.active.models import FeatureHook, default_feature_layer, last_conv_layer

    model = load_model_checkpoint(cfg, ds, checkpoint).to(device).eval()
    norm = resolve_normalization(cfg.normalize, ds)
    mean, std = norm if norm is not None else (None, None)
    feat_layer = cfg.feature_layer or default_feature_layer(cfg.model)
    conv = model.get_submodule(last_conv_layer(cfg.model))
    feats, maps = [], []
    grabbed: dict[str, torch.Tensor] = {}
    handle = conv.register_forward_hook(lambda m, i, o: grabbed.__setitem__("map", o.detach()))
    M = int(ds.test_x.shape[0])
    keep_maps = M
    try:
        with FeatureHook(model, feat_layer) as h:
            for s in range(0, M, cfg.eval_batch_size):
                xb = normalize_batch(ds.test_x[s:s + cfg.eval_batch_size].to(device), mean, std,
                                     image_size=cfg.image_size)
                model(xb)
                feats.append(h.features.float().cpu())
                fm = grabbed["map"].float()
                if keep_maps == M:  # rows per image known now: keep only the images needed
                    hw = fm.shape[-1] * fm.shape[-2]
                    keep_maps = conv_images or min(M, -(-4 * CONV_MAX_ROWS // hw))
                taken = sum(x.shape[0] for x in maps)
                if taken < keep_maps:
                    maps.append(fm[:keep_maps - taken].cpu())
    finally:
        handle.remove()
    return torch.cat(feats), torch.cat(maps)


def sae_for_checkpoint(cfg: Any, ds, checkpoint: Path, device: torch.device,
                       layers: tuple[str, ...] = ("feature", "conv")) -> dict:
    """sae_* (feature layer) and sae_conv_* (last conv block) values of one saved model, cached in
    the checkpoint's folder as sae.json (keyed by the recipe, so a changed recipe recomputes)."""
    from superlens.measures.sae import conv_rows, sae_measure

    checkpoint = Path(checkpoint)
    cache = checkpoint.parent / SAE_FILE
    recipe = study_recipe(cfg)
    key = sae_recipe_dict(cfg)
    if cache.is_file():
        try:
            c = read_json(cache)
            if c.get("recipe") == key and all(any(k.startswith(_prefix(l)) for k in c["values"])
                                               for l in layers):
                return c["values"]
        except Exception:  # noqa: BLE001 - an unreadable cache is recomputed
            pass
    feats, fmap = model_activations(cfg, ds, checkpoint, device)
    out: dict[str, float] = {}
    if "feature" in layers:
        out.update({k: float(v) for k, v in sae_measure(feats, recipe, seeds=SAE_SEEDS).items()})
    if "conv" in layers:
        rows = conv_rows(fmap, CONV_MAX_ROWS)
        out.update({"sae_conv_" + k[len("sae_"):]: float(v)
                    for k, v in sae_measure(rows, recipe, seeds=SAE_SEEDS).items()})
    write_json(cache, {"recipe": key, "values": out})
    return out


def add_sae_measures(cfg: Any, ds, out: Path, seeds: list[int], device) -> bool:
    """Add the sparse-autoencoder keys to every measures/<model>_seed<k>.json that lacks them: the
    final model's feature layer and last conv block (sae_*, sae_conv_*), and each round's feature
    layer for the strategies. False (nothing done) when cfg.sae is off."""
    if cfg.sae == "off":
        return False
    per_round = cfg.sae == "rounds"
    recipe = sae_recipe_dict(cfg)
    # every core the config allows, whatever the training used (choose_threads keeps an explicit
    # cfg.threads); on a CPU with several, the models are measured side by side, one single-threaded
    # worker per thread (superlens.device.run_chunks): an autoencoder's many small products scale
    # across cores better as whole fits, as in `superlens measure`, and each fit equals the
    # one-thread fit of a run with --threads 1
    from superlens.device import run_chunks

    threads = torch.get_num_threads()
    set_threads(choose_threads(cfg.threads, 1 << 30))
    jobs = [(seed, name) for seed in seeds for name in ["baseline", *cfg.strategies]]
    try:
        run_chunks(lambda i: _sae_one_model(cfg, ds, out, jobs[i][1], jobs[i][0], device, recipe,
                                            per_round), list(range(len(jobs))), torch.device(device))
    finally:
        set_threads(threads)
    return True


def _sae_one_model(cfg, ds, out: Path, name: str, seed: int, device, recipe: dict,
                   per_round: bool) -> None:
    """The sae_* keys of one model's measures json (final model; every round when per_round),
    unless it already holds them under the same recipe."""
    path = out / "measures" / f"{name}_seed{seed}.json"
    d = read_json(path)
    if d.get("sae_recipe") != recipe:  # made by another recipe: measure again
        d["measures"] = {k: v for k, v in d["measures"].items() if not k.startswith("sae_")}
        for info in d["rounds"]:
            for k in [k for k in info if k.startswith("sae_")]:
                del info[k]
    if "sae_features" in d["measures"] and (not per_round or
                                            all("sae_features" in r for r in d["rounds"])):
        return
    dirs = model_dirs(out, name, seed)
    t0 = time.perf_counter()
    d["measures"].update(sae_for_checkpoint(cfg, ds, dirs[-1] / "checkpoint.pt", device))
    for r, info in enumerate(d["rounds"]):
        if r == len(d["rounds"]) - 1:
            info.update({k: v for k, v in d["measures"].items() if k.startswith("sae_")})
        elif per_round:
            info.update(sae_for_checkpoint(cfg, ds, dirs[r] / "checkpoint.pt", device,
                                           layers=("feature",)))
    d["sae_recipe"] = recipe
    write_json(path, d)
    say(cfg, f"[{name} seed {seed}] sparse-autoencoder measures, {time.perf_counter() - t0:.1f} s")


def _prefix(layer: str) -> str:
    return "sae_conv_" if layer == "conv" else "sae_"


def _study_definitions() -> dict[str, str]:
    """The measure's own definitions (superlens.measures.sae), said of the layers this study fits."""
    from superlens.measures.sae import SAE_DEFINITIONS as measure

    out = {k: "Feature layer, rows = test images: " + measure[k]
           for k in ("sae_features", "sae_psi", "sae_fvu", "sae_l0", "sae_k", "sae_dead_fraction",
                     "sae_features_over_dict")}
    out["sae_conv_features"] = ("The same F on the last convolutional block, one row per spatial "
                                f"position over channels (at most {CONV_MAX_ROWS:,} rows).")
    out["sae_conv_psi"] = "psi = F / C for the last convolutional block's C channels."
    out["sae_conv_fvu"] = "The autoencoder's FVU on the last convolutional block (as sae_fvu)."
    out["sae_conv_k"] = "The k the last convolutional block's statistics come from (as sae_k)."
    return out


SAE_DEFINITIONS = _study_definitions()

__all__ = ["add_sae_measures", "sae_validated", "sae_validation_note", "sae_recipe_dict",
           "model_activations", "sae_for_checkpoint",
           "SAE_DEFINITIONS", "SAE_SEEDS", "CONV_MAX_ROWS"]
