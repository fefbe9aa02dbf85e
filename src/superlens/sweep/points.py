"""What a sweep is made of: a point (one validated config of the grid) and a group (points that run
as one, e.g. one tensor program on the instance axis).

Kept apart from the grid (superlens.sweep.grid, which asks the studies how to build them) so that
the studies' adapters can name these types without importing the sweep machinery.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from superlens.config import BaseConfig


@dataclass(frozen=True)
class Point:
    index: int  # its place in the grid (the order of the spec's axes)
    values: dict[str, Any]  # the axis values of this point
    config: BaseConfig  # the full validated config


@dataclass(frozen=True)
class Group:
    gid: str  # a stable id from the shared config and the points' indices
    points: tuple[Point, ...]
