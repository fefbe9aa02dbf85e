"""superlens: measure superposition in neural networks.

Python API (works in a notebook):

    from superlens.toy import study
    result = study.run_toy(ToyConfig(), out="runs/toy")
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
