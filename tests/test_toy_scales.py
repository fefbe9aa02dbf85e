"""The line search over the output scale (superlens.toy.scales) against brute force and the
least-squares closed form."""
import pytest
import torch

from superlens.device import generator
from superlens.toy.analysis import evaluate
from superlens.toy.data import eval_chunks
from superlens.toy.models import MLPParams, forward
from superlens.toy.scales import line_search_scale, scale_profile, scaled_lq_loss

torch.set_num_threads(1)
F64 = torch.float64


@pytest.mark.parametrize("q", [2.0, 3.0])
def test_line_search_finds_the_least_squares_scale(q):
    # a noisy attenuated identity (n = h = 8, gain ~0.7): the optimum c lies well inside the range
    g = generator(9)
    eye = torch.eye(8, dtype=F64).expand(2, 8, 8)
    P = MLPParams(eye + 0.2 * torch.randn(2, 8, 8, generator=g, dtype=F64),
                  0.7 * eye + 0.2 * torch.randn(2, 8, 8, generator=g, dtype=F64))
    p, samples, seed = 0.2, 4000, 11
    prof = scale_profile(P, q=q, p=p, samples=samples, seed=seed, chunk=1500)
    # the profile reproduces the loss of the unscaled model
    ev = evaluate(P, p=p, samples=samples, seed=seed, powers=(q,), chunk=1500)
    assert torch.allclose(scaled_lq_loss(prof, torch.tensor([1.0]), q)[:, 0], ev["lq"][:, 0])
    # brute force: the loss on a dense grid of c, from a direct pass over the same evaluation set
    cs = torch.linspace(0.05, 3.0, 591, dtype=F64)  # step 0.005
    loss = torch.zeros(2, cs.shape[0], dtype=F64)
    for x in eval_chunks(8, p, samples, seed, chunk=1500, dtype=F64):
        y, r = forward(P, x.expand(2, -1, -1)), torch.relu(x)
        loss += ((cs[None, :, None, None] * y[:, None] - r[:, None]).abs() ** q).sum((2, 3))
    best = cs[loss.argmin(1)]
    if q == 2.0:  # least squares in closed form: c* = sum y t / sum y^2 (hand-derived)
        num = den = 0
        for x in eval_chunks(8, p, samples, seed, chunk=1500, dtype=F64):
            y = forward(P, x.expand(2, -1, -1))
            num, den = num + (y * torch.relu(x)).sum((1, 2)), den + y.square().sum((1, 2))
        assert torch.allclose(best, num / den, atol=0.003)
    assert ((best > 0.3) & (best < 2.5)).all()
    ls = line_search_scale(prof, q, lo=0.05, hi=3.0, coarse=60)
    assert not ls["at_edge"].any()
    assert torch.allclose(ls["best"], best, atol=0.005)  # the brute-force grid's step
