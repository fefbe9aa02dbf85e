"""The toy models (superlens.toy.models): the TMS forward pass, its initialisation and importances."""
import math

import pytest
import torch

from superlens.device import generator
from superlens.toy.models import TMSParams, importance_decay, init_tms, tms_forward

torch.set_num_threads(1)


def test_forward_is_relu_wtw_x_plus_b():
    g = torch.Generator().manual_seed(0)
    W, b = torch.randn(2, 3, 5, generator=g), torch.randn(2, 5, generator=g)
    x = torch.rand(2, 4, 5, generator=g)
    out = tms_forward(TMSParams(W, b), x)
    for i in range(2):
        torch.testing.assert_close(out[i], torch.relu(x[i] @ W[i].T @ W[i] + b[i]))


def test_init_is_per_instance_xavier_normal():
    params = init_tms(60, 20, [generator(1), generator(2)])
    lone = init_tms(60, 20, [generator(2)])
    assert torch.equal(params.W[1], lone.W[0]) and not torch.equal(params.W[0], params.W[1])
    assert torch.equal(params.b, torch.zeros(2, 60))
    # std sqrt(2 / (m + n)) = 0.158; sd of a 1,200-sample std is ~2 %, so 10 % is ~5 sd
    assert float(params.W[0].std()) == pytest.approx(math.sqrt(2 / 80), rel=0.1)


def test_importance_decay_closed_form():
    torch.testing.assert_close(importance_decay(4, 0.5), torch.tensor([1.0, 0.5, 0.25, 0.125]))
