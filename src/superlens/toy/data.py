"""Sparse feature batches, generated on the training device, one generator per instance.

Each of n features is active with probability p (per instance), and then takes a value U(-1, 1).
Training never builds the dense [B, n] input: with p = 0.02 it is 98 % zeros. Active positions come
from geometric gaps between successes of the Bernoulli(p) process over the flattened B*n grid, which
is exactly i.i.d. Bernoulli(p) per entry, at a cost proportional to the number of active entries.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class SparseBatch:
    """Active entries of an [I, B, n] batch in coordinate form (K entries over all instances).

    inst, row, col: [K] int64   which instance, sample and feature
    val:            [K]         the feature value, U(-1, 1)
    """

    inst: Tensor
    row: Tensor
    col: Tensor
    val: Tensor
    shape: tuple[int, int, int]

    def to_dense(self) -> Tensor:
        x = torch.zeros(self.shape, device=self.val.device, dtype=self.val.dtype)
        x[self.inst, self.row, self.col] = self.val
        return x


def _active_positions(total: int, p: float, g: torch.Generator, device) -> Tensor:
    """Sorted positions in [0, total) of a Bernoulli(p) process, via geometric gaps."""
    if p >= 1.0:
        return torch.arange(total, device=device)
    log1mp = math.log1p(-p)
    mean = total * p
    chunks, start = [], -1  # position of the last success so far
    while True:
        m = int(mean + 6 * math.sqrt(mean + 1) + 16)
        u = torch.rand(m, device=device, generator=g)
        # gap ~ Geometric(p) on {1, 2, ...}: floor(log(U)/log(1-p)) + 1 with U in (0, 1]
        gaps = torch.floor(torch.log1p(-u) / log1mp) + 1
        pos = torch.cumsum(gaps, 0).to(torch.int64) + start
        chunks.append(pos)
        last = int(pos[-1])
        if last >= total:
            break
        start = last
    pos = torch.cat(chunks)
    return pos[pos < total]


def sample_sparse(generators: list[torch.Generator], batch: int, n_features: int,
                  p: list[float] | float, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> SparseBatch:
    """One training batch for I instances; instance i uses only generators[i] (and p[i])."""
    I = len(generators)
    ps = [float(p)] * I if isinstance(p, (int, float)) else [float(v) for v in p]
    total = batch * n_features
    insts, flats, vals = [], [], []
    for i, g in enumerate(generators):
        pos = _active_positions(total, ps[i], g, device)
        v = torch.rand(pos.shape[0], device=device, generator=g, dtype=dtype).mul_(2).sub_(1)
        insts.append(torch.full_like(pos, i))
        flats.append(pos)
        vals.append(v)
    flat = torch.cat(flats)
    return SparseBatch(torch.cat(insts), flat // n_features, flat % n_features, torch.cat(vals),
                       (I, batch, n_features))


def sample_dense(generators: list[torch.Generator], batch: int, n_features: int,
                 p: list[float] | float, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> Tensor:
    """The same distribution as a dense [I, B, n] tensor (for evaluation, not training)."""
    I = len(generators)
    ps = [float(p)] * I if isinstance(p, (int, float)) else [float(v) for v in p]
    x = torch.empty(I, batch, n_features, device=device, dtype=dtype)
    for i, g in enumerate(generators):
        u = torch.rand(batch, n_features, device=device, generator=g, dtype=dtype)
        v = torch.rand(batch, n_features, device=device, generator=g, dtype=dtype)
        x[i] = torch.where(u < ps[i], v * 2 - 1, torch.zeros((), dtype=dtype, device=device))
    return x


def single_feature_batch(n_features: int, values: Tensor) -> Tensor:
    """x[k*V + v] = values[v] * e_k: each feature swept alone. values [V] -> x [n*V, n]."""
    V = values.shape[0]
    x = torch.zeros(n_features, V, n_features, dtype=values.dtype, device=values.device)
    idx = torch.arange(n_features, device=values.device)
    x[idx, :, idx] = values
    return x.reshape(n_features * V, n_features)
