"""Run one group of sweep points and return one row (a flat dict) per point.

The study's adapter (superlens.studies) does the work: the toy and TMS adapters train a group's points
together on the instance axis, the active adapter runs one study per group. Every row carries 'point'
(its index in the grid), the point's axis values and the torch threads used.
"""
from __future__ import annotations

import torch

from superlens.studies import sweep_study
from superlens.sweep.points import Group


def run_group(study: str, group: Group, options: dict) -> dict:
    """{"rows": one flat row per point, "point_metrics": {point index: per-point metrics with the
    per-feature arrays}, "threads": torch threads used, "thread_budget": this worker's cores}."""
    before = torch.get_num_threads()
    try:
        out = sweep_study(study).run_group(group, options)
    finally:
        torch.set_num_threads(before)
    out["thread_budget"] = int(options.get("thread_budget") or 0) or None
    for r in out["rows"]:
        r["threads"] = out["threads"]
    return out
