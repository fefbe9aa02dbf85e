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

from superlens.active.checkpoints import load_model_checkpoint, model_dirs
from superlens.active.presets import preset, protocol_statement
from superlens.active.sae_measures import (add_sae_measures, sae_validated, sae_validation_note,
                                           sae_recipe_dict)
from superlens.active.train import amp_enabled
from superlens.config import ActiveConfig, load_toml
from superlens.device import choose_threads, pick_device, set_threads
from superlens.errors import ConfigError, DataError
from superlens.measures.numeric import mean_std
from superlens.runs import base_meta, check_resume_dir, read_json, sigterm_as_interrupt, write_json

# fields that may differ on --resume without changing any result (the paths, like the loop's
# fingerprints, may move between machines). seeds: a resume may add seeds (or keep a prefix); each
# seed's models depend on that seed alone. ensemble: how many models train at once changes results
# only by float rounding, as threads do.
RESUME_FREE = {"device", "threads", "progress", "data_dir", "weights_path", "download", "cache_dir",
               "seeds", "ensemble", "sae_recipe", "sae", "sae_gflop"}
# the smallest image side the models take (image_size has the same bound)
MIN_SIDE = 8
# fields added after runs were saved, with the value an earlier run's config.json means by leaving
# them out (the behaviour before the field existed)
ADDED_LATER = {"lr_schedule": "constant"}
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
    out = cfg.model_dump(mode="json")
    if device is not None:
        out.update(device=str(device), threads=threads, amp=amp_enabled(device, cfg.amp))
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

    stored = {**ADDED_LATER, **read_object(out / "config.json")}
    now = config_json(cfg)
    # amp as it acts on this device: config.json stores the resolved value (false on the CPU), and
    # an older one may hold the flag as given
    dev = pick_device(cfg.device)
    stored = {**stored, "amp": amp_enabled(dev, stored.get("amp"))}
    now = {**now, "amp": amp_enabled(dev, cfg.amp)}
    diff = {k: (stored.get(k), now.get(k)) for k in sorted(set(stored) | set(now))
            if k not in RESUME_FREE and stored.get(k) != now.get(k)}
    if diff:
        raise ConfigError(f"--resume: {mismatch_text(diff)}; resume with `superlens active --out "
                          f"{out} --resume` (the run's own settings) or start a new run in another "
                          "--out")


def mismatch_text(diff: dict[str, tuple]) -> str:
    """'this command gives epochs = 3 (the run has 1), lr = ...': every mismatched field, the preset
    first (it explains the fields it sets)."""
    keys = sorted(diff, key=lambda k: (k != "preset", k))
    return "this command gives " + ", ".join(f"{k} = {diff[k][1]!r} (the run has {diff[k][0]!r})"
                                             for k in keys)


def config_for_resume(out: str | Path, preset_name: str | None, config_file: str | None,
                      overrides: dict[str, Any]) -> ActiveConfig:
    """The config of `superlens active --out DIR --resume`: the run's own (DIR/config.json). The
    settings the command gives (a preset, a config file's keys, flags) are checked against it: the
    ones that may change on resume (RESUME_FREE: paths, device, threads, progress, the
    sparse-autoencoder pass) take the new value, any other that differs is refused, every such
    field named in the one line."""
    from superlens.readers import read_object

    out = Path(out)
    stored = read_object(out / "config.json", {"strategies": list})
    run_cfg = config_from_json(stored, str(out / "config.json"))
    # config.json holds amp as resolved on the run's device (false on a CPU); the checkpoints'
    # fingerprints hold the flag the run was given, so take it from there when one exists
    for marker in sorted(out.glob("baseline/seed*/result.json"))[:1]:
        with contextlib.suppress(Exception):
            run_cfg = run_cfg.replace(amp=bool(read_json(marker)["fingerprint"]["amp"]))
    file_data = load_toml(config_file) if config_file else {}
    given = {**({"preset": preset_name} if preset_name else {}), **file_data, **overrides}
    if not given:
        return run_cfg
    now = config_from_cli(preset_name or stored.get("preset"), config_file, overrides)
    diff = {k: (getattr(run_cfg, k), getattr(now, k)) for k in given
            if k not in RESUME_FREE and k in ActiveConfig.model_fields
            and getattr(run_cfg, k) != getattr(now, k)}
    if diff:
        raise ConfigError(f"--resume: {mismatch_text(diff)}; resume with `superlens active --out "
                          f"{out} --resume` alone (the run's own settings) or start a new run in "
                          "another --out")
    return run_cfg.replace(**{k: getattr(now, k) for k in given if k in RESUME_FREE})


