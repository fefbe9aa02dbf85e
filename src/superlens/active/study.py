"""The active-learning superposition study end to end.

config -> run directory (config.json, meta.json) -> per seed: baseline on all training data, then each
strategy's loop -> measures on the test-set features of every final model -> metrics.json (mean ± std
over seeds), figures, report.html. Every stage saves as it finishes; `--resume` skips finished work.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from superlens.active.presets import preset, protocol_statement
from superlens.config import ActiveConfig, load_toml
from superlens.active.train import _amp
from superlens.device import choose_threads, pick_device, set_threads
from superlens.errors import CheckpointError, ConfigError
from superlens.runs import base_meta, check_resume_dir, read_json, sigterm_as_interrupt, write_json

MEASURE_KEYS = ["accuracy", "cos_mean", "cos_std", "silhouette_tsne", "davies_bouldin_tsne",
                "silhouette_raw", "davies_bouldin_raw", "effective_rank", "participation_ratio",
                "neuron_abs_cos_mean", "selectivity_mean"]
# fields that may differ on --resume without changing any result (the paths, like the loop's
# fingerprints, may move between machines). seeds: a resume may add seeds (or keep a prefix); each
# seed's models depend on that seed alone. ensemble: how many models train at once changes results
# only by float rounding, as threads do.
RESUME_FREE = {"device", "threads", "progress", "data_dir", "weights_path", "download", "cache_dir",
               "seeds", "ensemble", "sae_recipe", "sae", "sae_gflop"}
# config.json keys beside ActiveConfig's fields (stripped before the config is rebuilt)
EXTRA_CONFIG_KEYS = ("sae_recipe", "decode")


def config_from_cli(preset_name: str | None, config_file: str | None,
                    overrides: dict[str, Any]) -> ActiveConfig:
    """Preset (default 'digits'), then the TOML file, then flags; validated once."""
    file_data = load_toml(config_file) if config_file else {}
    name = preset_name or file_data.get("preset") or "digits"
    data = preset(name)
    data.update(file_data)
    data["preset"] = name
    data.update(overrides)
    with_folder_layout(data, explicit="dataset" in file_data or "dataset" in overrides)
    source = f"config file {config_file}" if config_file else "config"
    return ActiveConfig.build(data, source=source)


def with_folder_layout(data: dict[str, Any], explicit: bool) -> dict[str, Any]:
    """A data folder is never ignored: unless a data set is named (explicit), the layout of
    data["data_dir"] picks it (detect_layout; an unknown layout is one DataError line). In place."""
    if data.get("data_dir") and not explicit and Path(str(data["data_dir"])).expanduser().is_dir():
        from superlens.active.data import detect_layout

        data["dataset"] = detect_layout(data["data_dir"])
    return data


def config_json(cfg: ActiveConfig, device: torch.device | None = None,
                threads: int | None = None) -> dict:
    """config.json: the resolved config (with the device, thread count and mixed precision the run
    used, as meta.json), the sparse-autoencoder recipe (when the measure is on) and how images were
    decoded (resized while decoding, or at their own size)."""
    from superlens.active.sae_measures import sae_recipe_dict

    out = cfg.model_dump(mode="json")
    if device is not None:
        out.update(device=str(device), threads=threads, amp=_amp(device, cfg.amp))
    out["sae_recipe"] = sae_recipe_dict(cfg) if cfg.sae != "off" else None
    if cfg.dataset == "image-folder":
        out["decode"] = (f"every image resized to {cfg.image_size}x{cfg.image_size} (bilinear) while "
                         "decoding" if cfg.image_size else "every image at its own (common) size")
    return out


def config_from_json(data: dict, source: str) -> ActiveConfig:
    """The ActiveConfig of a run directory's config.json."""
    return ActiveConfig.build({k: v for k, v in data.items() if k not in EXTRA_CONFIG_KEYS},
                              source=source)


