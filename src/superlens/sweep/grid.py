"""Sweep spec -> validated grid of points -> groups that can share one tensor program."""
from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from superlens.config import ActiveConfig, BaseConfig, SweepSpec, TMSConfig, ToyConfig, load_toml
from superlens.errors import ConfigError

STUDY_CONFIGS: dict[str, type[BaseConfig]] = {"toy": ToyConfig, "tms": TMSConfig, "active": ActiveConfig}
# per study: fields that may differ inside one group (they become per-instance values)
INSTANCE_FIELDS = {"toy": {"p", "loss_power", "lr", "seed"},
                   "tms": {"p", "importance_decay", "lr", "seed"},
                   "active": {"strategies"}}  # one run per seed: a baseline shared by strategies
# the toy study trains one seed per point; 'seeds' belongs to whole runs, not sweep points
FIXED = {"toy": {"seeds": 1, "compare_l2": False}, "tms": {}, "active": {"seeds": 1}}
MAX_GROUP = 512  # instances per tensor program


@dataclass(frozen=True)
class Point:
    index: int
    values: dict[str, Any]  # the axis values of this point
    config: BaseConfig  # the full validated config


@dataclass(frozen=True)
class Group:
    gid: str
    points: tuple[Point, ...]


def load_spec(path: str) -> SweepSpec:
    return SweepSpec.build(load_toml(path), source=f"sweep spec {path}")


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


DEFAULT_EVAL_SAMPLES = 50_000  # toy sweep points: fewer than a single toy run's 200,000


def expand(spec: SweepSpec) -> list[Point]:
    """The cartesian product of the axes over the base config; every point validated before any
    training, the error naming the point."""
    cls = STUDY_CONFIGS[spec.study]
    allowed = set(cls.model_fields) - {"seeds"}
    if spec.study == "active":
        allowed = (allowed - {"strategies"}) | {"strategy"}  # one strategy per point
    for name in spec.axes:
        if name not in allowed:
            raise ConfigError(f"sweep axis {name!r} is not a field of the {spec.study} study "
                              f"(allowed: {', '.join(sorted(allowed))})")
    for name in spec.base:
        if name not in cls.model_fields:
            raise ConfigError(f"sweep base key {name!r} is not a field of the {spec.study} study")
    extra: dict[str, Any] = {}
    opt_eval = spec.options.eval_samples
    if spec.study == "toy":
        if opt_eval is not None and ("eval_samples" in spec.base or "eval_samples" in spec.axes):
            raise ConfigError("sweep options.eval_samples: also given as a base key or axis; "
                              "give it once")
        if "eval_samples" not in spec.base and "eval_samples" not in spec.axes:
            extra["eval_samples"] = opt_eval or DEFAULT_EVAL_SAMPLES
    elif opt_eval is not None:
        raise ConfigError(f"sweep options.eval_samples: applies to the toy study only "
                          f"(this is a {spec.study} study)")
    names = list(spec.axes)
    grids = [axis_values(n, spec.axes[n]) for n in names]
    points = []
    checker = _ActiveChecker() if spec.study == "active" else None
    for i, combo in enumerate(itertools.product(*grids)):
        values = dict(zip(names, combo))
        data = {**spec.base, **extra, **values, **FIXED[spec.study]}
        if spec.study == "active" and "preset" in data:
            from superlens.active.presets import preset

            data = {**preset(data["preset"]), **data}
        if "strategy" in data:
            data["strategies"] = [data.pop("strategy")]
        try:
            cfg = cls.model_validate(data)
        except Exception as e:  # pydantic ValidationError
            from pydantic import ValidationError

            from superlens.config import format_validation_error

            if isinstance(e, ValidationError):
                msg = format_validation_error(cls, e, f"sweep point {i} {values}")
                raise ConfigError(msg) from None
            raise
        if checker is not None:
            checker.check(cfg, f"sweep point {i} {values}")
        points.append(Point(i, values, cfg))
    if checker is not None:  # the points that share one run (one seed) must also run together
        for g in group_points(spec.study, points):
            if len(g.points) > 1:
                checker.check(shared_active_config(g),
                              f"sweep points {', '.join(str(p.index) for p in g.points)} (one run)")
    return points


class _ActiveChecker:
    """The active study's own checks per point, before training: the plan (strategy names, pool
    sizes against the training-set size) and the model (weights file, feature layer), as run_active
    does them before it writes. Each data set is loaded once and each distinct model built once."""

    def __init__(self) -> None:
        self.data: dict[tuple, object] = {}
        self.models: set[tuple] = set()

    def check(self, cfg: ActiveConfig, where: str) -> None:
        from superlens.active.data import load_dataset
        from superlens.active.loop import validate_plan
        from superlens.active.study import preflight_model
        from superlens.errors import SuperlensError

        key = (cfg.dataset, cfg.data_dir, cfg.download, cfg.seed, cfg.test_fraction)
        model_key = key + (cfg.model, cfg.pretrained, cfg.weights_path, cfg.dropout,
                           cfg.feature_layer, cfg.paper_features)
        try:
            if key not in self.data:
                self.data[key] = load_dataset(cfg.dataset, cfg.data_dir, download=cfg.download,
                                              seed=cfg.seed, test_fraction=cfg.test_fraction,
                                              progress=False)
            ds = self.data[key]
            validate_plan(cfg, int(ds.train_y.shape[0]))
            if model_key not in self.models:
                preflight_model(cfg, ds)
                self.models.add(model_key)
        except SuperlensError as e:
            err = type(e)(f"{where}: {e}")
            raise err from None


def shared_active_config(group: Group) -> ActiveConfig:
    """Active points that differ only in their strategy share one study run (one baseline per seed):
    the run's config lists every strategy of the group."""
    c0 = group.points[0].config
    names = [p.config.strategies[0] for p in group.points]
    return c0.model_copy(update={"strategies": names})


def group_points(study: str, points: list[Point]) -> list[Group]:
    """Points whose configs agree on everything but the per-instance fields share a group."""
    per_instance = INSTANCE_FIELDS[study]
    buckets: dict[str, list[Point]] = {}
    for pt in points:
        shape = {k: v for k, v in pt.config.model_dump(mode="json").items() if k not in per_instance}
        key = json.dumps(shape, sort_keys=True)
        buckets.setdefault(key, []).append(pt)
    groups = []
    for key, pts in buckets.items():
        size = MAX_GROUP
        for j in range(0, len(pts), size):
            chunk = tuple(pts[j:j + size])
            ident = json.dumps([key, [p.index for p in chunk]])
            gid = hashlib.sha1(ident.encode()).hexdigest()[:12]
            groups.append(Group(gid, chunk))
    return groups
