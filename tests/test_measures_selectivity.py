"""Class selectivity (superlens.measures.selectivity), worked by hand."""
import math

import numpy as np
import pytest
import torch

from superlens.measures import class_selectivity

torch.set_num_threads(1)


# ---- selectivity
def test_class_selectivity_hand_worked():
    # 3 classes, 2 samples each. Class means per neuron (worked by hand):
    # n0: (2, 0, 0)  -> (2 - 0) / (2 + 0) = 1
    # n1: (1, 1, 1)  -> 0
    # n2: (1, 3, 2)  -> top 3, rest 1.5: 1.5 / 4.5 = 1/3
    # n3: dead       -> 0
    # n4: (-1, 1, 0) -> negative: shifted by 1 to (0, 2, 1): top 2, rest 0.5: 1.5 / 2.5 = 0.6
    lab = np.array([0, 0, 1, 1, 2, 2])
    x = np.array([
        [3, 1, 0, 0, -2],
        [1, 1, 2, 0, 0],
        [0, 1, 3, 0, 1],
        [0, 1, 3, 0, 1],
        [0, 1, 2, 0, 0],
        [0, 1, 2, 0, 0],
    ], dtype=float)
    want = [1.0, 0.0, 1 / 3, 0.0, 0.6]
    si = class_selectivity(torch.from_numpy(x), lab, 3)
    assert si.shape == (5,)
    np.testing.assert_allclose(si.numpy(), want, atol=1e-9)
    # a fourth class with no samples has no mean: it is left out, nothing changes
    np.testing.assert_allclose(class_selectivity(x, lab, 4).numpy(), want, atol=1e-9)


def test_class_selectivity_bad_labels():
    with pytest.raises(ValueError):
        class_selectivity(np.ones((3, 2)), [0, 1, 5], 3)
    with pytest.raises(ValueError):
        class_selectivity(np.ones((3, 2)), [1, 1, 1], 3)   # one class present


def test_class_mean_cosine_closed_form():
    from superlens.measures.selectivity import class_mean_cosine

    # class means (1, 0) and (1, 1): cos = 1 / sqrt(2); a third class of mean 0 has no direction
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.5, 1.5], [1.5, 0.5], [0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1, 2])
    assert class_mean_cosine(x, y, 3) == pytest.approx(2 ** -0.5)
    assert math.isnan(class_mean_cosine(x[:2], y[:2], 3))