def _check_resume_config(out: Path, cfg: ActiveConfig) -> None:
    from superlens.readers import read_object

    stored = read_object(out / "config.json")
    now = config_json(cfg)
    # amp as it acts on this device: config.json stores the resolved value (false on the CPU), and
    # an older one may hold the flag as given
    dev = pick_device(cfg.device)
    stored, now = {**stored, "amp": _amp(dev, stored.get("amp"))}, {**now, "amp": _amp(dev, cfg.amp)}
    diff = [k for k in sorted(set(stored) | set(now))
            if k not in RESUME_FREE and stored.get(k) != now.get(k)]
    if diff:
        k = "preset" if "preset" in diff else diff[0]  # a preset explains every field it sets
        more = f" (and {len(diff) - 1} more field(s))" if len(diff) > 1 else ""
        raise ConfigError(f"--resume: {out / 'config.json'} has {k} = {stored.get(k)!r} but this "
                          f"command gives {now.get(k)!r}{more}; rerun with the same settings")


def run_active(cfg: ActiveConfig, out: str | Path, *, force: bool = False, resume: bool = False,
               argv: list[str] | None = None, render: Callable[[Path], Any] | None = None,
               inputs: tuple = ()) -> dict:
    """Run (or resume) the study into ``out``; returns metrics. render(out) draws the figures and
    report.html at the end (superlens.studies.active.render_active_report, which the command and
    sweeps pass: the report layer sits above this package).

    Everything that can be wrong with the input is checked before the first write; the run's lock
    is held throughout (one writer per run directory). A fresh run writes ``out`` in place (an
    interrupted one stays there to --resume); ``force`` over an existing run builds the new one
    beside it and swaps it in only when complete."""
    from superlens.active.loop import check_resumable, validate_plan
    from superlens.runs import RunLock, check_out, check_run_dir, open_run_dir

    if force and resume:
        raise ConfigError("--force and --resume: choose one (--force replaces the run, --resume "
                          "continues it)")
    t_start = time.perf_counter()
    device = pick_device(cfg.device)
    out = check_out(out, force=force, inputs=(*inputs, cfg.data_dir, cfg.weights_path))
    # a --resume target must be empty/missing or a superlens active run; refuse anything else early
    check_resume_dir(out, kind="active") if resume else check_run_dir(out, force)
    # everything that can be wrong with the input is checked before the run directory is touched
    ds = load_study_data(cfg)
    side = cfg.image_size or ds.image_size
    # ~ activation elements of a first conv layer: small models run faster on one thread
    threads = set_threads(choose_threads(cfg.threads, cfg.batch_size * 64 * side * side))
    validate_plan(cfg, int(ds.train_y.shape[0]))
    preflight_model(cfg, ds)
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    with RunLock(out):
        # again under the lock: another process may have written it meanwhile
        resuming = check_resume_dir(out, kind="active") if resume else check_run_dir(out, force)
        if resuming:
            # every check of what is already there comes before the first write: a refused resume
            # leaves the run directory byte for byte as it was
            _check_resume_config(out, cfg)
            for seed in seeds:
                check_resumable(cfg, out / "baseline" / f"seed{seed}",
                                {n: out / "al" / n / f"seed{seed}" for n in cfg.strategies}, seed)
            from superlens.readers import read_meta

            meta = read_meta(out)
        with open_run_dir(out, force=force) as work:
            if resuming:  # the original meta stays; this session is recorded beside it
                prev = meta.get("resumed_at", [])
                meta["resumed_at"] = [*(prev if isinstance(prev, list) else [prev]),
                                      time.strftime("%Y-%m-%dT%H:%M:%S%z")]
                meta["status"] = "running"
                meta["seeds"] = seeds  # --resume --seeds N may add seeds
                # wall_seconds adds up the finished sessions: this one's is added to what they took
                meta["wall_seconds_before"] = float(meta.get("wall_seconds")
                                                    or meta.get("wall_seconds_before") or 0.0)
                # the settings that may change on resume (paths, device, the sparse-autoencoder
                # pass) are this session's: config.json follows them
                write_json(work / "config.json", config_json(cfg, device, threads))
            else:
                meta = base_meta(str(device), threads, seeds, argv)
                meta.update(kind="active", protocol=protocol_statement(cfg), dataset=ds.name,
                            n_train=int(ds.train_y.shape[0]), n_test=int(ds.test_y.shape[0]),
                            class_names=list(ds.class_names))
                write_json(work / "config.json", config_json(cfg, device, threads))
            write_json(work / "meta.json", meta)
            before = float(meta.get("wall_seconds_before", 0.0))
            try:
                metrics = _run_into(cfg, ds, work, seeds, device)
                meta.update(wall_seconds=before + time.perf_counter() - t_start)
                write_json(work / "meta.json", meta)
                if render is not None:
                    render(work)
                # the sparse-autoencoder pass last: the slowest measure on a CPU; the report above
                # already holds everything else
                with sigterm_as_interrupt():
                    if add_sae_measures(cfg, ds, work, seeds, device):
                        metrics = aggregate(work, cfg, seeds)
                        write_json(work / "metrics.json", metrics)
                        meta.update(wall_seconds=before + time.perf_counter() - t_start)
                        write_json(work / "meta.json", meta)
                        if render is not None:
                            render(work)
            except KeyboardInterrupt:  # finished steps stay; --resume continues after them
                meta["status"] = "interrupted"
                with contextlib.suppress(OSError):
                    write_json(work / "meta.json", meta)
                raise
            meta["status"] = "complete"  # set last: a run whose report failed is not complete
            write_json(work / "meta.json", meta)
    return metrics


