"""Sparse feature batches (superlens.toy.data): frequencies, uniform values, per-instance streams, for
the compressed-computation MLP and the classic toy model."""
import math

import pytest
import torch
from scipy import stats

from superlens.device import generator
from superlens.toy.data import _uniform24, fill_tms_batch, sample_sparse, sample_tms
from superlens.toy.train import iter_tms_batches

torch.set_num_threads(1)


@pytest.mark.parametrize("p", [[0.6, 0.6, 0.6, 0.6, 0.6, 0.6],        # dense draw
                               [0.05] * 6,                            # geometric gaps
                               [0.0, 0.01, 0.05, 0.1, 0.2, 0.2],      # dense at p_max = DENSE_P, a p = 0 feature
                               [0.0, 0.01, 0.05, 0.1, 0.15, 0.15],    # gaps + thinning, a p = 0 feature
                               [0.0, 0.3, 0.5, 0.8, 1.0, 1.0]])       # dense with p = 0 and p = 1
def test_sampler_frequency_and_uniform_values(p):
    B = 20_000
    x = torch.empty(B, 6)
    fill_tms_batch(x, generator(5), torch.tensor(p))
    active = x > 0
    for j, pj in enumerate(p):
        k = int(active[:, j].sum())
        # binomial count: within 5 sd of B p (exactly 0 or B at p = 0 or 1)
        assert abs(k - B * pj) <= 5 * math.sqrt(B * pj * (1 - pj)) + 1e-9, (j, k, B * pj)
    vals = x[active].double().numpy()
    assert vals.min() > 0 and vals.max() <= 1
    assert stats.kstest(vals, "uniform").pvalue > 1e-3  # values U(0, 1)


def test_uniform24_bits_are_fair():
    """Each of the 24 bits of every draw (both 32-bit halves of the int64 draws) is 1 with
    probability 1/2, and the draws cover [0, 2^24)."""
    k = _uniform24(200_001, generator(7), "cpu")
    assert k.shape == (200_001,) and k.dtype == torch.int32
    assert int(k.min()) >= 0 and int(k.max()) < 2**24
    for half in (k[0::2], k[1::2]):  # low and high words of the int64 draws
        freq = torch.stack([((half >> b) & 1).double().mean() for b in range(24)])
        sd = math.sqrt(0.25 / half.numel())
        assert float((freq - 0.5).abs().max()) < 5 * sd, freq
    # U{0..2^24-1} scaled by 2^-24 against U(0, 1): Kolmogorov-Smirnov
    assert stats.kstest(k[:20_000].double().numpy() / 2**24, "uniform").pvalue > 1e-3


def test_sample_tms_matches_per_instance_streams():
    gens = [generator(3), generator(4)]
    x = sample_tms(gens, 64, 7, [0.1, 0.5])
    x1 = next(iter_tms_batches(generator(4), 0.5, 64, 7, steps=1))
    assert torch.equal(x[1], x1)


def test_sampler_statistics():
    """Bernoulli(p) activity and U(-1, 1) values: mean 0, variance 1/3."""
    gens = [generator(0), generator(1)]
    b = sample_sparse(gens, 4000, 50, [0.02, 0.5])
    x = b.to_dense()
    for i, p in enumerate((0.02, 0.5)):
        act = (x[i] != 0).float().mean().item()
        se = math.sqrt(p * (1 - p) / x[i].numel())
        assert abs(act - p) < 5 * se
    v = b.val
    assert abs(v.mean().item()) < 0.02 and abs(v.var().item() - 1 / 3) < 0.01
    assert v.min() >= -1 and v.max() <= 1