def run_active(cfg: ActiveConfig, out: str | Path, *, force: bool = False, resume: bool = False,
               argv: list[str] | None = None, render: Callable[..., Any] | None = None,
               inputs: tuple = ()) -> dict:
    """Run (or resume) the study into ``out``; returns metrics. render(out, status=...) draws the
    figures and report.html at the end (superlens.studies.active.render_active_report, which the
    command and sweeps pass: the report layer sits above this package); status "complete" on the
    last page, which is written before meta.json says so.

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
    resume_cmd = f"superlens active --out {out} --resume"
    # a --resume target must be empty/missing or a superlens active run; refuse anything else early
    check_resume_dir(out, kind="active") if resume else check_run_dir(out, force, resume_cmd)
    # everything that can be wrong with the input is checked before the run directory is touched;
    # a fresh decode's cache write waits in `pending` until then
    from superlens.active.image_cache import check_cache_dir

    check_cache_dir(cfg.cache_dir, cfg.data_dir, out)
    pending: list[Callable[[], None]] = []
    ds = load_study_data(cfg, pending)
    side = cfg.image_size or ds.image_size
    # ~ activation elements of a first conv layer: small models run faster on one thread
    threads = set_threads(choose_threads(cfg.threads, cfg.batch_size * 64 * side * side))
    validate_plan(cfg, int(ds.train_y.shape[0]))
    preflight_model(cfg, ds)
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    with RunLock(out):
        # again under the lock: another process may have written it meanwhile
        resuming = (check_resume_dir(out, kind="active") if resume
                    else check_run_dir(out, force, resume_cmd))
        if resuming:
            # every check of what is already there comes before the first write: a refused resume
            # leaves the run directory byte for byte as it was
            _check_resume_config(out, cfg)
            for seed in seeds:
                check_resumable(cfg, out / "baseline" / f"seed{seed}",
                                {n: out / "al" / n / f"seed{seed}" for n in cfg.strategies}, seed)
            from superlens.readers import read_meta

            meta = read_meta(out)
            _check_same_data(out, meta, ds)
        for write in pending:  # every check has passed: the decoded images may be cached now
            write()
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
                            class_names=list(ds.class_names), data_sha256=ds.digest())
                write_json(work / "config.json", config_json(cfg, device, threads))
            write_json(work / "meta.json", meta)
            before = float(meta.get("wall_seconds_before", 0.0))
            try:
                metrics = _run_into(cfg, ds, work, seeds, device)
                meta.update(wall_seconds=before + time.perf_counter() - t_start)
                write_json(work / "meta.json", meta)
                # the sparse-autoencoder pass last: the slowest measure on a CPU; the report
                # drawn before it already holds everything else (and says "running")
                sae_next = cfg.sae != "off"  # add_sae_measures does nothing when off
                if render is not None:
                    render(work, status=None if sae_next else "complete")
                with sigterm_as_interrupt():
                    if sae_next and add_sae_measures(cfg, ds, work, seeds, device):
                        metrics = aggregate(work, cfg, seeds)
                        write_json(work / "metrics.json", metrics)
                        meta.update(wall_seconds=before + time.perf_counter() - t_start)
                        write_json(work / "meta.json", meta)
                        if render is not None:
                            render(work, status="complete")
            except BaseException as e:  # finished steps stay; --resume continues after them
                meta["status"] = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
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


def _check_same_data(out: Path, meta: dict, ds) -> None:
    """A resumed run must train on the data it started with: the digest of its images and labels
    (meta.json data_sha256; runs from before it was recorded: the image counts)."""
    then = (meta.get("n_train"), meta.get("n_test"))
    now = (int(ds.train_y.shape[0]), int(ds.test_y.shape[0]))
    stored = meta.get("data_sha256")
    if then != now or (stored is not None and stored != ds.digest()):
        what = (f"{then[0]} training / {then[1]} test images then, {now[0]} / {now[1]} now"
                if then != now else "the same image counts but other images or labels")
        raise DataError(f"--resume: the data changed since {out} started ({what}, by meta.json); "
                        "resume with the data it started with, or start a new run in another --out")


def load_study_data(cfg: ActiveConfig, pending: list[Callable[[], None]] | None = None):
    """The data set the study trains on, the one function the run and every pre-check use:
    cfg.dataset from cfg.data_dir (decoded at cfg.image_size into cfg.cache_dir), cut to a
    class-balanced cfg.pool_size subset and its test split to a class-balanced cfg.test_size subset
    when set (drawn by cfg.seed, the same subsets for every seed of the run). pending: see
    superlens.active.data.load_dataset (a pre-check passes a list and drops it: it writes nothing)."""
    from superlens.active.data import NEEDS_FOLDER, balanced_subset, load_dataset
    from superlens.active.loop import derive_seed

    if cfg.data_dir is None and cfg.dataset in NEEDS_FOLDER:
        who = f"preset {cfg.preset} (dataset {cfg.dataset})" if cfg.preset else f"dataset {cfg.dataset}"
        raise DataError(f"{who}: needs --data-dir DIR (data_dir), {NEEDS_FOLDER[cfg.dataset]}")
    ds = load_dataset(cfg.dataset, cfg.data_dir, download=cfg.download, seed=cfg.seed,
                      test_fraction=cfg.test_fraction, progress=cfg.progress, cache_dir=cfg.cache_dir,
                      image_size=cfg.image_size, pending=pending)
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
    if cfg.image_size is None and ds.image_size < MIN_SIDE:
        raise ConfigError(f"data set {ds.name}: its images are {ds.image_size}x{ds.image_size}, "
                          f"smaller than the models' {MIN_SIDE}x{MIN_SIDE}; pass --image-size "
                          f"{MIN_SIDE} (image_size, or larger) to resize them")
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
        d = model_dirs(out, name, seed)
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
                entry[k], entry[k + "_std"] = mean_std(vals)
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
    from superlens.active.verdicts import claim_rows, verdicts_json

    keys = [str(s) for s in seeds]
    per_seed = {n: {str(s): d["measures"] for s, d in zip(seeds, v)} for n, v in all_seeds.items()}
    per_rounds = {n: {str(s): d["rounds"] for s, d in zip(seeds, v)} for n, v in all_seeds.items()
                  if n != "baseline"}
    validated = sae_validated()
    rows = claim_rows(per_seed, per_rounds, list(cfg.strategies), keys, validated,
                      delta=cfg.delta, primary=cfg.primary, dataset=dataset)
    return verdicts_json(rows, validated, sae_validation_note(), cfg.delta, cfg.primary)


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
        acc, acc_std = mean_std([x["accuracy"] for x in rs])
        entry = {"round": r, "labelled": rs[0]["labelled"], "accuracy": acc, "accuracy_std": acc_std}
        # per-class counts of this round's queries: integer sums over the seeds, and their mean per
        # seed (like accuracy); null for a round that queried nothing (the last one)
        qs = [x.get("queried_per_class") for x in rs]
        total = (np.sum(np.asarray(qs, dtype=np.int64), axis=0)
                 if qs and all(q is not None for q in qs) else None)
        # per-round measures (ROUND_KEYS, the sparse-autoencoder keys): mean and std over seeds
        for k in sorted({k for x in rs for k in x if k.startswith("sae_") or k in ROUND_KEYS}):
            vals = [x.get(k) for x in rs]
            if all(isinstance(v, (int, float)) for v in vals):
                entry[k], entry[k + "_std"] = mean_std(vals)
        entry["seeds"] = len(rs)
        entry["queried_per_class_sum"] = None if total is None else [int(v) for v in total]
        entry["queried_per_class"] = None if total is None else (total / len(rs)).tolist()
        out.append(entry)
    return out


def complete_measures(out: Path) -> bool:
    """Bring a run's metrics.json up to the current code: add measures a finished run lacks (the
    sparse-autoencoder keys, when the run predates the measure or its recipe has changed) from its
    saved checkpoints, and re-aggregate from the per-seed measures, so the verdict rows and
    learning curves follow the current rules, never the text an earlier version stored. A run
    that did not finish is re-aggregated over the seeds its metrics.json holds (nothing when it
    has none). True if measures were added."""
    meta = read_json(out / "meta.json")
    cfg = config_from_json(read_json(out / "config.json"), str(out / "config.json"))
    if meta.get("status") != "complete":
        seeds = _aggregated_seeds(out)
        if seeds:
            write_json(out / "metrics.json", aggregate(out, cfg, seeds))
        return False
    seeds = [int(s) for s in meta.get("seeds", [])]
    if cfg.sae == "off":
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


def _aggregated_seeds(out: Path) -> list[int]:
    """The seeds metrics.json was aggregated over (its baseline's per-seed keys; [] without one)."""
    from superlens.readers import read_object

    if not (out / "metrics.json").is_file():
        return []
    per_seed = read_object(out / "metrics.json", {"baseline": dict})["baseline"].get("per_seed")
    return sorted(int(s) for s in per_seed) if isinstance(per_seed, dict) else []