def _run_into(cfg: ActiveConfig, ds, out: Path, seeds: list[int], device: torch.device) -> dict:
    """Seeds in chunks of cfg.ensemble // len(strategies) (at least 1): a chunk's baselines train
    together, then its strategies' loops run in step (superlens.active.loop.run_loops: its
    strategies x seeds models train cfg.ensemble at a time); each chunk is measured when it
    finishes, so an interrupted run keeps every finished chunk."""
    from superlens.active.loop import run_loops, train_baselines

    chunk = max(1, int(cfg.ensemble) // len(cfg.strategies))
    with sigterm_as_interrupt():  # a SIGTERM stops like Ctrl-C; finished steps stay resumable
        for c in range(0, len(seeds), chunk):
            part = seeds[c:c + chunk]
            dirs = [out / "baseline" / f"seed{seed}" for seed in part]
            for seed, d, base in zip(part, dirs, train_baselines(
                    cfg, ds, list(zip(part, dirs)), device)):
                _measure(cfg, ds, d, base, "baseline", seed, out)
            specs = [(name, seed, out / "al" / name / f"seed{seed}", d)
                     for seed, d in zip(part, dirs) for name in cfg.strategies]
            for (name, seed, al_dir, _), res in zip(specs, run_loops(cfg, ds, specs, device)):
                _measure(cfg, ds, al_dir, res, name, seed, out)
    metrics = aggregate(out, cfg, seeds)
    write_json(out / "metrics.json", metrics)
    return metrics


def load_study_data(cfg: ActiveConfig):
    """The data set the study trains on: cfg.dataset from cfg.data_dir (decoded into cfg.cache_dir),
    cut to a class-balanced cfg.pool_size subset and its test split to a class-balanced cfg.test_size
    subset when set (drawn by cfg.seed, the same subsets for every seed of the run)."""
    from superlens.active.data import balanced_subset, load_dataset
    from superlens.active.loop import derive_seed

    ds = load_dataset(cfg.dataset, cfg.data_dir, download=cfg.download, seed=cfg.seed,
                      test_fraction=cfg.test_fraction, progress=cfg.progress, cache_dir=cfg.cache_dir,
                      image_size=cfg.image_size)
    if cfg.pool_size is not None:
        ds = balanced_subset(ds, cfg.pool_size, derive_seed(cfg.seed, "pool-subset"))
    if cfg.test_size is not None:
        ds = balanced_subset(ds, cfg.test_size, derive_seed(cfg.seed, "test-subset"), split="test")
    return ds


def preflight_model(cfg: ActiveConfig, ds) -> None:
    """Build the model once (weights loaded, feature layer looked up), and check the normalisation
    against the data and the image size against memory, so that these fail before anything is
    written."""
    from superlens.active.models import FeatureHook, build_model, default_feature_layer

    from superlens.active.data import resolve_normalization
    from superlens.limits import check_image_sizes

    resolve_normalization(cfg.normalize, ds)  # e.g. 3-channel statistics on 1-channel data
    big = "eval_batch_size" if cfg.eval_batch_size > cfg.batch_size else "batch_size"
    check_image_sizes(cfg.image_size or ds.image_size, getattr(cfg, big), ds.in_channels,
                      pick_device(cfg.device), big)
    model = build_model(cfg.model, len(ds.class_names), ds.in_channels, pretrained=cfg.pretrained,
                        weights_path=cfg.weights_path, dropout=cfg.dropout)
    with FeatureHook(model, cfg.feature_layer or default_feature_layer(cfg.model)):
        pass
    if cfg.paper_features and not hasattr(model, "layer4"):
        raise ConfigError(f"paper_features = true needs a resnet model (model = {cfg.model!r} has no "
                          "layer4)")


def load_model_checkpoint(cfg: ActiveConfig, ds, checkpoint: Path) -> torch.nn.Module:
    """cfg's model with the weights of a saved checkpoint, on the CPU; a missing, truncated or
    foreign file is one CheckpointError line."""
    from superlens.errors import one_line
    from superlens.active.loop import _load
    from superlens.active.models import build_model

    model = build_model(cfg.model, len(ds.class_names), ds.in_channels, dropout=cfg.dropout)
    ck = _load(Path(checkpoint))
    if not isinstance(ck, dict) or not isinstance(ck.get("model"), dict):
        raise CheckpointError(f"checkpoint {checkpoint}: not a superlens checkpoint (no model entry)")
    try:
        model.load_state_dict(ck["model"])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {checkpoint}: does not fit the model "
                              f"({one_line(e)[:200]})") from None
    return model


