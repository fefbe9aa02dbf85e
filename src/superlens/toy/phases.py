"""The one rule that names what a toy model learned, for the compressed-computation (CC) model and the
classic toy model of superposition (TMS). The single-run report, the sweep tables and the phase diagrams
all call these functions, so one model always gets one name.

Thresholds are the definition, not fitted: they separate the source report's two reference strategies
(the naive model and the uniform attenuation of the L4-trained model).
"""
from __future__ import annotations

import warnings
from collections import Counter
from typing import Iterable

import numpy as np

# --- the compressed-computation model: from per-feature gains [n] and active-conditioned errors [n]
GAIN_IGNORED = 0.05  # a feature whose gain (slope of output i vs input i > 0) is below this is ignored
GAIN_DEDICATED = 0.9  # every feature above this: each computed as if it had its own neuron
GAIN_FULL = 0.8  # kept features at least this on average: computed almost exactly (the naive strategy)
FRAC_IGNORED = 0.1  # share of ignored features from which a model "ignores some" (not the naive way)
CV_UNIFORM = 0.25  # std/mean below which gains (and errors) count as uniform
ERROR_SPLIT = 2.0  # ignored features' mean error over the others' that confirms they are dropped

# --- the classic toy model of superposition: from the feature norms ||W_i|| [n]
NORM_REPRESENTED = 0.5  # a feature with ||W_i|| above this is represented

# the vocabulary, with the sentence the reports print for each name
PHASES = {
    "all-dedicated": "every feature computed at full gain, each in its own neuron or dimension",
    "naive": "the naive strategy: at most h features kept, at nearly full gain, the rest ignored",
    "ignore-some": "some features ignored (their error split from the rest), the others kept at a "
                   "reduced gain",
    "attenuate-all": "no feature ignored, every feature kept at one reduced gain with uniform errors "
                     "(the source report's superposition strategy)",
    "superposition": "more features represented than hidden dimensions",
    "mixed": "a mix, neither the naive strategy nor uniform attenuation: e.g. some features dropped "
             "while the rest stay in superposition at a reduced gain (their errors not split from the "
             "dropped ones'), or none dropped but gains or errors far from uniform",
}
# CC phases in which the optimal-gain theory (every feature attenuated) applies, with no feature ignored
THEORY_PHASES = ("attenuate-all", "mixed")


def cv(v: np.ndarray) -> float:
    """Coefficient of variation std / |mean| of the finite entries of v (inf when none)."""
    v = np.asarray(v, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("inf")
    return float(np.std(v) / max(abs(float(np.mean(v))), 1e-12))


def strategy_stats(gain: np.ndarray, ignored_below: float = GAIN_IGNORED) -> dict[str, np.ndarray]:
    """From per-feature gains [I, n]: ignored [I] (features with gain < ignored_below), and over the
    other ("kept") features their mean, std, min and max gain [I] (NaN when none is kept)."""
    g = np.asarray(gain, dtype=float)
    kept = g >= ignored_below
    with warnings.catch_warnings():  # an instance with no kept feature: NaN, by design
        warnings.simplefilter("ignore", RuntimeWarning)
        kg = np.where(kept, g, np.nan)
        return {"ignored": (~kept).sum(1).astype(float), "kept_mean": np.nanmean(kg, 1),
                "kept_std": np.nanstd(kg, 1), "kept_min": np.nanmin(kg, 1),
                "kept_max": np.nanmax(kg, 1)}


def cc_phase(gains: np.ndarray, mse: np.ndarray, n_hidden: int) -> str:
    """The strategy one CC model learned, from its per-feature gains [n] and active-conditioned
    per-feature errors mse [n] (NaN entries: no estimate, left out):

    'all-dedicated': every gain > GAIN_DEDICATED: no compression needed.
    'naive':         some feature ignored (gain < GAIN_IGNORED), at most n_hidden kept, and the kept
                     ones at a mean gain >= GAIN_FULL.
    'ignore-some':   >= FRAC_IGNORED of the features ignored (all ignored also counts) and their mean
                     error >= ERROR_SPLIT x the kept ones': dropped, the rest at a reduced gain.
    'attenuate-all': none ignored, gains and errors uniform (std/mean < CV_UNIFORM each).
    'mixed':         anything else.
    """
    gains = np.asarray(gains, dtype=float)
    mse = np.asarray(mse, dtype=float)
    if np.all(gains > GAIN_DEDICATED):
        return "all-dedicated"
    ignored = gains < GAIN_IGNORED
    if ignored.any():
        kept = gains[~ignored]
        if kept.size and kept.size <= n_hidden and float(kept.mean()) >= GAIN_FULL:
            return "naive"
        if float(np.mean(ignored)) >= FRAC_IGNORED:
            rest, ign = mse[~ignored], mse[ignored]
            rest, ign = rest[np.isfinite(rest)], ign[np.isfinite(ign)]
            if rest.size == 0 or (ign.size and float(ign.mean()) >= ERROR_SPLIT * float(rest.mean())):
                return "ignore-some"
        return "mixed"
    if cv(gains) < CV_UNIFORM and cv(mse) < CV_UNIFORM:
        return "attenuate-all"
    return "mixed"


def cc_phases(gains: np.ndarray, mse: np.ndarray, n_hidden: int) -> list[str]:
    """cc_phase per instance: gains [I, n], mse [I, n] -> I names."""
    return [cc_phase(g, e, n_hidden) for g, e in zip(np.asarray(gains), np.asarray(mse))]


def tms_phase(norms: np.ndarray, n_hidden: int) -> str:
    """The phase of one TMS model from its feature norms ||W_i|| [n]: 'superposition' when more features
    are represented (norm > NORM_REPRESENTED) than there are hidden dimensions, 'all-dedicated' when
    every feature is represented in its own dimension, 'ignore-some' otherwise."""
    rep = n_represented(norms)
    if rep > n_hidden:
        return "superposition"
    return "all-dedicated" if rep == len(norms) else "ignore-some"


def n_represented(norms: np.ndarray) -> int:
    """Features with ||W_i|| > NORM_REPRESENTED: norms [n] -> count."""
    return int(np.sum(np.asarray(norms) > NORM_REPRESENTED))


def majority(names: Iterable[str]) -> str:
    """The most frequent name (ties: the first to reach the top count, in sorted order), e.g. the
    phase of a cell of several seeds, or of a run of several instances."""
    counts = Counter(names)
    top = max(counts.values())
    return min(k for k, c in counts.items() if c == top)


# row columns of the geometry classes (superlens.measures.dimensionality.GEOMETRIES)
GEOMETRY_KEYS = {"1: dedicated": "dedicated", "3/4: tetrahedron": "tetrahedron",
                 "2/3: triangle": "triangle", "1/2: antipodal pair": "antipodal",
                 "2/5: pentagon": "pentagon", "3/8: square antiprism": "square_antiprism",
                 "0: not represented": "not_represented", "other": "other"}
