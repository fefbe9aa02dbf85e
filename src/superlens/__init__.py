"""superlens: measure superposition in neural networks.

Python API (works in a notebook):

    from superlens.toy import study
    result = study.run_toy(ToyConfig(), out="runs/toy")
"""
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
