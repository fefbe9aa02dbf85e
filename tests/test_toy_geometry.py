"""Open question 2 glue: frame geometry of W_in against random and equiangular references."""
import math

import pytest
import torch

from superlens.report.toy_figures import plot_frame_geometry
from superlens.toy.definitions import GEOMETRY_DEFINITIONS
from superlens.toy.geometry import geometry_summary


def test_mercedes_frame_is_tight_and_meets_welch():
    # 3 unit vectors at 120 degrees in R^2: |cos| = 1/2 = Welch bound sqrt((3-2)/(2*2)), tight frame
    ang = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], dtype=torch.float64)
    W = torch.stack([ang.cos(), ang.sin()])[None]  # [1, 2, 3]
    m, comp = geometry_summary(W, seed=0)
    assert m["geometry_max_abs_cos"] == pytest.approx(0.5, abs=1e-9)
    assert m["welch_bound_frame"] == pytest.approx(0.5)
    assert m["geometry_spectrum_cv"] == pytest.approx(0.0, abs=1e-9)
    assert m["feature_dimensionality_mean"] == pytest.approx(2 / 3, abs=1e-9)  # a triangle


def test_common_direction_shows_in_top_eigen_ratio(tmp_path):
    g = torch.Generator().manual_seed(0)
    R = torch.randn(1, 10, 100, generator=g, dtype=torch.float64)
    shared = R + 2.0 * torch.ones(1, 10, 1, dtype=torch.float64) / math.sqrt(10)
    m_r, _ = geometry_summary(R, seed=1)
    m_s, comp = geometry_summary(shared, seed=1)
    assert m_s["geometry_top_eigen_ratio"] > 2 * m_r["geometry_top_eigen_ratio"]
    assert (tmp_path / plot_frame_geometry(comp, tmp_path / "f.png")).stat().st_size > 1000


def test_every_geometry_metric_has_a_definition():
    g = torch.Generator().manual_seed(2)
    W = torch.randn(2, 4, 9, generator=g, dtype=torch.float64)
    W[0, :, 5] = 0.0  # a dead column in seed 0: the frame's Welch bound counts live columns only
    m, _ = geometry_summary(W, seed=0)
    assert set(m) == set(GEOMETRY_DEFINITIONS)
    assert all(len(GEOMETRY_DEFINITIONS[k]) > 20 for k in m)
    assert m["welch_bound_frame"] == pytest.approx(math.sqrt((8 - 4) / (4 * 7)))
