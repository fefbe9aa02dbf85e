"""Learning curves of the active-learning loops: test accuracy against labels, per strategy.

For strategy s and seed k, rounds r = 0..R give points (L_r, a_{s,k,r}) with L_r the labelled count
(the same for every strategy and seed). From them:

- mean and 95 % Student-t interval of a_{s,k,r} over seeds, per round;
- area: the normalised area under the curve, trapezoid rule over the labels divided by the label
  range, i.e. the mean accuracy over the budget, (1 / (L_R - L_0)) * sum_r (L_{r+1} - L_r) *
  (a_r + a_{r+1}) / 2; per seed, then mean and interval over seeds; and its paired difference from
  random's (same seed);
- labels to match random: the labels at which the strategy's mean curve first reaches random's mean
  final accuracy, by linear interpolation between rounds (None when it never does); random's own
  value is its final label count.

    curves_json(per_seed_rounds, seeds) -> {"rule": ..., "strategies": {name: {...}}}
"""
from __future__ import annotations

import numpy as np

from superlens.active.verdicts import t_interval

CURVES_RULE = (
    "Accuracy against labels: mean and 95 % Student-t interval over seeds per round. Area: the "
    "trapezoid area under each seed's curve divided by the label range (the mean accuracy over the "
    "budget), then mean and interval over seeds, and its paired difference from random's at the "
    "same seed. Labels to match random: where the strategy's mean curve first reaches random's mean "
    "final accuracy (linear interpolation between rounds; '—' when it never does).")


def normalised_area(labels, acc) -> float | None:
    """Trapezoid area under (labels [R], acc [R]) over the label range; None for < 2 points."""
    x = np.asarray(labels, dtype=float)
    y = np.asarray(acc, dtype=float)
    if x.size < 2 or x[-1] == x[0]:
        return None
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2) / (x[-1] - x[0]))


def labels_to_reach(labels, acc, target: float) -> float | None:
    """The first label count at which the piecewise-linear curve (labels [R], acc [R]) reaches
    ``target``; None when it never does."""
    x = np.asarray(labels, dtype=float)
    y = np.asarray(acc, dtype=float)
    if y.size and y[0] >= target:
        return float(x[0])
    for i in range(1, y.size):
        if y[i] >= target:
            f = (target - y[i - 1]) / (y[i] - y[i - 1])
            return float(x[i - 1] + f * (x[i] - x[i - 1]))
    return None


def _curve(rounds_by_seed: dict[str, list], seeds: list[str]):
    """labels [R] and accuracy [seeds, R] of the seeds that have every round (None if none)."""
    runs = [rounds_by_seed.get(s) or [] for s in seeds]
    n = min((len(r) for r in runs), default=0)
    if n == 0:
        return None, None, []
    labels = [runs[0][r]["labelled"] for r in range(n)]
    acc = np.asarray([[float(run[r]["accuracy"]) for r in range(n)] for run in runs])
    return labels, acc, list(seeds)


def curves_json(per_seed_rounds: dict[str, dict[str, list]], seeds: list[str]) -> dict:
    """metrics.json "learning_curves": per strategy, the curve's points, its area and the labels it
    needs to match random (CURVES_RULE)."""
    out: dict = {"rule": CURVES_RULE, "strategies": {}}
    curves = {}
    for name, by_seed in per_seed_rounds.items():
        labels, acc, _ = _curve(by_seed, seeds)
        if labels is not None:
            curves[name] = (labels, acc)
    rand = curves.get("random")
    target = float(rand[1].mean(0)[-1]) if rand is not None else None
    rand_area = ([normalised_area(rand[0], a) for a in rand[1]] if rand is not None else None)
    for name, (labels, acc) in curves.items():
        points = []
        for r, lab in enumerate(labels):
            ci = t_interval(acc[:, r].tolist())
            points.append({"labelled": lab, "accuracy": ci["effect"], "ci_low": ci["ci_low"],
                           "ci_high": ci["ci_high"], "no_variation": ci["no_variation"]})
        area = [normalised_area(labels, a) for a in acc]
        entry = {"points": points, "area": t_interval(area), "area_per_seed": area,
                 "labels_to_match_random": (labels_to_reach(labels, acc.mean(0), target)
                                            if target is not None else None),
                 "random_final_accuracy": target}
        if rand_area is not None and name != "random" and len(rand_area) == len(area):
            entry["area_minus_random"] = t_interval(
                [a - b if a is not None and b is not None else None
                 for a, b in zip(area, rand_area)])
        out["strategies"][name] = entry
    return out


__all__ = ["CURVES_RULE", "normalised_area", "labels_to_reach", "curves_json"]