@torch.no_grad()
def paper_quirk_features(cfg: ActiveConfig, ds, checkpoint: Path, device: torch.device) -> torch.Tensor:
    """Test-set features as the paper's notebook extracted them (the last residual block applied
    twice, then pooled), from a saved checkpoint. [M, 512] float32 on the CPU."""
    from superlens.active.data import normalize_batch, resolve_normalization
    from superlens.active.models import paper_double_block_features

    model = load_model_checkpoint(cfg, ds, checkpoint)
    model.to(device).eval()
    norm = resolve_normalization(cfg.normalize, ds)
    mean, std = norm if norm is not None else (None, None)
    out = []
    for i in range(0, ds.test_x.shape[0], cfg.eval_batch_size):
        xb = normalize_batch(ds.test_x[i:i + cfg.eval_batch_size].to(device), mean, std,
                             image_size=cfg.image_size)
        out.append(paper_double_block_features(model, xb).float().cpu())
    return torch.cat(out)


def _final_checkpoint(result: dict) -> Path:
    d = Path(result["out_dir"])
    if (d / "checkpoint.pt").exists():
        return d / "checkpoint.pt"
    return sorted(d.glob("round_*/checkpoint.pt"))[-1]


def _measure(cfg: ActiveConfig, ds, model_dir: Path, result: dict, name: str, seed: int,
             out: Path) -> None:
    """Measures of one final model's test features, cached as measures/<name>_seed<k>.{json,npz}."""
    from superlens.measures.summary import feature_measures

    stem = out / "measures" / f"{name}_seed{seed}"
    if stem.with_suffix(".json").exists():
        return
    feats = result["final_features"] if "final_features" in result else result["test_features"]
    acc = result["final_accuracy"] if "final_accuracy" in result else result["accuracy"]
    feats = torch.as_tensor(feats, dtype=torch.float32)
    scalars, arrays = feature_measures(feats, ds.test_y, n_classes=len(ds.class_names), seed=seed,
                                       tsne_points=cfg.tsne_points, tsne=cfg.tsne)
    scalars["accuracy"] = float(acc)
    if cfg.paper_features:
        # the paper's cosine histogram came from its quirky extractor: reproduce that, say so
        from superlens.measures.cosine import sample_cosine_stats

        quirk = paper_quirk_features(cfg, ds, _final_checkpoint(result), pick_device(cfg.device))
        cos = sample_cosine_stats(quirk.double(), include_diagonal=True)
        scalars.update(cos_mean=float(cos["mean"]), cos_std=float(cos["std"]),
                       cos_p05=float(cos["percentiles"][5]), cos_p50=float(cos["percentiles"][50]),
                       cos_p95=float(cos["percentiles"][95]))
        arrays.update(cos_hist_counts=cos["hist_counts"], cos_hist_edges=cos["hist_edges"])
        scalars["cos_features"] = "paper notebook quirk: layer4[-1] applied twice, then pooled"
    rounds = [dict(r) for r in result.get("rounds", [])]
    # the cheap measures of every round's model (the claim "more rounds reduce superposition")
    for r, info in enumerate(rounds):
        d = _model_dirs(out, name, seed)
        if name != "baseline" and r < len(rounds) - 1 and r < len(d):
            info.update(round_measures(torch.load(d[r] / "test_features.pt", weights_only=True),
                                       ds.test_y))
        elif name != "baseline":
            info.update({k: scalars.get(k) for k in ROUND_KEYS})
    from superlens.runs import atomic_write_bytes
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(stem.with_suffix(".npz"), buf.getvalue())
    write_json(stem.with_suffix(".json"), {"measures": scalars, "rounds": rounds})


