"""superlens: measure superposition in neural networks.

Python API (works in a notebook); each study's run writes a run directory with report.html and
returns its metrics:

    from superlens.config import ActiveConfig, ToyConfig
    from superlens.studies.toy import run_toy
    from superlens.active.study import run_active
    from superlens.studies.active import render_active_report
    metrics = run_toy(ToyConfig(seeds=1), out="runs/toy")
    metrics = run_active(ActiveConfig(dataset="synthetic", epochs=2), out="runs/al",
                         render=render_active_report)

The pieces work alone too: superlens.toy.train.train_mlp and superlens.toy.analysis.analyze (the
compressed-computation model), superlens.measures (measures of any feature matrix [N, d]).
"""
import os

# OpenMP threads that spin while they wait for work (the active wait policy) collapse when another
# job holds a core: two spinning threads ran the sparse-autoencoder measure 5-6x slower than one
# thread on a shared 2-core machine, two sleeping (passive) ones as fast as one (bench/threads.py).
# OpenMP reads the policy once, when torch loads it, so it is set here, before superlens imports
# torch; a user's own OMP_WAIT_POLICY wins. (A notebook that imported torch first keeps the default.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

from superlens.errors import SuperlensError, ConfigError  # noqa: F401


def measure(model, layers, data, **kw):
    """The superposition profile of ``model``'s ``layers`` on ``data``: {layer: {measure: value}}
    (superlens.profile.api.measure has the options)."""
    from superlens.profile.api import measure as _measure

    return _measure(model, layers, data, **kw)


def measure_activations(acts, labels=None, **kw):
    """The same measures on activations you already have (superlens.profile.api.measure_activations)."""
    from superlens.profile.api import measure_activations as _m

    return _m(acts, labels, **kw)
