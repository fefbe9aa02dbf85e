"""Feature dimensionality, geometry classes and frame comparison against hand-built frames whose
answers are closed forms (a unit-norm tight frame of n vectors in R^m has D_i = m / n)."""
import math

import numpy as np
import pytest
import torch
from scipy.special import gammaln

from superlens.measures.dimensionality import (
    OTHER,
    dimensions_per_feature,
    feature_dimensionality,
    feature_geometry,
    frame_comparison,
    geometry_classes,
    gram,
    optimized_frame,
    superposition,
    welch_bound,
)

torch.set_num_threads(1)


def polygon(k: int) -> torch.Tensor:
    """k unit vectors at angles 2 pi j / k: [2, k]."""
    a = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    return torch.stack([a.cos(), a.sin()])


def tetrahedron() -> torch.Tensor:
    """4 unit vectors with pairwise cos -1/3: [3, 4]."""
    V = torch.tensor([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=torch.float64).T
    return V / math.sqrt(3)


def square_antiprism() -> torch.Tensor:
    """8 unit vectors: a square at height +h, one turned 45 degrees at -h. Tight (sum x^2 = 8 r^2 / 2
    = sum z^2 = 8 h^2) for r^2 = 2/3, h^2 = 1/3: [3, 8]."""
    r, h = math.sqrt(2 / 3), math.sqrt(1 / 3)
    cols = []
    for k in range(4):
        for z, off in ((h, 0.0), (-h, math.pi / 4)):
            a = off + k * math.pi / 2
            cols.append([r * math.cos(a), r * math.sin(a), z])
    return torch.tensor(cols, dtype=torch.float64).T


def test_orthonormal_columns_are_dedicated():
    Q, _ = torch.linalg.qr(torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    W = torch.stack([torch.eye(4, dtype=torch.float64)[:, :3] * 2.0, Q])  # [2, 4, 3]
    D = feature_dimensionality(W)
    torch.testing.assert_close(D, torch.ones(2, 3, dtype=torch.float64))
    assert geometry_classes(D[0]) == ["1: dedicated"] * 3
    # D* = m / ||W||_F^2: 4 / (3 * 4) for norms 2, 4 / 3 for unit columns
    torch.testing.assert_close(dimensions_per_feature(W), torch.tensor([1 / 3, 4 / 3], dtype=torch.float64))


def _arena_dimensionality(W: torch.Tensor) -> torch.Tensor:
    """ARENA's version (normalise, then divide): W [I, m, n] -> [I, n]; NaN for a zero column."""
    W_norm = W / W.norm(dim=1, keepdim=True)
    interference = torch.einsum("imf,img->ifg", W_norm, W) ** 2
    return W.norm(dim=1) ** 2 / interference.sum(-1)


def test_dead_feature_is_zero_not_nan():
    W = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])  # feature 2 is the zero column
    assert torch.isnan(_arena_dimensionality(W)[0, 2])
    D = feature_dimensionality(W)
    assert torch.isfinite(D).all()
    torch.testing.assert_close(D, torch.tensor([[1.0, 1.0, 0.0]]))
    assert geometry_classes(D[0]) == ["1: dedicated", "1: dedicated", "0: not represented"]
    torch.testing.assert_close(superposition(W), torch.zeros(1, 3))
    assert dimensions_per_feature(torch.zeros(2, 3, 4)).isinf().all()


def test_antipodal_pair_is_one_half():
    # hand-worked: G = [[1, -1, 0], [-1, 1, 0], [0, 0, 1]]: D_0 = 1 / (1 + 1) = 1/2, D_2 = 1
    W = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(feature_dimensionality(W), torch.tensor([0.5, 0.5, 1.0]))
    assert geometry_classes(feature_dimensionality(W)) == ["1/2: antipodal pair"] * 2 + ["1: dedicated"]
    # superposition of feature 0: (Ŵ_0 . W_1)^2 = 1
    torch.testing.assert_close(superposition(W), torch.tensor([1.0, 1.0, 0.0]))