def _model_dirs(out: Path, name: str, seed: int) -> list[Path]:
    """Folders of one run's saved models: the baseline's, or a loop's rounds in order."""
    if name == "baseline":
        return [out / "baseline" / f"seed{seed}"]
    return sorted((out / "al" / name / f"seed{seed}").glob("round_*"))


def add_sae_measures(cfg: ActiveConfig, ds, out: Path, seeds: list[int], device) -> bool:
    """Add the sparse-autoencoder keys to every measures/<model>_seed<k>.json that lacks them: the
    final model's feature layer and last conv block (sae_*, sae_conv_*), and each round's feature
    layer for the strategies. False (nothing done) when the measure is not installed."""
    from superlens.active.sae_measures import sae_available, sae_recipe_dict

    if not sae_available() or cfg.sae == "off":
        return False
    per_round = cfg.sae == "rounds"
    recipe = sae_recipe_dict(cfg)
    # the autoencoders are large matrix products: every core the config allows, whatever the
    # training used (choose_threads keeps an explicit cfg.threads)
    threads = torch.get_num_threads()
    set_threads(choose_threads(cfg.threads, 1 << 30))
    try:
        for seed in seeds:
            for name in ["baseline", *cfg.strategies]:
                _sae_one_model(cfg, ds, out, name, seed, device, recipe, per_round)
    finally:
        set_threads(threads)
    return True


def _sae_one_model(cfg, ds, out: Path, name: str, seed: int, device, recipe: dict,
                   per_round: bool) -> None:
    """The sae_* keys of one model's measures json (final model; every round when per_round),
    unless it already holds them under the same recipe."""
    from superlens.active.loop import _say
    from superlens.active.sae_measures import sae_for_checkpoint

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
    dirs = _model_dirs(out, name, seed)
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
    _say(cfg, f"[{name} seed {seed}] sparse-autoencoder measures, {time.perf_counter() - t0:.1f} s")


