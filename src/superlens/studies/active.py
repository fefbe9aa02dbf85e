"""The active-learning study's report rendering (the report layer sits above superlens.active) and its
sweep adapter: points that differ only in their strategy share one study run (one baseline per seed),
so a group is one run_active call; one row per point."""
from __future__ import annotations

from pathlib import Path

import torch

from superlens.config import ActiveConfig
from superlens.runs import atomic_write_text, page_meta
from superlens.studies.base import SweepStudy, rows_base


def render_active_report(out: str | Path, complete: bool = True, status: str | None = None) -> Path:
    """(Re)draw figures and report.html from a run directory, without training; every file is read
    and checked (one line naming the file on a wrong shape) before the first figure is drawn.
    complete: first bring metrics.json up to the current code (superlens.active.study.
    complete_measures: the sparse-autoencoder pass a finished run lacks, from its checkpoints, and
    the verdict rows and learning curves recomputed by the current rules). status: the run status
    the page shows instead of meta.json's (runs.page_meta)."""
    from superlens.active.study import complete_measures
    from superlens.readers import check_object, file_contents, read_meta, read_object
    from superlens.report.active_figures import make_active_figures
    from superlens.report.active_report import active_report_html

    out = Path(out)
    config = read_object(out / "config.json", {"dataset": str, "strategies": list})
    meta = page_meta(read_meta(out), status)
    check_object(out / "meta.json", meta, {"seeds": list})
    metrics = read_object(out / "metrics.json", {"baseline": dict})
    for name in config["strategies"]:
        check_object(out / "metrics.json", metrics, {str(name): dict})
    if complete:  # metrics.json is rewritten even when no measure was missing: read it again
        complete_measures(out)
        metrics = read_object(out / "metrics.json", {"baseline": dict})
    with file_contents(out / "metrics.json", "not the metrics of this run"):
        figures = make_active_figures(out, config, meta, metrics, out / "figures")
        html = active_report_html(config, meta, metrics, out / "figures", figures)
    atomic_write_text(out / "report.html", html)
    return out / "report.html"


def shared_config(group) -> ActiveConfig:
    """The one run of a group: the points' common config with every point's strategy in its list."""
    c0 = group.points[0].config
    names = [p.config.strategies[0] for p in group.points]
    return c0.model_copy(update={"strategies": names})


class ActiveSweep(SweepStudy):
    name = "active"
    config = ActiveConfig
    instance_fields = frozenset({"strategies"})  # one run per seed: a baseline shared by strategies
    fixed = {"seeds": 1}
    table_columns = ["point", "strategy", "seed", "accuracy", "cos_mean", "silhouette_tsne",
                     "silhouette_raw", "effective_rank", "baseline_accuracy", "baseline_cos_mean"]
    point_words = "each point one study run: a baseline and one strategy's loop"

    def axes(self) -> set[str]:
        return (super().axes() - {"strategies"}) | {"strategy"}  # one strategy per point

    def point_data(self, data: dict) -> dict:
        from superlens.active.study import with_folder_layout

        explicit = "dataset" in data
        if "preset" in data:
            from superlens.active.presets import preset

            data = {**preset(data["preset"]), **data}
        with_folder_layout(data, explicit)
        if "strategy" in data:
            data["strategies"] = [data.pop("strategy")]
        return data

    def checker(self):
        from superlens.active.preflight import ActiveChecker

        return ActiveChecker()

    def check_groups(self, groups, check) -> None:
        # the points that share one run (one seed) must also run together
        for g in groups:
            if len(g.points) > 1:
                check(shared_config(g), f"sweep points {', '.join(str(p.index) for p in g.points)} "
                                        "(one run)")

    def run_group(self, group, options: dict) -> dict:
        from superlens.active.study import run_active

        cfg = shared_config(group).replace(progress=False)
        budget = options.get("thread_budget")
        if cfg.threads is None and budget:
            cfg = cfg.replace(threads=int(budget))
        d = Path(options["runs_dir"]) / group.gid
        # an interrupted run resumes from its last finished round
        metrics = run_active(cfg, d, resume=d.is_dir() and any(d.iterdir()), render=render_active_report)
        rows = rows_base(group)
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
        return {"rows": rows, "point_metrics": per_point,
                "threads": cfg.threads or torch.get_num_threads()}

    def report_sections(self, rows: list[dict], fig_dir: Path):
        from superlens.report.sweep_report import active_sections

        return active_sections(rows), []


STUDY = ActiveSweep()
