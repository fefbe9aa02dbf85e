"""Sweep spec -> validated grid of points -> groups that can share one tensor program."""
from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

import numpy as np

from superlens.config import SweepSpec, load_toml
from superlens.errors import ConfigError
from superlens.studies import STUDIES, sweep_study
from superlens.sweep.points import Group, Point

MAX_GROUP = 512  # instances per tensor program
# The axis that joins sub-grids: a list of tables, each setting several fields at once; a table's
# list-valued keys expand to their cartesian product. So one spec can hold grids that differ in shape
# (e.g. the classic toy model at 6 p values x 2 importances and the compressed-computation model at
# 3 widths x 2 losses) without crossing them.
CELLS = "cells"


def load_spec(path: str) -> SweepSpec:
    spec = SweepSpec.build(load_toml(path), source=f"sweep spec {path}")
    if spec.study not in STUDIES:
        raise ConfigError(f"sweep spec {path}: study = {spec.study!r}, expected one of "
                          f"{', '.join(STUDIES)}")
    return spec


def _number(name: str, key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"axis {name}: {key} = {v!r}: expected a number")
    return float(v)


def axis_values(name: str, spec: Any) -> list[Any]:
    if isinstance(spec, list):
        vals = spec
    elif isinstance(spec, dict) and set(spec) <= {"log", "linear", "num", "int"} and "num" in spec:
        kind = "log" if "log" in spec else "linear"
        lo_hi = spec.get(kind)
        if ("log" in spec) == ("linear" in spec) or not (isinstance(lo_hi, list) and len(lo_hi) == 2):
            raise ConfigError(f"axis {name}: expected {{log|linear = [lo, hi], num = N}}")
        lo, hi = (_number(name, kind, v) for v in lo_hi)
        num = spec["num"]
        if isinstance(num, bool) or not isinstance(num, int):
            raise ConfigError(f"axis {name}: num = {num!r}: expected an integer >= 1")
        if num < 1:
            raise ConfigError(f"axis {name}: num = {num}, must be >= 1")
        if not isinstance(spec.get("int", False), bool):
            raise ConfigError(f"axis {name}: int = {spec['int']!r}: expected true or false")
        if kind == "log":
            if lo <= 0 or hi <= 0:
                raise ConfigError(f"axis {name}: log range [{lo}, {hi}] must be positive")
            vals = np.geomspace(lo, hi, num).tolist()
        else:
            vals = np.linspace(lo, hi, num).tolist()
        if spec.get("int"):
            vals = sorted({int(round(v)) for v in vals})
    else:
        raise ConfigError(f"axis {name}: expected a list or {{log|linear = [lo, hi], num = N}}, "
                          f"got {spec!r}")
    if not vals:
        raise ConfigError(f"axis {name}: empty (it needs at least one value)")
    seen: list[Any] = []
    for v in vals:  # the same point twice would train twice and collide in the table
        if any(v == s for s in seen):
            raise ConfigError(f"axis {name}: value {v!r} appears more than once")
        seen.append(v)
    return vals


def cell_values(spec: Any, allowed: set[str]) -> list[dict[str, Any]]:
    """The `cells` axis: a list of tables -> one flat dict per point (each table's list-valued keys
    expanded to their cartesian product, in the order given)."""
    if not isinstance(spec, list) or not spec or not all(isinstance(c, dict) and c for c in spec):
        raise ConfigError(f"axis {CELLS}: expected a non-empty list of tables, e.g. "
                          "[{family = \"tms\", p = [1.0, 0.1]}, {family = \"cc\", p = 0.05}]")
    out: list[dict[str, Any]] = []
    for k, cell in enumerate(spec):
        for name, v in cell.items():
            if name not in allowed:
                raise ConfigError(f"axis {CELLS}: table {k}: {name!r} is not an axis of this study "
                                  f"(allowed: {', '.join(sorted(allowed))})")
            if isinstance(v, list) and not v:
                raise ConfigError(f"axis {CELLS}: table {k}: {name} is an empty list")
        names = list(cell)
        lists = [cell[n] if isinstance(cell[n], list) else [cell[n]] for n in names]
        for combo in itertools.product(*lists):
            d = dict(zip(names, combo))
            if any(d == o for o in out):
                raise ConfigError(f"axis {CELLS}: the point {d} appears more than once")
            out.append(d)
    return out


def expand(spec: SweepSpec) -> list[Point]:
    """The cartesian product of the axes over the base config; every point validated (and checked
    by the study's own preflight) before any training, the error naming the point."""
    study = sweep_study(spec.study)
    cls = study.config
    allowed = study.axes()
    for name in spec.axes:
        if name == CELLS:
            continue
        if name not in allowed:
            raise ConfigError(f"sweep axis {name!r} is not a field of the {spec.study} study "
                              f"(allowed: {', '.join(sorted(allowed))})")
    for name in spec.base:
        if name not in cls.model_fields:
            raise ConfigError(f"sweep base key {name!r} is not a field of the {spec.study} study")
    extra = study.point_defaults(spec)
    names = list(spec.axes)
    grids = [cell_values(spec.axes[n], allowed) if n == CELLS else axis_values(n, spec.axes[n])
             for n in names]
    points = []
    seen: dict[str, tuple[int, dict]] = {}
    check = study.checker()
    for i, combo in enumerate(itertools.product(*grids)):
        values: dict[str, Any] = {}
        for n, v in zip(names, combo):
            if n == CELLS:
                clash = set(v) & set(values)
                if clash:
                    raise ConfigError(f"axis {CELLS}: sets {', '.join(sorted(clash))}, which another "
                                      "axis sets too")
                values.update(v)
            else:
                if n in values:
                    raise ConfigError(f"axis {n}: also set by the {CELLS} axis")
                values[n] = v
        data = study.point_data({**spec.base, **extra, **values, **study.fixed})
        cfg = cls.build(data, source=f"sweep point {i} {values}")
        # two axis combinations can reach one config (an axis value equal to the base value or
        # default another combination leaves unset): it would train twice and count twice
        key = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
        if key in seen:
            j, other = seen[key]
            raise ConfigError(f"sweep points {j} {other} and {i} {values}: the same config (an axis "
                              "value equals the base value or default); drop one of them")
        seen[key] = (i, values)
        if check is not None:
            check(cfg, f"sweep point {i} {values}")
        points.append(Point(i, values, cfg))
    if check is not None:
        study.check_groups(group_points(spec.study, points), check)
    return points


def group_points(study: str, points: list[Point]) -> list[Group]:
    """Points whose configs agree on everything but the per-instance fields share a group (at most
    the study's group_size of them, else MAX_GROUP)."""
    adapter = sweep_study(study)
    per_instance = adapter.instance_fields
    buckets: dict[str, list[Point]] = {}
    for pt in points:
        shape = {k: v for k, v in pt.config.model_dump(mode="json").items() if k not in per_instance}
        key = json.dumps(shape, sort_keys=True)
        buckets.setdefault(key, []).append(pt)
    groups = []
    for key, pts in buckets.items():
        size = min(MAX_GROUP, adapter.group_size(pts[0].config) or MAX_GROUP)
        for j in range(0, len(pts), size):
            chunk = tuple(pts[j:j + size])
            ident = json.dumps([key, [p.index for p in chunk]])
            gid = hashlib.sha1(ident.encode()).hexdigest()[:12]
            groups.append(Group(gid, chunk))
    return groups
