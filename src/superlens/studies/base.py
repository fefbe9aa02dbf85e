"""What a sweep needs to know about a study: one adapter per study (superlens.studies.STUDIES).

The sweep machinery (superlens.sweep: grid, runners, report) asks the adapter instead of branching on
the study's name, so a new study is one adapter file and one registry line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar

from superlens.config import BaseConfig
from superlens.device import choose_threads, set_threads
from superlens.sweep.points import Group


class SweepStudy:
    """The defaults; a study overrides what differs."""

    name: ClassVar[str]
    config: ClassVar[type[BaseConfig]]
    # fields that may differ inside one group (they become per-instance values of one tensor program)
    instance_fields: ClassVar[frozenset[str]]
    # fields every point gets, whatever the spec says (e.g. one seed per point)
    fixed: ClassVar[dict[str, Any]] = {}
    # columns of the report's table of every point (those present in the rows)
    table_columns: ClassVar[list[str]]
    # how the phase summary picks a cell's phase from its seeds: "majority" or "min_loss"
    phase_pick: ClassVar[str] = "majority"
    # how the report's first section says what one point is
    point_words: ClassVar[str] = ("points sharing tensor shapes trained together on the instance "
                                  "axis")

    def axes(self) -> set[str]:
        """The config fields a sweep axis may name."""
        return set(self.config.model_fields) - {"seeds"}

    def point_defaults(self, spec) -> dict[str, Any]:
        """Values that fill a point's config before its base keys and axes (spec: the SweepSpec).
        The sweep option eval_samples belongs to the studies that say so; elsewhere it is an error."""
        if spec.options.eval_samples is not None:
            from superlens.errors import ConfigError

            raise ConfigError(f"sweep options.eval_samples: applies to the toy study only "
                              f"(this is a {spec.study} study)")
        return {}

    def point_data(self, data: dict[str, Any]) -> dict[str, Any]:
        """A point's merged keys, just before validation (a study may expand or rename some)."""
        return data

    def checker(self) -> Callable[[BaseConfig, str], None] | None:
        """The study's own check of one point's config before anything trains (None: none)."""
        return None

    def check_groups(self, groups: list[Group], check: Callable[[BaseConfig, str], None]) -> None:
        """Checks that concern a whole group (points that run as one)."""

    def check_sizes(self, groups: list[Group]) -> None:
        """The groups' tensors fit in memory, estimated from the configs before anything is written
        (studies whose group trains as one tensor program override this)."""

    def group_size(self, config: BaseConfig) -> int | None:
        """The most points one group of this shape may hold (None: superlens.sweep.grid.MAX_GROUP).
        A study whose single point already fills a core says 1, so that workers share such points
        instead of one worker running them all on one instance axis."""
        return None

    def group_cost(self, group: Group) -> float:
        """The group's work, in any unit common to the study's groups: the sweep starts the costliest
        groups first (the longest-first rule), so that no worker is left with a long group at the
        end while the others wait. Default: its number of points."""
        return float(len(group.points))

    def run_group(self, group: Group, options: dict) -> dict:
        """{"rows": one flat row per point, "point_metrics": {point index: its metrics}, "threads"}."""
        raise NotImplementedError

    def report_sections(self, rows: list[dict], fig_dir: Path) -> tuple[list[str], list[tuple[str, str]]]:
        """(HTML sections of the sweep report for this study, its figures [(file, caption)])."""
        return [], []


def threads_for(requested: int | None, work_elements: int, options: dict) -> int:
    """An explicit request wins; otherwise choose_threads, capped at this worker's core budget."""
    if requested is not None:
        return set_threads(requested)
    n = choose_threads(None, work_elements)
    budget = options.get("thread_budget")
    return set_threads(min(n, int(budget)) if budget else n)


def rows_base(group: Group) -> list[dict]:
    """One row per point: its index in the grid and its axis values."""
    return [{"point": p.index, **p.values} for p in group.points]


def check_instance_sizes(groups: list[Group]) -> None:
    """Toy and TMS groups train their points together: the group's tensors must fit."""
    from superlens.device import pick_device
    from superlens.errors import ConfigError
    from superlens.limits import check_toy_sizes

    for g in groups:
        c = g.points[0].config
        try:
            check_toy_sizes(c.n_features, c.n_hidden, c.batch_size, len(g.points),
                            pick_device(c.device))
        except ConfigError as e:
            pts = ", ".join(str(p.index) for p in g.points)
            raise ConfigError(f"sweep point(s) {pts}: {e}") from None