@pytest.mark.parametrize("frame, value, name", [
    (polygon(3), 2 / 3, "2/3: triangle"),        # 1 / (1 + 2 * (1/2)^2)
    (polygon(5), 2 / 5, "2/5: pentagon"),        # tight frame: m / n
    (tetrahedron(), 3 / 4, "3/4: tetrahedron"),  # 1 / (1 + 3 * (1/3)^2)
    (square_antiprism(), 3 / 8, "3/8: square antiprism"),
])
def test_uniform_polytopes(frame, value, name):
    D = feature_dimensionality(frame * 0.7)  # a common scale leaves D unchanged
    torch.testing.assert_close(D, torch.full_like(D, value))
    assert geometry_classes(D) == [name] * frame.shape[1]
    # D* = m / sum ||W_i||^2 = m / n for unit columns
    torch.testing.assert_close(dimensions_per_feature(frame), torch.tensor(value, dtype=torch.float64))


def test_batched_equals_each_instance_and_gram():
    W = torch.randn(3, 4, 7, generator=torch.Generator().manual_seed(1))
    D = feature_dimensionality(W)
    for i in range(3):
        torch.testing.assert_close(D[i], feature_dimensionality(W[i]))
    np.testing.assert_allclose(gram(W).numpy(), np.einsum("imn,imk->ink", W.numpy(), W.numpy()), rtol=1e-5,
                               atol=1e-6)
    assert ((D > 0) & (D <= 1 + 1e-6)).all()


def test_geometry_classes_nearest_within_tolerance():
    D = [0.99, 0.74, 0.55, 0.38, 0.395, 0.01, 0.2]
    assert geometry_classes(D) == ["1: dedicated", "3/4: tetrahedron", OTHER, "3/8: square antiprism",
                                   "2/5: pentagon", "0: not represented", OTHER]
    assert geometry_classes(torch.tensor([[0.5, 0.66]])) == [["1/2: antipodal pair", "2/3: triangle"]]
    assert geometry_classes([0.55], tol=0.06) == ["1/2: antipodal pair"]


def test_geometry_from_w_one_dimensional_unequal_antipodal_pair():
    # the 2 -> 1 sweep's W ~ [1.02, -0.84]: D = 1.02^2 / (1.02^2 + 0.84^2) = 0.596 and 0.404, which the
    # D-only rule calls "other" and "2/5: pentagon"; no pentagon fits in one dimension
    W = torch.tensor([[1.02, -0.84]], dtype=torch.float64)
    D = feature_dimensionality(W)
    torch.testing.assert_close(D, torch.tensor([1.02**2, 0.84**2], dtype=torch.float64) / (1.02**2 + 0.84**2))
    assert geometry_classes(D) == [OTHER, "2/5: pentagon"]  # why D alone is not enough
    assert geometry_classes(D, W=W) == ["1/2: antipodal pair"] * 2
    # the same two directions but one small norm: one dedicated feature, one not represented
    assert feature_geometry(torch.tensor([[1.0, -0.3]])) == ["1: dedicated", "0: not represented"]
    # two features along the same ray span one dimension too, but are no antipodal pair
    assert feature_geometry(torch.tensor([[1.0, 0.8]])) == [OTHER] * 2


def test_geometry_from_w_two_dimensional_shapes():
    # a pentagon with unequal norms is still a pentagon (directions decide the name)
    P = polygon(5) * torch.tensor([1.0, 0.9, 1.1, 0.8, 1.0], dtype=torch.float64)
    assert feature_geometry(P) == ["2/5: pentagon"] * 5
    # a square of two antipodal pairs: orthogonal pairs are not partners; D = 1/2 each
    S = polygon(4)
    assert feature_geometry(S) == ["1/2: antipodal pair"] * 4
    assert geometry_classes(feature_dimensionality(S), W=S[None]) == [["1/2: antipodal pair"] * 4]
    # five features squeezed irregularly into 2-D: the same (k, r) as a pentagon but not a tight
    # frame, so not named a pentagon
    a = torch.tensor([0.0, 0.3, 0.6, 0.9, 1.2], dtype=torch.float64)
    assert feature_geometry(torch.stack([a.cos(), a.sin()])) == [OTHER] * 5
    # a triangle, a tetrahedron and a square antiprism keep their names
    assert feature_geometry(polygon(3)) == ["2/3: triangle"] * 3
    assert feature_geometry(tetrahedron()) == ["3/4: tetrahedron"] * 4
    assert feature_geometry(square_antiprism()) == ["3/8: square antiprism"] * 8
    # the lines of a triangle with one vector flipped (0, 60, 120 degrees): tight, but not balanced
    b = torch.tensor([0.0, math.pi / 3, 2 * math.pi / 3], dtype=torch.float64)
    assert feature_geometry(torch.stack([b.cos(), b.sin()])) == [OTHER] * 3


