"""Effective rank and participation ratio (superlens.measures.spectrum) against closed forms."""
import numpy as np
import pytest
import torch

from superlens.measures import effective_rank, participation_ratio

torch.set_num_threads(1)


# ---- spectrum
def test_isotropic_gaussian_uses_all_dimensions():
    d = 8
    x = np.random.default_rng(0).normal(size=(20000, d))
    # singular values all ~ sqrt(N) (spread ~ sqrt(d / N) = 2 %), so both measures ~ d
    assert effective_rank(x) == pytest.approx(d, rel=0.01)
    assert participation_ratio(x) == pytest.approx(d, rel=0.01)


def test_rank_one_is_one():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 1)) * rng.normal(size=(1, 12)) + rng.normal(size=12)  # offset: centred away
    assert effective_rank(x) == pytest.approx(1.0, abs=1e-6)
    assert participation_ratio(x) == pytest.approx(1.0, abs=1e-9)


def test_spectrum_closed_form_diagonal_example():
    # rows (a,0), (-a,0), (0,b), (0,-b): mean 0, X^T X = diag(2a^2, 2b^2), so s = sqrt2 (a, b).
    # a=1, b=2: p = (1/3, 2/3), erank = exp(-(1/3 ln 1/3 + 2/3 ln 2/3)) = 3 / 2^(2/3);
    # lambda proportional to (1, 4): PR = 25 / 17
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    assert effective_rank(x) == pytest.approx(3 / 2 ** (2 / 3))
    assert participation_ratio(x) == pytest.approx(25 / 17)


def test_spectrum_constant_input_is_zero():
    x = np.ones((5, 3))
    assert effective_rank(x) == 0.0 and participation_ratio(x) == 0.0
