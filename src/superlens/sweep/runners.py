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


def run_group(study: str, group: Group, options: dict) -> list[dict]:
    return {"toy": run_toy_group, "tms": run_tms_group, "active": run_active_group}[study](group, options)


def _rows_base(group: Group) -> list[dict]:
    return [{"point": p.index, **p.values} for p in group.points]


# --- the compressed-computation model -------------------------------------------------------------

def classify_toy(gains: np.ndarray, mse: np.ndarray) -> str:
    """The strategy a model learned, from its per-feature gains [n] (slope of output i vs input i > 0).

    'all-dedicated': every feature computed (gain > 0.9): no compression needed.
    'ignore-some':   >= 10 % of features ignored (gain < 0.1) — the naive strategy.
    'attenuate-all': no feature ignored and gains uniform (coefficient of variation < 0.25) — the
                     report's superposition strategy.
    'mixed':         anything else.
    """
    ignored = float(np.mean(gains < 0.1))
    if np.all(gains > 0.9):
        return "all-dedicated"
    if ignored >= 0.1:
        return "ignore-some"
    cv = float(np.std(gains) / max(np.mean(gains), 1e-12))
    return "attenuate-all" if ignored == 0 and cv < 0.25 else "mixed"


def run_toy_group(group: Group, options: dict) -> list[dict]:
    from superlens.toy.sweep_metrics import point_metrics
    from superlens.toy.train import train_mlp

    cfgs = [p.config for p in group.points]
    c0 = cfgs[0]
    device = pick_device(c0.device)
    set_threads(choose_threads(c0.threads, len(cfgs) * c0.batch_size * c0.n_features))
    res = train_mlp(c0.n_features, c0.n_hidden, seeds=[c.seed for c in cfgs], p=[c.p for c in cfgs],
                    loss_power=[c.loss_power for c in cfgs], lr=[c.lr for c in cfgs],
                    steps=c0.steps, batch_size=c0.batch_size, bias=c0.bias, device=device,
                    progress=options.get("progress", False), desc=f"h={c0.n_hidden}")
    rows = _rows_base(group)
    eval_samples = int(options.get("eval_samples", 50_000))
    for i, (row, cfg) in enumerate(zip(rows, cfgs)):
        m = point_metrics(res.params.select(i), p=cfg.p, loss_power=cfg.loss_power,
                          eval_samples=eval_samples, seed=cfg.seed + 10_000)
        m["phase"] = classify_toy(np.asarray(m.pop("gains")), np.asarray(m.pop("mse_active")))
        row.update(n_features=cfg.n_features, n_hidden=cfg.n_hidden, p=cfg.p,
                   loss_power=cfg.loss_power, ratio=cfg.n_hidden / cfg.n_features,
                   train_seconds=res.seconds / len(cfgs), **m)
    return rows


# --- the classic toy model of superposition -------------------------------------------------------

def classify_tms(norms: np.ndarray, n_hidden: int) -> str:
    """'superposition' when more features are represented (||W_i|| > 0.5) than there are dimensions;
    'all-dedicated' when every feature is represented in its own dimension; 'ignore-some' otherwise."""
    rep = int(np.sum(norms > 0.5))
    if rep > n_hidden:
        return "superposition"
    return "all-dedicated" if rep == len(norms) else "ignore-some"


def run_tms_group(group: Group, options: dict) -> list[dict]:
    from superlens.measures.dimensionality import dimensions_per_feature, feature_dimensionality
    from superlens.toy.tms import importance_decay, train_tms

    cfgs = [p.config for p in group.points]
    c0 = cfgs[0]
    device = pick_device(c0.device)
    set_threads(choose_threads(None, len(cfgs) * c0.batch_size * c0.n_features))
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
    for i, (row, cfg) in enumerate(zip(rows, cfgs)):
        row.update(n_features=cfg.n_features, n_hidden=cfg.n_hidden, p=cfg.p,
                   importance_decay=cfg.importance_decay, loss=float(log["loss"][-1][i]),
                   dims_per_feature=float(Dstar[i]), n_represented=int(np.sum(norms[i] > 0.5)),
                   phase=classify_tms(norms[i], cfg.n_hidden),
                   feature_norms=norms[i].tolist(), feature_dimensionality=D[i].tolist(),
                   W=W[i].tolist(), train_seconds=log["seconds"] / len(cfgs))
    return rows


# --- the active-learning study --------------------------------------------------------------------

def run_active_group(group: Group, options: dict) -> list[dict]:
    from superlens.active.study import run_active

    rows = _rows_base(group)
    root = Path(options["points_dir"])
    for row, pt in zip(rows, group.points):
        cfg = pt.config.replace(progress=False)
        d = root / f"point{pt.index:04d}"
        # an interrupted point resumes from its last finished round
        metrics = run_active(cfg, d, resume=d.is_dir() and any(d.iterdir()))
        name = cfg.strategies[0]
        row.update(strategy=name, seed=cfg.seed)
        for k, v in metrics[name].items():
            if isinstance(v, (int, float)) and not k.endswith("_std"):
                row[k] = v
        for k, v in metrics["baseline"].items():
            if isinstance(v, (int, float)) and not k.endswith("_std"):
                row[f"baseline_{k}"] = v
    return rows
