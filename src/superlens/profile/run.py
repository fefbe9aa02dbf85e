"""`superlens measure` as a run directory: everything checked before the first write, then
config.json and meta.json, the capture (cached outside the run), one json per finished layer
(layers/), metrics.json, the figure and report.html; --resume continues a cut run.

    DIR/config.json     the resolved MeasureConfig (+ the model's description)
    DIR/meta.json       versions, git commit, device, threads, seeds, wall times; status
    DIR/layers/NN.json  one measured layer (written as it finishes; --resume keeps them)
    DIR/metrics.json    {"layers": {name: {measure: value}}, "definitions": {...}, "model", "data"}
    DIR/figures/profile.png, DIR/report.html
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import torch

from superlens.active.loop import say
from superlens.config import MeasureConfig
from superlens.errors import ConfigError, DataError

KIND = "measure"
RESUME_FREE = {"device", "threads", "progress", "cache_dir"}


def _cache_root(cfg: MeasureConfig) -> Path:
    from superlens.active.image_cache import default_cache_dir

    return Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()


class Prepared:
    """What a measure run reads, loaded and checked: the model (or None), the layers, the data."""

    def __init__(self, cfg: MeasureConfig):
        from superlens.device import pick_device

        self.cfg = cfg
        self.device = pick_device(cfg.device)
        self.loaded = None
        self.inputs = None
        self.acts = None
        self.labels = None
        n_sources = sum(x is not None for x in (cfg.data_dir, cfg.inputs, cfg.activations))
        if n_sources != 1:
            raise ConfigError("data: give exactly one of --data-dir, --inputs or --activations "
                              f"(got {n_sources})")
        if cfg.activations is not None:
            self._activations()
        else:
            self._model_and_inputs()

    def _activations(self) -> None:
        from superlens.profile.inputs import read_activations, read_labels

        cfg = self.cfg
        if cfg.model is not None or cfg.weights is not None:
            raise ConfigError("--activations: measured directly, so --model and --weights are not used")
        acts, labels = read_activations(cfg.activations)
        if cfg.layers:
            import difflib

            for name in cfg.layers:
                if name not in acts:
                    near = difflib.get_close_matches(name, list(acts), n=4, cutoff=0.0)
                    raise ConfigError(f"layer {name!r}: not in activations {cfg.activations} "
                                      f"(nearest: {', '.join(near)})")
            acts = {n: acts[n] for n in cfg.layers}
        if cfg.labels == "none":
            labels = None
        elif cfg.labels != "auto":
            rows = {int(a.shape[0]) for a in acts.values()}
            if len(rows) != 1:
                raise DataError(f"--labels {cfg.labels}: the layers have different row counts")
            labels = read_labels(cfg.labels, rows.pop())
        self.acts, self.labels = acts, labels
        self.description = f"activations from {Path(cfg.activations).expanduser()}"
        self.data_description = ", ".join(f"{n} {list(a.shape)}" for n, a in acts.items())

    def _model_and_inputs(self) -> None:
        from superlens.capture.hooks import resolve_layers
        from superlens.capture.store import probe
        from superlens.profile.inputs import file_source, folder_source, read_labels
        from superlens.profile.specs import load_model

        cfg = self.cfg
        if cfg.model is None:
            raise ConfigError("--model: needed to capture activations (or pass --activations FILE)")
        self.loaded = load_model(cfg.model, cfg.weights, cfg.seed)
        model = self.loaded.model
        if not cfg.layers:
            raise ConfigError("--layers: name at least one module path (--list-layers prints them)")
        resolve_layers(model, list(cfg.layers))
        normalize = cfg.normalize or self.loaded.normalize or "dataset"
        if cfg.data_dir is not None:
            self.inputs = folder_source(cfg.data_dir, split=cfg.split, max_images=cfg.max_images,
                                        normalize=normalize, image_size=cfg.image_size or
                                        self.loaded.image_size, cache_dir=cfg.cache_dir, seed=cfg.seed,
                                        progress=cfg.progress)
        else:
            if cfg.normalize is not None:
                raise ConfigError("--normalize: applies to --data-dir images; --inputs are fed as "
                                  "they are (uint8 as x / 255)")
            self.inputs = file_source(cfg.inputs, max_images=cfg.max_images, seed=cfg.seed)
        n = self.inputs.source.n
        if cfg.labels == "none":
            self.labels = None
        elif cfg.labels == "auto":
            self.labels = self.inputs.labels
        else:
            self.labels = read_labels(cfg.labels, n)
        want = self.loaded.in_channels
        got = self.inputs.in_channels
        if want is not None and got is not None and want != got:
            raise DataError(f"data: {got}-channel images for a model that takes {want} channels "
                            f"({self.inputs.description})")
        model.to(self.device)
        try:
            self.shapes = probe(model, list(cfg.layers), self.inputs.source, self.device)
        except ConfigError:
            raise
        except (RuntimeError, ValueError, TypeError, IndexError) as e:
            from superlens.errors import one_line

            shape = list(self.inputs.source.batch(0, 1, torch.device("cpu")).shape[1:])
            raise DataError(f"data: inputs of shape {shape} per sample do not fit {cfg.model} "
                            f"({one_line(e)[:160]})") from None
        self.description = self.loaded.description
        self.data_description = self.inputs.description


def config_json(cfg: MeasureConfig, prep: Prepared | None = None) -> dict:
    out = cfg.model_dump(mode="json")
    if prep is not None:
        out["model_description"] = prep.description
        out["data_description"] = prep.data_description
    return out


def _check_resume(out: Path, cfg: MeasureConfig) -> None:
    from superlens.readers import read_object

    stored = read_object(out / "config.json")
    now = cfg.model_dump(mode="json")
    diff = [k for k in now if k not in RESUME_FREE and stored.get(k) != now.get(k)]
    if diff:
        k = diff[0]
        raise ConfigError(f"--resume: {out / 'config.json'} has {k} = {stored.get(k)!r} but this "
                          f"command gives {now.get(k)!r}; rerun with the same settings")


def _layer_file(out: Path, depth: int) -> Path:
    return out / "layers" / f"{depth:03d}.json"


def run_measure(cfg: MeasureConfig, out: str | Path, *, force: bool = False, resume: bool = False,
                argv: list[str] | None = None, render: Callable[[Path], Any] | None = None) -> dict:
    """Measure into the run directory ``out``; returns metrics. render(out) writes report.html."""
    from superlens.device import choose_threads, set_threads
    from superlens.profile.api import measure_activations, measure_captured
    from superlens.profile.layer_measures import LAYER_DEFINITIONS
    from superlens.readers import read_object
    from superlens.runs import (RunLock, base_meta, check_out, check_resume_dir, check_run_dir,
                                open_run_dir, sigterm_as_interrupt, write_json)

    if force and resume:
        raise ConfigError("--force and --resume: choose one (--force replaces the run, --resume "
                          "continues it)")
    t0 = time.perf_counter()
    inputs = (cfg.data_dir, cfg.inputs, cfg.activations, cfg.weights,
              cfg.model if cfg.model and Path(cfg.model).expanduser().exists() else None,
              cfg.labels if cfg.labels not in ("auto", "none") else None)
    out = check_out(out, force=force, inputs=inputs)
    resuming = resume and check_resume_dir(out, kind=KIND)
    if resuming:
        _check_resume(out, cfg)
    elif not resume:
        check_run_dir(out, force)
    threads = set_threads(choose_threads(cfg.threads, 1 << 30))
    prep = Prepared(cfg)  # every input checked before anything is written
    with RunLock(out), sigterm_as_interrupt(), open_run_dir(out, force=force and not resume) as d:
        done: dict[str, dict] = {}
        if resuming:
            for f in sorted((d / "layers").glob("*.json")):
                v = read_object(f)
                done[v["layer"]] = v
            meta = read_object(d / "meta.json")
            meta["status"] = "running"
        else:
            write_json(d / "config.json", config_json(cfg, prep))
            meta = base_meta(str(prep.device), threads, [cfg.seed], argv)
            meta["kind"] = KIND
        write_json(d / "meta.json", meta)

        def save(name: str, values: dict) -> None:
            write_json(_layer_file(d, values["depth"]), values)
            say(cfg, f"[{name}] measured" + (f": psi {values['sae_psi']:.3f}"
                                              if values.get("sae_psi") is not None else ""))

        sae = cfg.sae == "on"
        t_cap = time.perf_counter()
        if prep.acts is not None:
            layers = measure_activations(prep.acts, prep.labels, max_rows=cfg.max_rows, seed=cfg.seed,
                                         sae=sae, sae_seeds=cfg.sae_seeds, sae_gflop=cfg.sae_gflop,
                                         device=prep.device, done=done, on_layer=save,
                                         progress=cfg.progress)
            capture_s = 0.0
        else:
            from superlens.capture.store import capture

            acts = capture(prep.loaded.model, list(cfg.layers), prep.inputs.source,
                           cache_dir=_cache_root(cfg) / "activations", max_rows=cfg.max_rows,
                           seed=cfg.seed, batch_size=cfg.batch_size, device=prep.device,
                           progress=cfg.progress)
            capture_s = time.perf_counter() - t_cap
            reused = [n for n, a in acts.items() if a.reused]
            say(cfg, f"activations of {len(acts)} layer(s) in {capture_s:.1f} s"
                 + (f" ({len(reused)} from the cache)" if reused else ""))
            lab = None if prep.labels is None else prep.labels.numpy()
            layers = measure_captured(acts, lab, seed=cfg.seed, sae=sae, sae_seeds=cfg.sae_seeds,
                                      sae_gflop=cfg.sae_gflop, device=prep.device, done=done,
                                      on_layer=save, progress=cfg.progress)
            meta["cache"] = {n: str(a.path) for n, a in acts.items()}
        metrics = {"model": prep.description, "data": prep.data_description,
                   "labels": prep.labels is not None, "layers": layers,
                   "definitions": LAYER_DEFINITIONS, "sae": sae}
        write_json(d / "metrics.json", metrics)
        meta["wall_seconds"] = time.perf_counter() - t0
        meta["capture_seconds"] = capture_s
        write_json(d / "meta.json", meta)
        if render is not None:
            render(d)
        meta["status"] = "complete"
        write_json(d / "meta.json", meta)
    return metrics


def list_model_layers(cfg: MeasureConfig, input_shape: list[int] | None) -> list[tuple[str, str, str]]:
    """--list-layers: (path, type, output shape) on one sample of the data, or of zeros of
    input_shape when no data is given."""
    from superlens.capture.hooks import list_layers
    from superlens.profile.inputs import file_source, folder_source
    from superlens.profile.specs import load_model

    if cfg.model is None:
        raise ConfigError("--list-layers: needs --model")
    loaded = load_model(cfg.model, cfg.weights, cfg.seed)
    if cfg.data_dir is not None:
        src = folder_source(cfg.data_dir, split=cfg.split, max_images=1,
                            normalize=cfg.normalize or loaded.normalize or "dataset",
                            image_size=cfg.image_size or loaded.image_size, cache_dir=cfg.cache_dir,
                            progress=cfg.progress).source
        x = src.batch(0, 1, torch.device("cpu"))
    elif cfg.inputs is not None:
        x = file_source(cfg.inputs, max_images=1).source.batch(0, 1, torch.device("cpu"))
    else:
        x = torch.zeros([1, *input_shape])
    try:
        return list_layers(loaded.model, x)
    except (RuntimeError, ValueError, TypeError, IndexError) as e:
        from superlens.errors import one_line

        raise DataError(f"data: inputs of shape {list(x.shape[1:])} per sample do not fit "
                        f"{cfg.model} ({one_line(e)[:160]})") from None


__all__ = ["KIND", "Prepared", "run_measure", "list_model_layers"]
