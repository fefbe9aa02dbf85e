"""Run one group of sweep points and return one row (a flat dict) per point.

toy / tms: the group's points share tensor shapes, so they train together on the instance axis with
per-instance p, q (or importance), lr and seed. active: one point is one study run.
Every row carries 'point' (its index in the grid) and the point's axis values.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from superlens.device import choose_threads, pick_device, set_threads
from superlens.sweep.grid import Group


def run_group(study: str, group: Group, options: dict) -> dict:
    """{"rows": one flat row per point, "point_metrics": {point index: per-point metrics with the
    per-feature arrays}, "threads": torch threads used, "thread_budget": this worker's cores}."""
    before = torch.get_num_threads()
    try:
        out = {"toy": run_toy_group, "tms": run_tms_group, "active": run_active_group}[study](group,
                                                                                          options)
    finally:
        torch.set_num_threads(before)
    out["thread_budget"] = int(options.get("thread_budget") or 0) or None
    for r in out["rows"]:
        r["threads"] = out["threads"]
    return out


def _threads(requested: int | None, work_elements: int, options: dict) -> int:
    """An explicit request wins; otherwise choose_threads, capped at this worker's core budget."""
    if requested is not None:
        return set_threads(requested)
    n = choose_threads(None, work_elements)
    budget = options.get("thread_budget")
    return set_threads(min(n, int(budget)) if budget else n)


def _rows_base(group: Group) -> list[dict]:
    return [{"point": p.index, **p.values} for p in group.points]


# --- the compressed-computation model -------------------------------------------------------------

# thresholds of classify_toy (quoted by the sweep report)
GAIN_DEDICATED = 0.9  # a feature is computed as if it had its own neuron
GAIN_IGNORED = 0.1  # a feature is ignored
FRAC_IGNORED = 0.1  # share of ignored features that makes 'ignore-some'
CV_UNIFORM = 0.25  # std/mean below which gains (and errors) count as uniform
ERROR_SPLIT = 2.0  # ignored features' mean error over the others' that confirms they are dropped


def _cv(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("inf")
    return float(np.std(v) / max(abs(float(np.mean(v))), 1e-12))


def classify_toy(gains: np.ndarray, mse: np.ndarray) -> str:
    """The strategy a model learned, from the spread of its per-feature gains [n] (slope of output i
    vs input i > 0) AND of its per-feature errors mse [n] (active-conditioned MSE).

    'all-dedicated': every feature computed (gain > 0.9): no compression needed.
    'ignore-some':   >= 10 % of features ignored (gain < 0.1) and their error split from the rest
                     (their mean MSE >= 2x the others'; all ignored also counts) — the naive strategy.
    'attenuate-all': no feature ignored, gains uniform AND errors uniform (coefficient of variation
                     < 0.25 each) — the report's superposition strategy.
    'mixed':         anything else (e.g. uniform gains but uneven errors).
    """
    gains = np.asarray(gains, dtype=float)
    mse = np.asarray(mse, dtype=float)
    if np.all(gains > GAIN_DEDICATED):
        return "all-dedicated"
    ignored = gains < GAIN_IGNORED
    if float(np.mean(ignored)) >= FRAC_IGNORED:
        rest = mse[~ignored]
        rest = rest[np.isfinite(rest)]
        ign = mse[ignored]
        ign = ign[np.isfinite(ign)]
        if rest.size == 0 or (ign.size and float(ign.mean()) >= ERROR_SPLIT * float(rest.mean())):
            return "ignore-some"
        return "mixed"
    if not ignored.any() and _cv(gains) < CV_UNIFORM and _cv(mse) < CV_UNIFORM:
        return "attenuate-all"
    return "mixed"


def run_toy_group(group: Group, options: dict) -> dict:
    from superlens.toy.sweep_metrics import point_metrics
    from superlens.toy.train import train_mlp

    cfgs = [p.config for p in group.points]
    c0 = cfgs[0]
    device = pick_device(c0.device)
    threads = _threads(c0.threads, len(cfgs) * c0.batch_size * c0.n_features, options)
    res = train_mlp(c0.n_features, c0.n_hidden, seeds=[c.seed for c in cfgs], p=[c.p for c in cfgs],
                    loss_power=[c.loss_power for c in cfgs], lr=[c.lr for c in cfgs],
                    steps=c0.steps, batch_size=c0.batch_size, bias=c0.bias, device=device,
                    progress=options.get("progress", False), desc=f"h={c0.n_hidden}")
    rows = _rows_base(group)
    per_point = {}
    for i, (row, pt, cfg) in enumerate(zip(rows, group.points, cfgs)):
        m = point_metrics(res.params.select(i), p=cfg.p, loss_power=cfg.loss_power,
                          eval_samples=cfg.eval_samples, seed=cfg.seed + 10_000)
        gains, mse = m.pop("gains"), m.pop("mse_active")
        m["phase"] = classify_toy(np.asarray(gains), np.asarray(mse))
        m["mse_active_cv"] = _cv(np.asarray(mse, dtype=float))
        row.update(n_features=cfg.n_features, n_hidden=cfg.n_hidden, p=cfg.p,
                   loss_power=cfg.loss_power, ratio=cfg.n_hidden / cfg.n_features,
                   eval_samples=cfg.eval_samples, train_seconds=res.seconds / len(cfgs), **m)
        per_point[pt.index] = {**row, "gain": gains, "mse_active": mse}
    return {"rows": rows, "point_metrics": per_point, "threads": threads}


# --- the classic toy model of superposition -------------------------------------------------------

def classify_tms(norms: np.ndarray, n_hidden: int) -> str:
    """'superposition' when more features are represented (||W_i|| > 0.5) than there are dimensions;
    'all-dedicated' when every feature is represented in its own dimension; 'ignore-some' otherwise."""
    rep = int(np.sum(norms > 0.5))
    if rep > n_hidden:
        return "superposition"
    return "all-dedicated" if rep == len(norms) else "ignore-some"


# row columns of the geometry classes (superlens.measures.dimensionality.GEOMETRIES)
GEOMETRY_KEYS = {"1: dedicated": "dedicated", "3/4: tetrahedron": "tetrahedron",
                 "2/3: triangle": "triangle", "1/2: antipodal pair": "antipodal",
                 "2/5: pentagon": "pentagon", "3/8: square antiprism": "square_antiprism",
                 "0: not represented": "not_represented", "other": "other"}


def run_tms_group(group: Group, options: dict) -> dict:
    from superlens.measures.dimensionality import (GEOMETRIES, dimensions_per_feature,
                                                   feature_dimensionality, geometry_classes)
    from superlens.toy.tms import importance_decay, train_tms

    cfgs = [p.config for p in group.points]
    c0 = cfgs[0]
    device = pick_device(c0.device)
    threads = _threads(None, len(cfgs) * c0.batch_size * c0.n_features, options)
    importance = torch.stack([importance_decay(c0.n_features, c.importance_decay) for c in cfgs])
    params, log = train_tms(c0.n_features, c0.n_hidden, importance=importance,
                            feature_probability=torch.tensor([c.p for c in cfgs]),
                            steps=c0.steps, batch_size=c0.batch_size, lr=[c.lr for c in cfgs],
                            seeds=[c.seed for c in cfgs], device=device,
                            progress=options.get("progress", False), desc=f"tms n={c0.n_features}")
    W = params.W.detach().cpu()
    D = feature_dimensionality(W).numpy()
    Dstar = dimensions_per_feature(W).numpy()
    norms = W.norm(dim=1).numpy()  # [I, n]
    rows = _rows_base(group)
    classes = geometry_classes(D)
    per_point = {}
    for i, (row, pt, cfg) in enumerate(zip(rows, group.points, cfgs)):
        counts = {f"n_{GEOMETRY_KEYS[name]}": 0 for _, name in GEOMETRIES}
        counts["n_other"] = 0
        for name in classes[i]:
            counts[f"n_{GEOMETRY_KEYS.get(name, 'other')}"] += 1
        row.update(**counts)
        row.update(n_features=cfg.n_features, n_hidden=cfg.n_hidden, p=cfg.p,
                   importance_decay=cfg.importance_decay, loss=float(log["loss"][-1][i]),
                   dims_per_feature=float(Dstar[i]), n_represented=int(np.sum(norms[i] > 0.5)),
                   phase=classify_tms(norms[i], cfg.n_hidden),
                   feature_norms=norms[i].tolist(), feature_dimensionality=D[i].tolist(),
                   W=W[i].tolist(), train_seconds=log["seconds"] / len(cfgs))
        per_point[pt.index] = {**row, "geometry_classes": classes[i]}
    return {"rows": rows, "point_metrics": per_point, "threads": threads}


# --- the active-learning study --------------------------------------------------------------------

def run_active_group(group: Group, options: dict) -> dict:
    """The group's points differ only in their strategy: one study run (one baseline per seed)
    with every point's strategy in its strategies list; one row per point."""
    from superlens.active.study import run_active
    from superlens.sweep.grid import shared_active_config

    cfg = shared_active_config(group).replace(progress=False)
    budget = options.get("thread_budget")
    if cfg.threads is None and budget:
        cfg = cfg.replace(threads=int(budget))
    d = Path(options["runs_dir"]) / group.gid
    # an interrupted run resumes from its last finished round
    metrics = run_active(cfg, d, resume=d.is_dir() and any(d.iterdir()))
    rows = _rows_base(group)
    per_point = {}
    for row, pt in zip(rows, group.points):
        name = pt.config.strategies[0]
        row.update(strategy=name, seed=cfg.seed, run_dir=f"runs/{group.gid}")
        for k, v in metrics[name].items():
            if isinstance(v, (int, float)) and not k.endswith("_std"):
                row[k] = v
        for k, v in metrics["baseline"].items():
            if isinstance(v, (int, float)) and not k.endswith("_std"):
                row[f"baseline_{k}"] = v
        per_point[pt.index] = dict(row)
    return {"rows": rows, "point_metrics": per_point, "threads": cfg.threads or torch.get_num_threads()}
