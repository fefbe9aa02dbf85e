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
from superlens.runs import base_meta, check_resume_dir, sigterm_as_interrupt, write_json

MEASURE_KEYS = ["accuracy", "cos_mean", "cos_std", "silhouette_tsne", "davies_bouldin_tsne",
                "silhouette_raw", "davies_bouldin_raw", "effective_rank", "participation_ratio",
                "neuron_abs_cos_mean", "selectivity_mean"]
# fields that may differ on --resume without changing any result (the paths, like the loop's
# fingerprints, may move between machines)
RESUME_FREE = {"device", "threads", "progress", "data_dir", "weights_path", "download"}


def config_from_cli(preset_name: str | None, config_file: str | None,
                    overrides: dict[str, Any]) -> ActiveConfig:
    """Preset (default 'digits'), then the TOML file, then flags; validated once."""
    file_data = load_toml(config_file) if config_file else {}
    name = preset_name or file_data.get("preset") or "digits"
    data = preset(name)
    data.update(file_data)
    data["preset"] = name
    data.update(overrides)
    source = f"config file {config_file}" if config_file else "config"
    return ActiveConfig.build(data, source=source)


def _check_resume_config(out: Path, cfg: ActiveConfig) -> None:
    from superlens.readers import read_object

    stored = read_object(out / "config.json")
    now = cfg.model_dump(mode="json")
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
    from superlens.active.data import load_dataset
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
    ds = load_dataset(cfg.dataset, cfg.data_dir, download=cfg.download, seed=cfg.seed,
                      test_fraction=cfg.test_fraction, progress=cfg.progress)
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
            else:
                meta = base_meta(str(device), threads, seeds, argv)
                meta.update(kind="active", protocol=protocol_statement(cfg), dataset=ds.name,
                            n_train=int(ds.train_y.shape[0]), n_test=int(ds.test_y.shape[0]),
                            class_names=list(ds.class_names))
                # resolved, as meta.json: the device, thread count and mixed precision this run used
                write_json(work / "config.json", {**cfg.model_dump(mode="json"), "device": str(device),
                                                  "threads": threads, "amp": _amp(device, cfg.amp)})
            write_json(work / "meta.json", meta)
            try:
                metrics = _run_into(cfg, ds, work, seeds, device)
            except KeyboardInterrupt:  # finished steps stay; --resume continues after them
                meta["status"] = "interrupted"
                with contextlib.suppress(OSError):
                    write_json(work / "meta.json", meta)
                raise
            meta.update(wall_seconds=time.perf_counter() - t_start)
            write_json(work / "meta.json", meta)
            if render is not None:
                render(work)
            meta["status"] = "complete"  # set last: a run whose report failed is not complete
            write_json(work / "meta.json", meta)
    return metrics


def _run_into(cfg: ActiveConfig, ds, out: Path, seeds: list[int], device: torch.device) -> dict:
    from superlens.active.loop import run_loop, train_baseline

    with sigterm_as_interrupt():  # a SIGTERM stops like Ctrl-C; finished steps stay resumable
        for seed in seeds:
            base_dir = out / "baseline" / f"seed{seed}"
            base = train_baseline(cfg, ds, seed, base_dir, device)
            _measure(cfg, ds, base_dir, base, "baseline", seed, out)
            for name in cfg.strategies:
                al_dir = out / "al" / name / f"seed{seed}"
                res = run_loop(cfg, ds, name, seed, al_dir, device, base_dir)
                _measure(cfg, ds, al_dir, res, name, seed, out)
    metrics = aggregate(out, cfg, seeds)
    write_json(out / "metrics.json", metrics)
    return metrics


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


@torch.no_grad()
def paper_quirk_features(cfg: ActiveConfig, ds, checkpoint: Path, device: torch.device) -> torch.Tensor:
    """Test-set features as the paper's notebook extracted them (the last residual block applied
    twice, then pooled), from a saved checkpoint. [M, 512] float32 on the CPU."""
    from superlens.active.data import normalize_batch, resolve_normalization
    from superlens.errors import one_line
    from superlens.active.loop import _load
    from superlens.active.models import build_model, paper_double_block_features

    model = build_model(cfg.model, len(ds.class_names), ds.in_channels, dropout=cfg.dropout)
    ck = _load(Path(checkpoint))  # missing / truncated / foreign -> one CheckpointError line
    if not isinstance(ck, dict) or not isinstance(ck.get("model"), dict):
        raise CheckpointError(f"checkpoint {checkpoint}: not a superlens checkpoint (no model entry)")
    try:
        model.load_state_dict(ck["model"])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {checkpoint}: does not fit the model "
                              f"({one_line(e)[:200]})") from None
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
                                       tsne_points=cfg.tsne_points)
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
    rounds = result.get("rounds", [])
    from superlens.runs import atomic_write_bytes
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    atomic_write_bytes(stem.with_suffix(".npz"), buf.getvalue())
    write_json(stem.with_suffix(".json"), {"measures": scalars, "rounds": rounds})


def aggregate(out: Path, cfg: ActiveConfig, seeds: list[int]) -> dict:
    """metrics[model] = {measure: mean, measure_std: std over seeds, rounds: [...], per_seed: {...}}."""
    from superlens.readers import read_object

    metrics: dict[str, Any] = {}
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
    return metrics


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
        entry["seeds"] = len(rs)
        entry["queried_per_class_sum"] = None if total is None else [int(v) for v in total]
        entry["queried_per_class"] = None if total is None else (total / len(rs)).tolist()
        out.append(entry)
    return out
