"""superlens: measure superposition in neural networks.

Python API (works in a notebook):

    from superlens.toy import study
    result = study.run_toy(ToyConfig(), out="runs/toy")
"""
__version__ = "0.1.0"

from superlens.errors import SuperlensError, ConfigError  # noqa: F401