def test_geometry_from_w_dead_feature_and_dense_phase():
    # feature 2 is a zero column, feature 3 a small leftover: both "not represented", and neither
    # makes its represented neighbours "other" (the p = 1 sweep point: 2 represented = 2 dedicated)
    W = torch.tensor([[1.0, 0.0, 0.0, 0.2], [0.0, 1.0, 0.0, 0.1]], dtype=torch.float64)
    assert feature_geometry(W) == ["1: dedicated", "1: dedicated", "0: not represented",
                                   "0: not represented"]
    assert geometry_classes(feature_dimensionality(W)).count("1: dedicated") < 2  # the D-only rule
    assert feature_geometry(torch.zeros(2, 3)) == ["0: not represented"] * 3
    with pytest.raises(ValueError, match="W: shape"):
        feature_geometry(torch.zeros(3))


def test_welch_bound_closed_forms():
    assert welch_bound(3, 2) == pytest.approx(0.5)  # 3 lines at 60 degrees
    assert welch_bound(4, 3) == pytest.approx(1 / 3)  # the simplex
    assert welch_bound(6, 3) == pytest.approx(1 / math.sqrt(5))  # icosahedron diagonals
    assert welch_bound(3, 3) == 0.0 and welch_bound(2, 5) == 0.0


def test_optimized_frame_reaches_known_equiangular_frames():
    for n, m, mu in ((4, 3, 1 / 3), (6, 3, 1 / math.sqrt(5))):
        F = optimized_frame(n, m, seed=0, steps=400)
        C = (F.T @ F).abs() - torch.eye(n, dtype=F.dtype)
        torch.testing.assert_close(F.norm(dim=0), torch.ones(n, dtype=F.dtype))
        assert float(C.max()) == pytest.approx(mu, abs=2e-3)


def _mean_abs_cos_gaussian(m: int) -> float:
    """E|cos| between independent isotropic directions in R^m: Gamma(m/2) / (sqrt(pi) Gamma((m+1)/2))."""
    return math.exp(gammaln(m / 2) - gammaln((m + 1) / 2)) / math.sqrt(math.pi)


def test_frame_comparison_references():
    # the tetrahedron is an equiangular tight frame: it meets the Welch bound, spectrum flat at n/m
    out = frame_comparison(tetrahedron(), seed=0, n_random=8)
    assert out["n_live"] == 4 and out["welch_bound"] == pytest.approx(1 / 3)
    assert out["W"]["max_abs_cos"] == pytest.approx(1 / 3)
    assert out["W"]["mean_abs_cos"] == pytest.approx(1 / 3)
    np.testing.assert_allclose(out["W"]["gram_spectrum"], [4 / 3] * 3)
    assert out["W"]["spectrum_cv"] == pytest.approx(0, abs=1e-9)
    assert out["W"]["dim_mean"] == pytest.approx(3 / 4)
    assert out["optimized"]["max_abs_cos"] == pytest.approx(1 / 3, abs=2e-3)
    assert out["random"]["max_abs_cos"] > 1 / 3 + 0.05  # random frames are far from equiangular

    # a Gaussian [10, 60] frame with two dead columns: mean |cos| matches the closed form
    W = torch.randn(10, 60, generator=torch.Generator().manual_seed(3))
    W[:, :2] = 0
    out = frame_comparison(W, seed=1, n_random=8, optimize=False)
    assert out["n_live"] == 58 and "optimized" not in out
    assert out["welch_bound"] == pytest.approx(welch_bound(58, 10))
    expected = _mean_abs_cos_gaussian(10)  # ~0.246
    assert out["W"]["mean_abs_cos"] == pytest.approx(expected, abs=0.02)
    assert out["random"]["mean_abs_cos"] == pytest.approx(expected, abs=0.01)
    assert len(out["W"]["gram_spectrum"]) == 10
    assert sum(out["W"]["gram_spectrum"]) == pytest.approx(58)  # trace of Û^T Û = number of live columns
    assert all(math.isfinite(v) for v in (out["W"]["dim_mean"], out["random"]["dim_mean"]))
