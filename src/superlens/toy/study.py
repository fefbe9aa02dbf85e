"""The compressed-computation study end to end: config -> run directory -> train (seeds as
instances, plus the same seeds under L2) -> analyses -> metrics.json, figures, report.html."""
from __future__ import annotations

import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from superlens.config import ToyConfig
from superlens.device import choose_threads, pick_device, set_threads
from superlens.errors import RunDirError
from superlens.runs import StagedRunDir, atomic_write_bytes, base_meta, read_json, write_json
from superlens.toy.geometry import geometry_summary
from superlens.toy.models import MLPParams
from superlens.toy.train import train_mlp


def save_params(path: Path, params: dict[str, MLPParams]) -> None:
    """All models of a run in one safetensors file, keys '<name>.<tensor>' (e.g. 'l4.W_in')."""
    from safetensors.torch import save

    tensors = {f"{name}.{k}": v.detach().cpu().contiguous()
               for name, p in params.items() for k, v in p.tensors().items()}
    atomic_write_bytes(path, save(tensors))


def load_params(path: Path) -> dict[str, MLPParams]:
    try:
        flat = load_file(str(path))
    except Exception as e:  # safetensors raises several types for a corrupt file
        raise RunDirError(f"{path}: not a readable safetensors file ({e})") from None
    groups: dict[str, dict] = {}
    for key, v in flat.items():
        name, k = key.split(".", 1)
        groups.setdefault(name, {})[k] = v
    return {name: MLPParams.from_tensors(d) for name, d in groups.items()}


def train_toy(cfg: ToyConfig, device: torch.device, progress: bool = True,
              loss_power: float | None = None):
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    q = cfg.loss_power if loss_power is None else loss_power
    return train_mlp(cfg.n_features, cfg.n_hidden, seeds=seeds, p=cfg.p, loss_power=q, lr=cfg.lr,
                     steps=cfg.steps, batch_size=cfg.batch_size, bias=cfg.bias, device=device,
                     progress=progress, log_every=cfg.log_every, desc=f"train L{q:g}")


def run_toy(cfg: ToyConfig, out: str | Path, *, force: bool = False, progress: bool = True,
            argv: list[str] | None = None) -> dict:
    """Train, analyse and report into run directory ``out``. Returns metrics.

    The directory is built beside ``out`` and moved into place when complete: an interrupted or
    failed run leaves nothing behind, and an existing ``out`` is refused unless ``force``.
    """
    t_start = time.perf_counter()
    device = pick_device(cfg.device)
    threads = set_threads(choose_threads(cfg.threads, cfg.seeds * cfg.batch_size * cfg.n_features))
    with StagedRunDir(out, force) as tmp:
        metrics = _run_into(cfg, tmp, device, threads, progress, argv, t_start)
    return metrics


def _run_into(cfg: ToyConfig, out: Path, device: torch.device, threads: int, progress: bool,
              argv: list[str] | None, t_start: float) -> dict:
    from superlens.toy.analysis import analyze

    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    meta = base_meta(str(device), threads, seeds, argv)
    meta["kind"] = "toy"
    meta["threads_rule"] = "1 thread below 4M elements per op, else all cores (superlens.device)"
    # the run directory's config is fully resolved: "auto" device and unset threads become the values
    # this run used (the same as meta.json's), so rerunning from it reproduces the run's setting
    write_json(out / "config.json", {**cfg.model_dump(mode="json"), "device": str(device),
                                     "threads": threads})
    write_json(out / "meta.json", meta)

    res = train_toy(cfg, device, progress)
    models = {"trained": res.params}
    train_seconds = {"trained": res.seconds}
    l2 = None
    if cfg.compare_l2 and cfg.loss_power != 2.0:
        l2_res = train_toy(cfg, device, progress, loss_power=2.0)
        l2 = l2_res.params
        models["l2"] = l2
        train_seconds["l2"] = l2_res.seconds
    save_params(out / "model.safetensors", models)
    write_json(out / "train_log.json", {"steps": res.loss_steps, "loss": res.loss})

    t_an = time.perf_counter()
    analysis = analyze(res.params, p=cfg.p, loss_power=cfg.loss_power,
                       eval_samples=cfg.eval_samples, seed=cfg.seed + 10_000, l2_params=l2)
    metrics = analysis.metrics()
    geo_metrics, geo = geometry_summary(res.params.W_in.detach().cpu(), seed=cfg.seed)
    metrics.update(geo_metrics)
    write_json(out / "geometry.json", geo)
    # the SAE measure of superposition on the hidden layer (issue 8; superlens.measures.sae)
    from superlens.toy.sae_validation import toy_sae_metrics

    t_sae = time.perf_counter()
    metrics.update(toy_sae_metrics(res.params, cfg.p, cfg.seed))
    metrics["sae_seconds"] = time.perf_counter() - t_sae
    metrics["train_seconds"] = train_seconds["trained"]
    metrics["l2_train_seconds"] = train_seconds.get("l2")
    write_json(out / "analysis.json", analysis.to_dict())
    write_json(out / "metrics.json", metrics)
    # wall_seconds is set before rendering, because the report reads it from meta.json; the time
    # the rendering itself takes is added afterwards as report_seconds
    meta.update(status="complete", train_seconds=train_seconds,
                analysis_seconds=time.perf_counter() - t_an,
                wall_seconds=time.perf_counter() - t_start)
    write_json(out / "meta.json", meta)
    t_rep = time.perf_counter()
    render_toy_report(out)
    meta["report_seconds"] = time.perf_counter() - t_rep
    write_json(out / "meta.json", meta)
    return metrics


def render_toy_report(out: str | Path) -> Path:
    """(Re)draw figures and report.html from a finished run directory, without training."""
    from superlens.report.toy_figures import make_toy_figures
    from superlens.report.toy_report import toy_report_html
    from superlens.runs import atomic_write_text
    from superlens.toy.analysis import ToyAnalysis

    out = Path(out)
    config, meta = read_json(out / "config.json"), read_json(out / "meta.json")
    metrics = read_json(out / "metrics.json")
    analysis = ToyAnalysis.from_dict(read_json(out / "analysis.json"))
    figures = make_toy_figures(analysis, out / "figures")
    if (out / "geometry.json").exists():
        from superlens.toy.geometry import plot_frame_geometry

        name = plot_frame_geometry(read_json(out / "geometry.json"), out / "figures" / "toy_frame.png")
        figures.append((name, "Open question 2 — feature geometry: the Gram spectrum of W_in's unit "
                              "columns and the worst pair, against random and near-equiangular frames "
                              "of the same shape (seed 0)."))
    html = toy_report_html(config, meta, metrics, analysis, out / "figures", figures)
    atomic_write_text(out / "report.html", html)
    return out / "report.html"
