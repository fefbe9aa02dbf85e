"""Sweep adapter of the classic toy model of superposition (Elhage et al. 2022, arXiv:2209.10652): a
group's points share tensor shapes and train together on the instance axis with per-instance p,
importance decay, lr and seed; each row carries the phase, the geometry-class counts and W."""
from __future__ import annotations

from pathlib import Path

import torch

from superlens.config import TMSConfig
from superlens.device import pick_device
from superlens.studies.base import SweepStudy, check_instance_sizes, rows_base, threads_for


class TMSSweep(SweepStudy):
    name = "tms"
    config = TMSConfig
    instance_fields = frozenset({"p", "importance_decay", "lr", "seed"})
    phase_pick = "min_loss"  # a seed can stall in a local minimum: the best-trained one decides a cell
    table_columns = ["point", "n_features", "n_hidden", "p", "importance_decay", "seed", "phase",
                     "n_represented", "dims_per_feature", "loss"]

    def check_sizes(self, groups: list) -> None:
        check_instance_sizes(groups)

    def run_group(self, group, options: dict) -> dict:
        from superlens.measures.dimensionality import (GEOMETRIES, dimensions_per_feature,
                                                       feature_dimensionality, geometry_classes)
        from superlens.toy.models import importance_decay
        from superlens.toy.phases import GEOMETRY_KEYS, NORM_REPRESENTED, n_represented, tms_phase
        from superlens.toy.train import train_tms

        cfgs = [p.config for p in group.points]
        c0 = cfgs[0]
        device = pick_device(c0.device)
        threads = threads_for(None, len(cfgs) * c0.batch_size * c0.n_features, options)
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
        rows = rows_base(group)
        # named from W itself (hidden dimension, partners, norms), "represented" = ||W_i|| >
        # NORM_REPRESENTED as in n_represented and the figures: one definition per page
        classes = geometry_classes(D, W=W, min_norm=NORM_REPRESENTED)
        per_point = {}
        for i, (row, pt, cfg) in enumerate(zip(rows, group.points, cfgs)):
            counts = {f"n_{GEOMETRY_KEYS[name]}": 0 for _, name in GEOMETRIES}
            counts["n_other"] = 0
            for name in classes[i]:
                counts[f"n_{GEOMETRY_KEYS.get(name, 'other')}"] += 1
            row.update(**counts)
            row.update(n_features=cfg.n_features, n_hidden=cfg.n_hidden, p=cfg.p,
                       importance_decay=cfg.importance_decay, loss=float(log["loss"][-1][i]),
                       dims_per_feature=float(Dstar[i]), n_represented=n_represented(norms[i]),
                       phase=tms_phase(norms[i], cfg.n_hidden),
                       feature_norms=norms[i].tolist(), feature_dimensionality=D[i].tolist(),
                       W=W[i].tolist(), train_seconds=log["seconds"] / len(cfgs))
            per_point[pt.index] = {**row, "geometry_classes": classes[i]}
        return {"rows": rows, "point_metrics": per_point, "threads": threads}

    def report_sections(self, rows: list[dict], fig_dir: Path):
        from superlens.report.sweep_report import tms_sections, tms_sweep_figures

        return tms_sections(rows), tms_sweep_figures(rows, fig_dir)


STUDY = TMSSweep()