ROUND_KEYS = ("cos_mean", "effective_rank", "participation_ratio", "davies_bouldin_raw")


def round_measures(features: torch.Tensor, labels: torch.Tensor) -> dict:
    """The measures recorded for every round's model (ROUND_KEYS; the same definitions as the final
    models'), from its test features [M, d] and labels [M]. t-SNE and the exact silhouette are left
    to the final models: they cost seconds to minutes each."""
    from superlens.measures.clustering import davies_bouldin_score
    from superlens.measures.cosine import sample_cosine_stats
    from superlens.measures.spectrum import effective_rank, participation_ratio

    x = torch.as_tensor(features).detach().to("cpu", torch.float64)
    lab = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).astype(np.int64)
    vals = {"cos_mean": sample_cosine_stats(x, include_diagonal=True)["mean"],
            "effective_rank": effective_rank(x), "participation_ratio": participation_ratio(x),
            "davies_bouldin_raw": davies_bouldin_score(x, lab)}
    return {k: (float(v) if np.isfinite(float(v)) else None) for k, v in vals.items()}


def aggregate(out: Path, cfg: ActiveConfig, seeds: list[int]) -> dict:
    """metrics[model] = {measure: mean, measure_std: std over seeds, rounds: [...], per_seed: {...}}."""
    from superlens.readers import read_object

    metrics: dict[str, Any] = {}
    all_seeds: dict[str, list[dict]] = {}
    for name in ["baseline", *cfg.strategies]:
        per_seed = [read_object(out / "measures" / f"{name}_seed{s}.json",
                                {"measures": dict, "rounds": list}) for s in seeds]
        entry: dict[str, Any] = {}
        keys = per_seed[0]["measures"].keys()
        for k in keys:
            vals = [d["measures"][k] for d in per_seed]
            if all(isinstance(v, (int, float)) and v is not None for v in vals):
                arr = np.asarray(vals, dtype=float)
                entry[k] = float(arr.mean())
                entry[k + "_std"] = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
        entry["per_seed"] = {str(s): d["measures"] for s, d in zip(seeds, per_seed)}
        if name != "baseline":
            entry["rounds"] = _rounds_mean(per_seed)
        metrics[name] = entry
        all_seeds[name] = per_seed
    metrics["verdicts"] = _verdicts(cfg, seeds, all_seeds, _data_name(out, cfg))
    curves = learning_curves({n: {str(s): d["rounds"] for s, d in zip(seeds, v)}
                              for n, v in all_seeds.items() if n != "baseline"},
                             [str(s) for s in seeds])
    for n, c in curves["strategies"].items():
        metrics[n]["learning_curve"] = c
    metrics["verdicts"]["curves_rule"] = curves["rule"]
    return metrics


def _verdicts(cfg: ActiveConfig, seeds: list[int], all_seeds: dict[str, list[dict]],
              dataset: str | None = None) -> dict:
    """metrics["verdicts"]: the paper's claims re-tested (superlens.active.verdicts)."""
    from superlens.active.sae_measures import SAE_VALIDATED, SAE_VALIDATION_NOTE
    from superlens.active.verdicts import claim_rows, verdicts_json

    keys = [str(s) for s in seeds]
    per_seed = {n: {str(s): d["measures"] for s, d in zip(seeds, v)} for n, v in all_seeds.items()}
    per_rounds = {n: {str(s): d["rounds"] for s, d in zip(seeds, v)} for n, v in all_seeds.items()
                  if n != "baseline"}
    rows = claim_rows(per_seed, per_rounds, list(cfg.strategies), keys, SAE_VALIDATED,
                      delta=cfg.delta, primary=cfg.primary, dataset=dataset)
    return verdicts_json(rows, SAE_VALIDATED, SAE_VALIDATION_NOTE, cfg.delta, cfg.primary)


def _data_name(out: Path, cfg: ActiveConfig) -> str:
    """The data set's name for the paper's published numbers: an image-folder tree goes by its
    folder's name (meta.json "dataset", e.g. cifar10)."""
    if cfg.dataset != "image-folder":
        return cfg.dataset
    with contextlib.suppress(Exception):
        return str(read_json(out / "meta.json").get("dataset") or cfg.dataset)
    return cfg.dataset


def learning_curves(per_seed_rounds: dict[str, dict[str, list]], seeds: list[str]) -> dict:
    """metrics["learning_curves"] (superlens.active.curves) from every strategy's rounds."""
    from superlens.active.curves import curves_json

    return curves_json(per_seed_rounds, seeds)


def _rounds_mean(per_seed: list[dict]) -> list[dict]:
    out = []
    n_rounds = min(len(d["rounds"]) for d in per_seed)
    for r in range(n_rounds):
        rs = [d["rounds"][r] for d in per_seed]
        acc = np.asarray([x["accuracy"] for x in rs], dtype=float)
        entry = {"round": r, "labelled": rs[0]["labelled"], "accuracy": float(acc.mean()),
                 "accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0}
        # per-class counts of this round's queries: integer sums over the seeds, and their mean per
        # seed (like accuracy); null for a round that queried nothing (the last one)
        qs = [x.get("queried_per_class") for x in rs]
        total = (np.sum(np.asarray(qs, dtype=np.int64), axis=0)
                 if qs and all(q is not None for q in qs) else None)
        # per-round measures (ROUND_KEYS, the sparse-autoencoder keys): mean and std over seeds
        for k in sorted({k for x in rs for k in x if k.startswith("sae_") or k in ROUND_KEYS}):
            vals = [x.get(k) for x in rs]
            if all(isinstance(v, (int, float)) for v in vals):
                a = np.asarray(vals, dtype=float)
                entry[k] = float(a.mean())
                entry[k + "_std"] = float(a.std(ddof=1)) if len(a) > 1 else 0.0
        entry["seeds"] = len(rs)
        entry["queried_per_class_sum"] = None if total is None else [int(v) for v in total]
        entry["queried_per_class"] = None if total is None else (total / len(rs)).tolist()
        out.append(entry)
    return out


def complete_measures(out: Path) -> bool:
    """Add measures a finished run lacks (the sparse-autoencoder keys, when the measure was not
    installed at run time) from its saved checkpoints, then rewrite metrics.json. True if changed."""
    from superlens.active.sae_measures import sae_available, sae_recipe_dict

    meta = read_json(out / "meta.json")
    if meta.get("status") != "complete":
        return False
    cfg = config_from_json(read_json(out / "config.json"), str(out / "config.json"))
    seeds = [int(s) for s in meta.get("seeds", [])]
    if cfg.sae == "off" or not sae_available():
        write_json(out / "metrics.json", aggregate(out, cfg, seeds))
        return False
    recipe = sae_recipe_dict(cfg)
    missing = [p for n in ["baseline", *cfg.strategies] for s in seeds
               for p in [out / "measures" / f"{n}_seed{s}.json"]
               for d in [read_json(p)]
               if "sae_features" not in d["measures"] or d.get("sae_recipe") != recipe]
    if not missing:
        # re-aggregate anyway (cheap): metrics.json then follows the current verdict rules
        write_json(out / "metrics.json", aggregate(out, cfg, seeds))
        return False
    ds = load_study_data(cfg.replace(progress=False))
    set_threads(choose_threads(cfg.threads, 1 << 30))
    add_sae_measures(cfg, ds, out, seeds, pick_device(cfg.device))
    write_json(out / "metrics.json", aggregate(out, cfg, seeds))
    return True
